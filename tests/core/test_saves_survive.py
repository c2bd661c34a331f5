"""Issue 30: a save killed at any moment (kill -9) leaves the name a complete checkpoint, old or new,
and the next save, load or listing tidies what it left; a full disk and two saves racing for one
name are each one clear sentence."""
from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import random
import signal
import threading
import time

import pytest
from helpers.models import random_model
from safetensors import SafetensorError

from core.cli import main
from core.io import checkpoint
from core.io.models_dir import ROOT_VARIABLE, checkpoint_names, save_named
from core.model.model import load_checkpoint

KILLS = 300


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _save_forever(path, models, exchange: bool) -> None:
    """The child: save the two models over `path` in turn until killed."""
    if not exchange:
        checkpoint._renameat2 = lambda source, target, flags: False  # the rename-aside fallback
    number = 0
    while True:
        models[number % 2].save(path, overwrite=True)
        number += 1


def _kill_saves(tmp_path, kills: int, exchange: bool) -> None:
    models = [random_model(seed=1), random_model(seed=2)]
    path = tmp_path / "model"
    models[0].save(path)
    weights = {_digest(path / checkpoint.WEIGHTS_FILE)}
    models[1].save(tmp_path / "other")
    weights.add(_digest(tmp_path / "other" / checkpoint.WEIGHTS_FILE))
    context = multiprocessing.get_context("fork")  # a fork starts in milliseconds, with everything imported
    rng = random.Random(0)
    missing = 0
    for _ in range(kills):
        child = context.Process(target=_save_forever, args=(path, models, exchange), daemon=True)
        child.start()
        time.sleep(rng.uniform(0, 0.03))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        if exchange:  # the name itself never misses a beat: complete before any recovery
            assert checkpoint.is_checkpoint(path), "the name does not hold a checkpoint after kill -9"
            assert _digest(path / checkpoint.WEIGHTS_FILE) in weights
        else:
            missing += not path.exists()
        model = load_checkpoint(path)  # recovers first: a .old copy is put back, staging folders go
        assert _digest(path / checkpoint.WEIGHTS_FILE) in weights
        assert model.config == models[0].config
        leftovers = [name for name in os.listdir(tmp_path) if name.startswith(".")]
        assert leftovers == [], f"staging folders left after recovery: {leftovers}"
    return missing


@pytest.mark.slow
def test_a_save_killed_at_any_moment_leaves_a_complete_checkpoint(tmp_path):
    began = time.perf_counter()
    _kill_saves(tmp_path, KILLS, exchange=True)
    assert time.perf_counter() - began < 90


@pytest.mark.slow
def test_the_rename_aside_fallback_is_recovered_after_kill(tmp_path):
    _kill_saves(tmp_path, 60, exchange=False)


def test_recovery_puts_back_a_complete_old_copy_and_removes_dead_staging(tmp_path, small_model):
    path = tmp_path / "model"
    small_model.save(path)
    old = tmp_path / ".model.0123abcd.old"
    os.rename(path, old)  # killed between the two renames of the fallback
    (tmp_path / ".model.89abcdef.partial").mkdir()  # killed while writing
    (tmp_path / ".model.89abcdef.partial" / "config.json").write_text("{")
    assert checkpoint.is_checkpoint(old) and not path.exists()
    load_checkpoint(path)
    assert checkpoint.is_checkpoint(path) and sorted(os.listdir(tmp_path)) == ["model"]


def test_a_staging_folder_a_live_save_holds_is_left_alone(tmp_path, small_model):
    path = tmp_path / "model"
    small_model.save(path)
    staging, descriptor = checkpoint._staging(tmp_path, "model", "partial")
    try:
        checkpoint.recover(path)
        assert staging.is_dir()
    finally:
        os.close(descriptor)
    checkpoint.recover(path)
    assert not staging.exists()


def test_listing_the_models_folder_tidies_leftovers(tmp_path, small_model, monkeypatch):
    monkeypatch.setenv(ROOT_VARIABLE, str(tmp_path))
    save_named(small_model, "kept")
    os.rename(tmp_path / "kept", tmp_path / ".kept.0123abcd.old")
    (tmp_path / ".kept.89abcdef.partial").mkdir()
    assert checkpoint_names() == ["kept"]
    assert sorted(os.listdir(tmp_path)) == ["kept"]


@pytest.mark.parametrize("failure", [
    OSError(errno.ENOSPC, "No space left on device"),
    SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                    'message: "No space left on device" })'),
])
def test_a_full_disk_is_one_sentence(tmp_path, small_model, monkeypatch, failure):
    path = tmp_path / "model"
    small_model.save(path)
    before = {name: (path / name).read_bytes() for name in os.listdir(path)}

    def full_disk(tensors, filename, metadata=None):
        with open(filename, "wb") as file:
            file.write(b"half")
        raise failure

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    with pytest.raises(ValueError, match=r"^could not save model: the disk is full") as raised:
        random_model(seed=3).save(path, overwrite=True)
    assert str(tmp_path) not in str(raised.value)
    assert {name: (path / name).read_bytes() for name in os.listdir(path)} == before
    assert sorted(os.listdir(tmp_path)) == ["model"]
    monkeypatch.setenv(ROOT_VARIABLE, str(tmp_path))
    with pytest.raises(ValueError, match="^could not save the model as 'fresh': the disk is full"):
        save_named(small_model, "fresh")


def test_a_full_disk_in_the_cli_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    def full_disk(tensors, filename, metadata=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    code = main(["train", "--steps", "2", "--eval-every", "2", "--quiet", "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2
    assert error.count("\n") == 1 and error.startswith("error: could not save out: the disk is full")
    assert os.listdir(tmp_path) == []


def test_two_saves_racing_for_one_name(tmp_path, small_model, monkeypatch):
    path = tmp_path / "model"
    both_written = threading.Barrier(2, timeout=30)
    write = checkpoint._write_files

    def write_then_wait(folder, model, history):
        write(folder, model, history)
        both_written.wait()  # both saves have checked the name is free and written their files

    monkeypatch.setattr(checkpoint, "_write_files", write_then_wait)
    outcomes = []

    def save(seed):
        try:
            random_model(seed=seed).save(path)
            outcomes.append("saved")
        except Exception as error:  # noqa: BLE001 - the outcome is what is tested
            outcomes.append(error)

    threads = [threading.Thread(target=save, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("saved") == 1, outcomes
    [error] = [outcome for outcome in outcomes if outcome != "saved"]
    assert isinstance(error, ValueError)
    assert str(error).startswith("a checkpoint named model was saved by someone else at the same time")
    assert str(tmp_path) not in str(error)
    assert checkpoint.is_checkpoint(path) and sorted(os.listdir(tmp_path)) == ["model"]
    load_checkpoint(path)
