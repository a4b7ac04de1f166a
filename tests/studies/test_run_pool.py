"""studies.run_pool: the slots of --devices and --parallel, runs pinned to their GPU with no two
live runs on one, and Ctrl-C stopping every run in flight (each asked to save) before the pool
gives up. Stand-in runs (small Python processes) take the place of main.py here; the sweeps of
tests/end_to_end/test_parallel_sweeps.py train real ones."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import studies.run_pool
from studies.run_pool import CONSOLE_FILE, RunPoint, RunPool, Slot, parse_slots
from utils.errors import UserError

# A stand-in run: notes its GPU and when it ran in ran.json of its folder (the last argument), and
# on SIGTERM notes that it was asked to stop and exits as main.py does after saving.
STAND_IN = """
import json, os, signal, sys, time
folder = sys.argv[-1]
start = time.time()
def stop(signum, frame):
    with open(os.path.join(folder, "stopped"), "w") as f:
        f.write(signal.Signals(signum).name)
    sys.exit(128 + signum)
signal.signal(signal.SIGTERM, stop)
print("console line of", os.path.basename(folder), flush=True)
time.sleep(float(os.environ.get("STAND_IN_SECONDS", "0.4")))
with open(os.path.join(folder, "ran.json"), "w") as f:
    json.dump({"gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start, "end": time.time(),
               "device": sys.argv[-3:-1]}, f)
"""


@pytest.fixture
def stand_ins(monkeypatch):
    """Runs are STAND_IN processes; returns the commands they were started with."""
    commands: list[list[str]] = []

    def start(command, env, console):
        commands.append(command)
        folder = command[command.index("TAG") + 1] if "TAG" in command else None
        os.makedirs(folder, exist_ok=True)
        return subprocess.Popen([sys.executable, "-c", STAND_IN, *command[-2:], folder], env=env, stdout=console,
                                stderr=subprocess.STDOUT if console else None)

    monkeypatch.setattr(studies.run_pool, "start_run_process", start)
    monkeypatch.setattr(studies.run_pool, "POLL_S", 0.02)
    return commands


def points(tmp_path, count: int) -> list[RunPoint]:
    """`count` points whose argv names their folder after TAG (as the stand-in reads it)."""
    folders = [str(tmp_path / f"run{number}") for number in range(count)]
    return [RunPoint(f"[{number + 1}/{count}]", folder, ["--opts", "TAG", folder], {"TRAIN.LR": number})
            for number, folder in enumerate(folders)]


def test_devices_give_one_slot_per_gpu_each_seeing_only_its_own():
    assert parse_slots("cuda:0,cuda:2", None) == [Slot("cuda:0", "0"), Slot("cuda:2", "2")]
    assert parse_slots("1, 3", None) == [Slot("cuda:1", "1"), Slot("cuda:3", "3")]
    assert parse_slots("auto", None, device_count=lambda: 3) == [Slot(f"cuda:{i}", str(i)) for i in range(3)]


def test_without_gpus_auto_falls_back_to_parallel_processes_and_neither_flag_is_one_run_at_a_time():
    assert parse_slots("auto", 2, device_count=lambda: 0) == [Slot("process 1"), Slot("process 2")]
    assert parse_slots("auto", None, device_count=lambda: 0) == [Slot("process 1")]
    assert parse_slots(None, 3) == [Slot("process 1"), Slot("process 2"), Slot("process 3")]
    assert parse_slots(None, None) == [Slot("process 1")]


@pytest.mark.parametrize("devices, parallel, message", [
    ("cuda:0,gpu1", None, "'gpu1' is not a CUDA device"),
    ("cuda:1,1", None, "names cuda:1 twice"),
    ("cuda:0,cuda:1", 2, "--devices and --parallel"),
    (None, 0, "--parallel takes 1 or more"),
])
def test_bad_slots_are_refused_in_one_line(devices, parallel, message):
    with pytest.raises(UserError, match=message):
        parse_slots(devices, parallel)


def test_runs_are_pinned_to_their_gpu_and_no_two_live_runs_share_one(tmp_path, stand_ins, monkeypatch):
    monkeypatch.setenv("STAND_IN_SECONDS", "0.3")
    pool_points = points(tmp_path, 5)
    records = RunPool(parse_slots("cuda:0,cuda:3", None)).run(pool_points)
    assert sorted(records) == [0, 1, 2, 3, 4]
    ran = [json.loads((tmp_path / f"run{number}" / "ran.json").read_text()) for number in range(5)]
    assert {run["gpu"] for run in ran} == {"0", "3"}
    assert all(run["device"] == ["DEVICE", "cuda"] for run in ran)  # each sees its GPU as cuda (device 0)
    for gpu in ("0", "3"):
        spans = sorted((run["start"], run["end"]) for run in ran if run["gpu"] == gpu)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))
    # Both GPUs were busy at once.
    assert any(a["gpu"] != b["gpu"] and a["start"] < b["end"] and b["start"] < a["end"] for a in ran for b in ran)
    # With more than one slot, each run's console is in its folder.
    assert (tmp_path / "run0" / CONSOLE_FILE).read_text() == "console line of run0\n"


def test_one_slot_runs_one_after_another_with_the_console_left_alone(tmp_path, stand_ins, capfd):
    RunPool(parse_slots(None, None)).run(points(tmp_path, 2))
    ran = [json.loads((tmp_path / f"run{number}" / "ran.json").read_text()) for number in range(2)]
    assert ran[0]["end"] <= ran[1]["start"] and ran[0]["gpu"] == os.environ.get("CUDA_VISIBLE_DEVICES")
    assert ran[0]["device"] == ["TAG", str(tmp_path / "run0")]  # no DEVICE added without --devices
    assert "console line of run0" in capfd.readouterr().out and not (tmp_path / "run0" / CONSOLE_FILE).exists()


def test_a_failing_run_does_not_stop_the_others(tmp_path, stand_ins, monkeypatch, capsys):
    real_start = studies.run_pool.start_run_process

    def start(command, env, console):
        if command[-1].endswith("run1"):
            return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
        return real_start(command, env, console)

    monkeypatch.setattr(studies.run_pool, "start_run_process", start)
    records = RunPool(parse_slots(None, 2)).run(points(tmp_path, 3))
    assert records[1].status == "failed (exit 3)" and records[1].config == {"TRAIN.LR": 1}
    assert (tmp_path / "run0" / "ran.json").exists() and (tmp_path / "run2" / "ran.json").exists()
    assert f"[2/3] {tmp_path / 'run1'}: failed with exit code 3; see" in capsys.readouterr().out


def test_ctrl_c_asks_every_run_in_flight_to_save_and_waits_for_them(tmp_path, stand_ins, monkeypatch):
    monkeypatch.setenv("STAND_IN_SECONDS", "30")
    pool_points = points(tmp_path, 3)
    started = time.monotonic()

    def interrupt_once_both_run():
        while not all(os.path.isfile(os.path.join(point.run_dir, CONSOLE_FILE))
                      and os.path.getsize(os.path.join(point.run_dir, CONSOLE_FILE)) for point in pool_points[:2]):
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_both_run, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        RunPool(parse_slots(None, 2)).run(pool_points)
    assert time.monotonic() - started < 20
    for point in pool_points[:2]:
        assert open(os.path.join(point.run_dir, "stopped")).read() == "SIGTERM"
    assert not os.path.exists(pool_points[2].run_dir)  # never started
