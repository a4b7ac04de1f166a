"""Checkpoints: atomic writes that survive a kill mid-save, and safe, clear loading."""
import errno
import os
import random
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from engine.checkpoint import capture_rng_state, restore_rng_state
from utils.checkpoint_io import load_checkpoint, save_checkpoint
from utils.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def state(epoch):
    return {"model": {"w": torch.full((3,), float(epoch))}, "optimizer": {}, "scheduler": {}, "scaler": {},
            "epoch": epoch, "best_acc1": 50.0, "config": "SEED: 0\n", "rng": capture_rng_state(), "wandb_id": None}


def test_round_trip_and_no_temporary_files_left(tmp_path):
    path = tmp_path / "last.pth"
    save_checkpoint(str(path), state(3))
    save_checkpoint(str(path), state(4))
    loaded = load_checkpoint(str(path))
    assert loaded["epoch"] == 4 and torch.equal(loaded["model"]["w"], torch.full((3,), 4.0))
    assert os.listdir(tmp_path) == ["last.pth"]


def test_rng_state_restores_python_numpy_and_torch_streams(tmp_path):
    import numpy as np
    save_checkpoint(str(tmp_path / "c.pth"), state(0))
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(load_checkpoint(str(tmp_path / "c.pth"))["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_a_save_onto_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / "last.pth")
    save_checkpoint(path, state(1))

    def disk_full(obj, f):
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(UserError) as error:
        save_checkpoint(path, state(2))
    monkeypatch.undo()
    assert str(error.value) == (f"could not write checkpoint {path} (No space left on device); the previous one is "
                                f"unchanged. Free disk space or make {tmp_path} writable, then continue with "
                                f"--resume auto")
    assert load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["last.pth"]


def test_a_save_into_a_read_only_folder_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = str(tmp_path / "best.pth")
    save_checkpoint(path, state(1))

    def read_only(src, dst):  # what rename(2) reports on a read-only mount (chmod does not stop root)
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(UserError, match=r"\(Read-only file system\); the previous one is unchanged"):
        save_checkpoint(path, state(2))
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["best.pth"]


@pytest.mark.slow
def test_killing_the_process_during_a_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    path = str(tmp_path / "last.pth")
    child = textwrap.dedent(f"""
        import sys, time, torch
        sys.path.insert(0, {REPO!r})
        from tests.engine.test_checkpoint import state
        from utils.checkpoint_io import save_checkpoint
        save_checkpoint({path!r}, state(1))
        def slow_save(obj, f):
            f.write(b"x" * 100000)
            f.flush()
            print("saving", flush=True)
            time.sleep(60)
        torch.save = slow_save
        save_checkpoint({path!r}, state(2))
    """)
    process = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "saving"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert load_checkpoint(path)["epoch"] == 1


def test_missing_truncated_and_foreign_files_are_one_line_user_errors(tmp_path):
    with pytest.raises(UserError, match="checkpoint not found: .*nope.pth"):
        load_checkpoint(str(tmp_path / "nope.pth"))
    good = tmp_path / "good.pth"
    save_checkpoint(str(good), state(1))
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated.pth is truncated, corrupt or unsafe to load") as error:
        load_checkpoint(str(truncated))
    assert "\n" not in str(error.value)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(UserError, match="notes.pth is truncated, corrupt or unsafe to load"):
        load_checkpoint(str(text))
    foreign = tmp_path / "resnet18-f37072fd.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, foreign)
    with pytest.raises(UserError, match="not a vision-zoo checkpoint \\(missing: model, optimizer"):
        load_checkpoint(str(foreign))


def test_loading_refuses_pickled_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"model": Payload()}, path)
    with pytest.raises(UserError, match="truncated, corrupt or unsafe to load"):
        load_checkpoint(str(path))
