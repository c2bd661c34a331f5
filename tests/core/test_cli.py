"""Tests for the model's commands: `python -m core generate | trace | info`, their output and
their one-line errors with exit code 2."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers.models import model_that_always_says

from core.cli import main


@pytest.fixture(scope="module")
def blue_checkpoint(tmp_path_factory):
    """A checkpoint whose model always predicts "blue"."""
    return str(model_that_always_says("blue").save(tmp_path_factory.mktemp("blue") / "checkpoint"))


def run_module(*arguments):
    return subprocess.run([sys.executable, "-m", "core", *arguments], capture_output=True, text=True, timeout=120)


# --- through `python -m core`, as a user runs it -------------------------------------------------

def test_generate_runs_as_a_module(blue_checkpoint):
    result = run_module("generate", "the sky is", "--temperature", "0.8", "--top-k", "5", "--top-p", "0.9",
                        "--seed", "1", "--max-new-tokens", "2", "--checkpoint", blue_checkpoint)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "the sky is blue blue"


def test_bad_input_is_one_line_and_exit_code_2_as_a_module():
    result = run_module("generate", "the sky is", "--temperature", "-1")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: temperature")
    assert "Traceback" not in result.stderr


# --- through main(), in process ------------------------------------------------------------

def test_generate_with_steps(blue_checkpoint, capsys):
    assert main(["generate", "The sky is", "--max-new-tokens", "3", "--steps", "--checkpoint", blue_checkpoint]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "the sky is blue blue blue"
    assert lines[1].startswith("  step 1: 'blue' p=1.000") and lines[-1] == "  stopped: max_new_tokens"


def test_generate_with_the_default_model(capsys):
    assert main(["generate", "the sky is", "--temperature", "0", "--max-new-tokens", "2"]) == 0
    assert capsys.readouterr().out.startswith("the sky is ")


def test_generate_prints_notices(blue_checkpoint, capsys):
    assert main(["generate", "the zebra is", "--max-new-tokens", "1", "--checkpoint", blue_checkpoint]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["notice: unknown words shown as <unk>: zebra", "the <unk> is blue"]


def test_trace_json_holds_every_array_with_its_shape(blue_checkpoint, capsys):
    assert main(["trace", "the sky is", "--json", "--checkpoint", blue_checkpoint]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tokens"] == ["the", "sky", "is"] and data["top_predictions"][0][0] == "blue"
    assert data["arrays"]["blocks.0.attn.hook_pattern"]["shape"] == [4, 3, 3]
    assert data["arrays"]["blocks.1.mlp.hook_post"]["shape"] == [3, 128]
    assert data["arrays"]["logits"]["shape"][0] == 3
    assert data["arrays"]["blocks.0.attn.hook_attn_scores"]["values"][0][0][2] is None  # masked: -inf


def test_trace_summary(blue_checkpoint, capsys):
    assert main(["trace", "the sky is", "--checkpoint", blue_checkpoint]) == 0
    out = capsys.readouterr().out
    assert "tokens: ['the', 'sky', 'is']" in out and "blocks.1.attn.hook_pattern" in out
    assert "layer 1 head 3: 'is' attends most to" in out and "next token: 'blue' 1.000" in out


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "parameters:" in out and "attention backend:" in out and "n_embd" in out


def test_info_json(blue_checkpoint, capsys):
    assert main(["info", "--json", "--checkpoint", blue_checkpoint]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == sum(  # embeddings, 2 blocks, final LN, head for n_embd 32
        [info["vocabulary"] * 32, 32 * 32, 2 * (4 * 32 + 32 * 96 + 96 + 32 * 32 + 32 + 32 * 128 + 128 + 128 * 32 + 32),
         2 * 32, info["vocabulary"] * 32])
    assert info["config"]["model_type"] == "gpt2" and info["attention_backend"] in info["available_backends"]
    assert info["trained_steps"] is None


@pytest.mark.parametrize("arguments, message", [
    (["generate", ""], "error: the prompt is empty"),
    (["generate", "zebra"], "error: none of the prompt's words"),
    (["generate", "the sky", "--top-p", "0"], "error: top_p must be in (0, 1]"),
    (["generate", "the sky", "--top-k", "-2"], "error: top_k must be >= 0"),
    (["generate", "the sky", "--max-new-tokens", "0"], "error: max_new_tokens must be at least 1"),
    (["generate", "the sky", "--checkpoint", "/no/such/dir"], "error: no checkpoint directory"),
    (["trace", "   "], "error: the prompt is empty"),
    (["info", "--checkpoint", "/no/such/dir"], "error: no checkpoint directory"),
])
def test_bad_input_gives_one_line_and_exit_code_2(arguments, message, capsys):
    assert main(arguments) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and captured.err.count("\n") == 1 and captured.out == ""


def test_a_corrupt_checkpoint_is_a_clean_error(blue_checkpoint, tmp_path, capsys):
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(blue_checkpoint, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 10)
    assert main(["generate", "the sky is", "--checkpoint", str(broken)]) == 2
    assert "is not a readable safetensors file" in capsys.readouterr().err


@pytest.mark.parametrize("arguments", [["generate"], ["generate", "x", "--top-k", "two"], ["trace"], ["info", "--nope"]])
def test_argument_errors_exit_with_code_2(arguments, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(arguments)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_trace_into_a_pipe_closed_early_ends_quietly():
    # `python -m core trace ... --json | head -c 10`: the reader leaves after 10 bytes of ~200 kB
    process = subprocess.Popen([sys.executable, "-m", "core", "trace", "the sky is", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.read(10) == '{"tokens":'
    process.stdout.close()
    error = process.stderr.read()
    process.wait(timeout=120)
    assert "Broken pipe" not in error and "Traceback" not in error and error == ""
