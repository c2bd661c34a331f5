"""The bundled data: the corpus, its held-out prompts and the default checkpoint trained on them."""
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
CORPUS_PATH = DATA_DIR / "corpus.txt"
HELDOUT_PATH = DATA_DIR / "heldout.tsv"
DEFAULT_CHECKPOINT = DATA_DIR / "default"
