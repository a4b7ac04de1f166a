"""Sweeps that run several runs at once (scripts/sweep.py --parallel, studies/run_pool.py), end to
end on the quickstart: the same metrics as one run after another, a second call that trains
nothing, a sweep stopped midway that a second call completes with exact resumes, and two sweeps
started at once on one folder that train each point once."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "configs/quickstart.yaml")
SWEEP = os.path.join(REPO, "scripts", "sweep.py")
FAST = ["DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled", "PRINT_FREQ", "5", "DATA.TRAIN_SUBSET", "256",
        "TRAIN.WARMUP_EPOCHS", "0"]
FOUR_LRS = "TRAIN.LR=1e-3,3e-3,1e-2,3e-2"
# What differs between two runs of one config: the clock and the memory.
TIMING_KEYS = ("epoch_time", "images_per_sec", "peak_memory_mb", "peak_tensor_mb", "peak_rss_mb")


def load_sweep():
    spec = importlib.util.spec_from_file_location("script_sweep", SWEEP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sweep_argv(output, grid: str = FOUR_LRS, epochs: int = 1, flags=()) -> list[str]:
    return ["--cfg", QUICKSTART, "--grid", grid, "--name", "lr", "--output", str(output), "--device", "cpu", *flags,
            "--opts", *FAST, "TRAIN.EPOCHS", str(epochs)]


def metrics_by_run(output) -> dict[str, list[dict]]:
    """Every run's metrics.jsonl rows, without the timing columns, by run folder name."""
    runs = output / "sweeps" / "lr" / "lenet_digits"
    return {run: [{key: value for key, value in json.loads(line).items() if key not in TIMING_KEYS}
                  for line in (runs / run / "metrics.jsonl").read_text().splitlines()]
            for run in sorted(os.listdir(runs))}


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The 4-LR grid, one run after another, 2 epochs: the reference."""
    output = tmp_path_factory.mktemp("sequential")
    assert load_sweep().main(sweep_argv(output, epochs=2)) == 0
    return output


def test_a_parallel_sweep_trains_what_a_sequential_one_does_and_a_second_call_trains_nothing(
        sequential, tmp_path, capsys):
    sweep = load_sweep()
    capsys.readouterr()
    assert sweep.main(sweep_argv(tmp_path, epochs=2, flags=("--parallel", "2"))) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith("4 runs, up to 2 at once (process 1, process 2)")
    assert out.count(": starting on process") == 4 and out.count(": finished in ") == 4
    assert metrics_by_run(tmp_path) == metrics_by_run(sequential)
    assert len(metrics_by_run(tmp_path)["lr1e-3"]) == 2
    runs = tmp_path / "sweeps" / "lr" / "lenet_digits"
    assert "epoch 2/2" in (runs / "lr1e-3" / "console.txt").read_text()  # each run's console in its folder
    assert (tmp_path / "sweeps" / "lr" / "compare.csv").read_text().count("\n") == 5
    assert sweep.main(sweep_argv(tmp_path, epochs=2, flags=("--parallel", "2"))) == 0
    assert capsys.readouterr().out.count("finished before, skipped") == 4


def test_a_parallel_sweep_stopped_midway_is_completed_by_a_second_call_with_exact_resumes(sequential, tmp_path):
    argv = sweep_argv(tmp_path, epochs=2, flags=("--parallel", "2"))
    process = subprocess.Popen([sys.executable, SWEEP, *argv], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    runs = tmp_path / "sweeps" / "lr" / "lenet_digits"
    deadline = time.time() + 300
    # Stop it once two runs are in their second epoch: both have a metrics row and neither finished.
    while not (runs.is_dir() and sum((runs / run / "metrics.jsonl").is_file() for run in os.listdir(runs)) >= 2):
        assert time.time() < deadline and process.poll() is None, process.stderr.read() if process.poll() else ""
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(120) == 130
    assert "sweep interrupted" in process.stderr.read()
    stopped = {run: json.loads((runs / run / "summary.json").read_text())["status"] for run in os.listdir(runs)
               if (runs / run / "summary.json").is_file()}
    assert "interrupted" in stopped.values() and list(stopped.values()).count("finished") < 4
    assert load_sweep().main(argv) == 0
    assert metrics_by_run(tmp_path) == metrics_by_run(sequential)
    resumed = [run for run in os.listdir(runs) if "resumed from" in (runs / run / "log.txt").read_text()]
    assert resumed, "no run was resumed"


def test_two_sweeps_started_at_once_on_one_folder_train_each_point_once(tmp_path):
    argv = sweep_argv(tmp_path)
    sweeps = [subprocess.Popen([sys.executable, SWEEP, *argv], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [sweep.communicate(timeout=600)[0] for sweep in sweeps]
    assert [sweep.returncode for sweep in sweeps] == [0, 0], outputs
    runs = tmp_path / "sweeps" / "lr" / "lenet_digits"
    assert sorted(os.listdir(runs)) == ["lr1e-2", "lr1e-3", "lr3e-2", "lr3e-3"]
    # Each point trained once (a run started where the other sweep's had just claimed the folder is
    # refused before it trains, and the point left to that one).
    for run in os.listdir(runs):
        assert (runs / run / "log.txt").read_text().count("run folder:") == 1
        assert len((runs / run / "metrics.jsonl").read_text().splitlines()) == 1
