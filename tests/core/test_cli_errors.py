"""Issue 30: what used to be a traceback in the CLI is one line `error: ...` and exit code 2."""
from __future__ import annotations

import json

import pytest

from core.bench import attention
from core.cli import main


def one_error_line(capsys, argv) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    return captured.err


def test_a_model_too_large_to_train_is_refused_before_allocating(capsys, tmp_path):
    error = one_error_line(capsys, ["train", "--n-layer", "128", "--n-embd", "8192", "--n-head", "8",
                                    "--n-positions", "8192", "--out", str(tmp_path / "out")])
    assert "GB to train" in error and "memory available" in error


@pytest.mark.parametrize("corpus", ["/dev/zero", "folder", "binary", "empty", "missing"])
def test_a_corpus_must_be_a_regular_utf8_text_file(capsys, tmp_path, corpus):
    (tmp_path / "folder").mkdir()
    (tmp_path / "binary").write_bytes(b"the sky is \xff\xfe blue\n")
    (tmp_path / "empty").write_text("\n \n")
    path = corpus if corpus.startswith("/") else str(tmp_path / corpus)
    error = one_error_line(capsys, ["train", "--corpus", path, "--steps", "1", "--out", str(tmp_path / "out")])
    expected = {"/dev/zero": "not a regular file", "folder": "not a regular file", "binary": "not UTF-8 text",
                "empty": "holds no sentences", "missing": "is missing"}[corpus]
    assert expected in error and path in error


def test_a_corpus_over_the_cap_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("core.cli.train.MAX_CORPUS_BYTES", 10)
    (tmp_path / "corpus.txt").write_text("the sky is blue .\n")
    error = one_error_line(capsys, ["train", "--corpus", str(tmp_path / "corpus.txt"), "--out", str(tmp_path / "o")])
    assert "too large" in error


def test_a_benchmark_size_too_large_is_refused(capsys):
    error = one_error_line(capsys, ["bench", "--sizes", "100000x100000x100000x100000"])
    assert "GB of arrays" in error
    with pytest.raises(ValueError, match="at most"):
        attention.parse_size("64x65536x65536x64")
    assert attention.parse_size("12x1024x1024x64:causal").lq == 1024  # the grid's sizes still pass


@pytest.mark.parametrize("content, expected", [
    ('{"benchmarks": [1, 2, 3]}', "benchmarks[0] is not a JSON object"),
    ("[" * 100_000, "nested too deeply"),
    ('{"benchmarks": [{"stats": [1]}]}', "'stats' and 'extra_info' must be JSON objects"),
    ('{"benchmarks": [{"group": ["x"], "extra_info": {"backend": "c"}, "stats": {"median": 1}}]}',
     "'group' must be a string"),
    ('{"benchmarks": [{"group": "g", "extra_info": {"backend": ["c"]}, "stats": {"median": 1}}]}',
     "extra_info.backend must be str"),
    ('{"benchmarks": [{"group": "g", "extra_info": {"backend": "c"}, "stats": {"median": "fast"}}]}',
     "stats.median must be a non-negative number"),
    ('{"benchmarks": [{"group": "g", "extra_info": {"backend": "c"}, "stats": {}}]}', "no stats.median"),
    ('{"benchmarks": "many"}', "not a pytest-benchmark JSON file"),
    ("\xff", "not valid JSON"),
])
def test_a_malformed_benchmark_file_is_one_line(capsys, tmp_path, content, expected):
    path = tmp_path / "f.json"
    path.write_bytes(content.encode("latin-1"))
    error = one_error_line(capsys, ["bench", "--load", str(path)])
    assert expected in error and str(path) in error
    with pytest.raises(ValueError, match="f.json"):
        attention.load_benchmark_json(path)


def test_a_benchmark_file_over_the_cap_is_not_parsed(tmp_path, monkeypatch):
    monkeypatch.setattr(attention, "MAX_BENCHMARK_JSON_BYTES", 10)
    path = tmp_path / "f.json"
    path.write_text(json.dumps({"benchmarks": []}))
    with pytest.raises(ValueError, match="too large"):
        attention.load_benchmark_json(path)
