"""A run folder belongs to one live run: a second run on it is refused in one line naming the
holder, before it writes anything; a run killed with SIGKILL (even in the middle of a checkpoint
write) is taken over by the next, which removes the dead writer's temporary file and says so;
every way a run ends lets go of its folder; and two sweeps on one folder share out its runs
instead of training one twice."""
import hashlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

import main
import studies.run_pool
from engine.run_lock import claim_run_dir
from utils.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "configs/quickstart.yaml")
FAST = ["DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled", "PRINT_FREQ", "5", "DATA.TRAIN_SUBSET", "256"]
LOCK_FILE = ".run.lock"


def quickstart_argv(tmp_path, *opts, tag="run", epochs=2, flags=()):
    return ["--cfg", QUICKSTART, "--output", str(tmp_path), "--tag", tag, "--device", "cpu", *flags,
            "--opts", *FAST, "TRAIN.EPOCHS", str(epochs), *opts]


def run_dir(tmp_path, tag="run"):
    return tmp_path / "lenet_digits" / tag


def checksums(folder):
    if not folder.is_dir():
        return {}
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.iterdir() if path.is_file()}


def epochs_in_metrics(folder):
    return [json.loads(line)["epoch"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


def wait_for(condition, what, process=None, timeout=120):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        assert process is None or process.poll() is None, f"the process ended while waiting for {what}"
        time.sleep(0.05)


# --- defect 1: one live run per folder ------------------------------------------------------------

@pytest.mark.parametrize("hooked, second_flags", [("build_training_parts", ()),
                                                  ("train_one_epoch", ("--resume", "auto")),
                                                  ("train_one_epoch", ())],
                         ids=["started-at-the-same-time", "resume-auto-while-it-trains",
                              "same-tag-after-its-first-checkpoint"])
def test_a_second_run_on_a_live_run_folder_is_refused_naming_the_holder_and_changes_nothing(
        tmp_path, monkeypatch, capsys, hooked, second_flags):
    """The second run starts while the first is live: as the first builds its parts (it has
    claimed the folder and written nothing yet), or in its second epoch with --resume auto."""
    folder, second = run_dir(tmp_path), {}
    real = getattr(main, hooked)

    def start_a_second_run(*args, **kwargs):
        if not second and (hooked != "train_one_epoch" or args[3] == 1):
            second["started"] = True  # once: on old code the second run came back here
            before = checksums(folder)
            capsys.readouterr()
            second["code"] = main.main(quickstart_argv(tmp_path, flags=second_flags))
            second["err"] = capsys.readouterr().err
            second["changed"] = checksums(folder) != before
        return real(*args, **kwargs)

    monkeypatch.setattr(main, hooked, start_a_second_run)
    assert main.main(quickstart_argv(tmp_path)) == 0
    lines = second["err"].splitlines()
    assert second["code"] == 2 and len(lines) == 1 and lines[0].startswith("error: "), second["err"]
    assert f"pid {os.getpid()}" in lines[0] and socket.gethostname() in lines[0] and str(folder) in lines[0]
    assert not second["changed"]
    assert epochs_in_metrics(folder) == [0, 1]
    assert (folder / "log.txt").read_text().count("run folder:") == 1
    assert json.loads((folder / "summary.json").read_text())["status"] == "finished"
    assert not (folder / LOCK_FILE).exists()


def stop_at_second_epoch(folder, ending, claims_seen):
    """main.train_one_epoch that reads the folder's claim as epoch 1 starts, then ends the run
    with `ending`: a real SIGTERM (preemption), Ctrl-C, or a user error."""
    real = main.train_one_epoch

    def train_one_epoch(*args, **kwargs):
        if args[3] == 1:
            lock = folder / LOCK_FILE
            claims_seen.append(json.loads(lock.read_text()) if lock.exists() else None)
            if ending == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            elif ending == "ctrl-c":
                raise KeyboardInterrupt
            else:
                raise UserError("DATA.DATA_PATH vanished")
        return real(*args, **kwargs)

    return train_one_epoch


@pytest.mark.parametrize("ending, code", [("sigterm", 128 + signal.SIGTERM), ("ctrl-c", 130), ("error", 2)])
def test_a_run_holds_its_folder_while_it_trains_and_lets_go_however_it_ends(tmp_path, monkeypatch, ending, code):
    folder, claims_seen = run_dir(tmp_path), []
    monkeypatch.setattr(main, "train_one_epoch", stop_at_second_epoch(folder, ending, claims_seen))
    assert main.main(quickstart_argv(tmp_path)) == code
    (claim,) = claims_seen
    assert claim is not None and (claim["pid"], claim["host"]) == (os.getpid(), socket.gethostname())
    assert not (folder / LOCK_FILE).exists()  # released: a claim left behind would still be there


# --- defects 1 and 15: kill -9 leaves a claim and a checkpoint's temporary file ------------------

# main.py, except that the second write of last.pth (epoch 1's) stops half-way, as under kill -9.
HANG_IN_SECOND_LAST_PTH_WRITE = """
import sys, time
import torch
sys.path.insert(0, {repo!r})
import main
real_save, writes = torch.save, []
def save(state, f, *args, **kwargs):
    if "last.pth" in str(getattr(f, "name", f)):
        writes.append(f)
        if len(writes) == 2:
            f.write(b"half a checkpoint" * 1000)
            f.flush()
            time.sleep(600)
    return real_save(state, f, *args, **kwargs)
torch.save = save
sys.exit(main.main(sys.argv[1:]))
"""


def test_a_run_killed_in_a_checkpoint_write_is_taken_over_and_its_temp_file_removed(tmp_path):
    folder = run_dir(tmp_path)
    killed = subprocess.Popen([sys.executable, "-c", HANG_IN_SECOND_LAST_PTH_WRITE.format(repo=REPO),
                               *quickstart_argv(tmp_path)], cwd=REPO, stdout=subprocess.DEVNULL)
    temp_files = lambda: [path for path in folder.glob("*last.pth*") if path.name != "last.pth"]  # noqa: E731
    wait_for(lambda: folder.is_dir() and any(path.stat().st_size >= 17000 for path in temp_files()),
             "the second last.pth write", killed)
    (left_behind,) = temp_files()
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    live_writer = subprocess.Popen(["sleep", "60"])
    try:
        live_temp_file = folder / f".best.pth.tmp-{live_writer.pid}"
        live_temp_file.write_bytes(b"being written")
        assert main.main(quickstart_argv(tmp_path, flags=("--resume", "auto"))) == 0
        assert live_temp_file.read_bytes() == b"being written"
    finally:
        live_writer.kill()
        live_writer.wait()
    assert not left_behind.exists()
    log = (folder / "log.txt").read_text()
    assert "took over" in log and f"pid {killed.pid}" in log
    assert f"removed {left_behind}" in log
    assert epochs_in_metrics(folder) == [0, 1]
    assert not (folder / LOCK_FILE).exists()


# --- sweeps started twice at once -------------------------------------------------------------------

def load_sweep():
    spec = importlib.util.spec_from_file_location("script_sweep", os.path.join(REPO, "scripts", "sweep.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# main.py, except that it waits for the file `go` before its first epoch.
WAIT_FOR_GO = """
import os, sys, time
sys.path.insert(0, {repo!r})
import main
real = main.train_one_epoch
def train_one_epoch(*args, **kwargs):
    while not os.path.exists({go!r}):
        time.sleep(0.05)
    return real(*args, **kwargs)
main.train_one_epoch = train_one_epoch
sys.exit(main.main(sys.argv[1:]))
"""


def sweep_argv(tmp_path):
    return ["--cfg", QUICKSTART, "--grid", "TRAIN.LR=0.01,0.02", "--name", "lr", "--output", str(tmp_path),
            "--device", "cpu", "--opts", *FAST, "TRAIN.EPOCHS", "1", "TRAIN.WARMUP_EPOCHS", "0"]


def finished(folder):
    return (folder / "summary.json").exists() and json.loads((folder / "summary.json").read_text())["status"] == \
        "finished"


def test_a_sweep_leaves_a_run_another_process_holds_to_it_goes_on_and_reads_it_once_it_ends(
        tmp_path, monkeypatch, capsys):
    sweep = load_sweep()
    monkeypatch.setattr(studies.run_pool, "POLL_S", 0.1)
    argv = sweep_argv(tmp_path)
    _, [(first, first_argv, _), (second, _, _)] = sweep.plan(sweep.parse_args(argv))
    go = tmp_path / "go"
    holder = subprocess.Popen([sys.executable, "-c", WAIT_FOR_GO.format(repo=REPO, go=str(go)), *first_argv],
                              cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.isfile(os.path.join(first, "config.yaml")), "the holder's run folder", holder)
        # The holder trains once the sweep has finished the other run.
        releaser = threading.Thread(target=lambda: (wait_for(lambda: finished(tmp_path / second), "the other run"),
                                                    go.touch()), daemon=True)
        releaser.start()
        capsys.readouterr()
        assert sweep.main(argv) == 0
        out = capsys.readouterr().out
    finally:
        go.touch()
        holder.wait(120)
    assert holder.returncode == 0
    said = [line for line in out.splitlines() if first in line]
    # Left to its holder, (waited for, if the holder had not ended by then), then read; never trained here.
    assert f"in use by pid {holder.pid}" in said[0] and said[-1].endswith("finished before, skipped")
    assert not [line for line in said if line.endswith((": starting", ": resuming"))]
    assert out.index(f"{second}: starting") < out.index(said[-1])
    for folder in (first, second):
        assert epochs_in_metrics(tmp_path / folder) == [0]
        assert (tmp_path / folder / "log.txt").read_text().count("run folder:") == 1
    table = pd.read_csv(tmp_path / "sweeps" / "lr" / "compare.csv")
    assert list(table["status"]) == ["finished", "finished"]


def test_a_sweep_whose_run_another_sweep_claimed_first_neither_fails_it_nor_trains_it_twice(
        tmp_path, monkeypatch, capsys):
    """Between a sweep's look at a folder and its run's claim, another sweep's run may take the
    folder: the sweep's own run is refused (exit 2), and the point is still the other's. Here the
    other takes the first folder and is still running (the sweep waits for it), and finishes the
    second before the sweep's run starts."""
    sweep = load_sweep()
    monkeypatch.setattr(studies.run_pool, "POLL_S", 0.05)
    argv = sweep_argv(tmp_path)
    _, [(first, _, _), (second, _, _)] = sweep.plan(sweep.parse_args(argv))
    claims, launched = [], []

    def finish_by_another(folder):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "summary.json"), "w") as f:
            json.dump({"status": "finished"}, f)

    def start(command, env, console):
        folder = first if not launched else second
        launched.append(folder)
        if folder == first:  # the other sweep's run holds it, and ends a moment later
            claims.append(claim_run_dir(folder))
            threading.Timer(0.3, lambda: (finish_by_another(folder), claims[0].release())).start()
        else:
            finish_by_another(folder)
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(2)"])  # refused: the folder is taken

    monkeypatch.setattr(studies.run_pool, "start_run_process", start)
    assert sweep.main(argv) == 0
    out = capsys.readouterr().out
    assert launched == [first, second]
    assert f"{first}: in use by pid {os.getpid()}" in out and f"{first}: finished before, skipped" in out
    assert f"{second}: finished by another process" in out and "failed" not in out
