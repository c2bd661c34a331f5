"""`python -m core fetch`: without network or without huggingface_hub, one clear line and exit 2."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core.cli import main


def test_offline_fetch_fails_with_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    pytest.importorskip("huggingface_hub")
    result = subprocess.run([sys.executable, "-m", "core", "fetch", "gpt2", "--to", str(tmp_path / "models" / "gpt2")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: could not download 'gpt2'") and "offline" in lines[0]
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path / "models") == []  # no half-downloaded folder left


def test_fetch_without_huggingface_hub_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import huggingface_hub -> ImportError
    assert main(["fetch", "gpt2", "--to", str(tmp_path / "gpt2")]) == 2
    error = capsys.readouterr().err.strip()
    assert error == "error: fetching needs huggingface_hub: pip install -e '.[hub]'"
    assert os.listdir(tmp_path) == []


def test_fetch_refuses_a_folder_that_is_not_a_checkpoint(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["fetch", "gpt2", "--to", str(tmp_path / "mine")]) == 2
    assert "not a Glassbox checkpoint" in capsys.readouterr().err
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]
