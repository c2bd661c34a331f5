"""`python -m core train`: --out checked before training, --force, divergence, sane numbers."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from helpers.training import SENTENCES, tiny_model

import core
from core.cli import main
from core.cli import train as train_command


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(SENTENCES * 2) + "\n")
    return str(path)


def small_run(out, corpus, *extra):
    return ["train", "--out", str(out), "--corpus", corpus, "--steps", "3", "--batch-size", "4", "--n-embd", "16",
            "--n-layer", "1", "--n-head", "2", "--n-positions", "12", "--quiet", *extra]


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started before --out was checked")
    monkeypatch.setattr(train_command, "train", refuse)


def one_line_error(capsys):
    error = capsys.readouterr().err
    assert error.startswith("error:") and error.count("\n") == 1 and "Traceback" not in error
    return error


def test_out_under_a_file_fails_before_training(tmp_path, corpus, capsys, no_training):
    blocker = tmp_path / "some_file"
    blocker.write_text("keep me")
    assert main(small_run(blocker / "sub", corpus)) == 2
    assert "is a file" in one_line_error(capsys) and blocker.read_text() == "keep me"


def test_out_that_is_another_folder_is_refused(tmp_path, corpus, capsys, no_training):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "config.json").write_text('{"mine": true}')  # somebody else's config.json
    assert main(small_run(folder, corpus)) == 2
    assert "not a Glassbox checkpoint" in one_line_error(capsys)
    assert (folder / "config.json").read_text() == '{"mine": true}'


def test_an_existing_checkpoint_needs_force(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    original = tiny_model()
    original.save(out)
    assert main(small_run(out, corpus)) == 2
    assert "--force" in one_line_error(capsys)
    np.testing.assert_array_equal(core.load_checkpoint(out).params["lm_head.weight"], original.params["lm_head.weight"])
    assert main(small_run(out, corpus, "--force")) == 0
    assert core.load_checkpoint(out).config.n_embd == 16  # replaced by the new run


def test_a_diverged_run_says_so_exits_1_and_saves_nothing(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    assert main(small_run(out, corpus, "--lr", "1000", "--steps", "30")) == 1
    error = capsys.readouterr().err
    assert "diverged at step" in error and "Nothing was saved" in error
    assert not out.exists()


def test_a_bad_seed_names_the_argument(tmp_path, corpus, capsys, no_training):
    assert main(small_run(tmp_path / "run", corpus, "--seed", "-5")) == 2
    assert "seed must be" in one_line_error(capsys)


@pytest.mark.parametrize("value, shown", [(1.0021, "1.002"), (12345.6789, "12345.679"), (1.58e250, "1.58e+250"),
                                          (float("inf"), "inf"), (float("nan"), "nan")])
def test_metrics_are_printed_sanely(value, shown):
    assert train_command.metric(value) == shown


def test_a_large_learning_rate_prints_no_long_numbers_nor_warnings(tmp_path, corpus):
    result = subprocess.run([sys.executable, "-m", "core", *small_run(tmp_path / "run", corpus, "--lr", "5",
                                                                        "--steps", "20", "--eval-every", "1")],
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode in (0, 1) and "Traceback" not in output
    assert "Warning" not in output
    assert not re.search(r"\d{12}", output), output


def test_an_empty_folder_takes_the_checkpoint(tmp_path, corpus):
    out = tmp_path / "empty"
    out.mkdir()
    assert main(small_run(out, corpus)) == 0
    assert core.load_checkpoint(out).config.n_embd == 16 and (out / "history.json").is_file()
