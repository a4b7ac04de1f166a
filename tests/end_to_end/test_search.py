"""scripts/search.py end to end on the quickstart: 8 trials over a learning-rate range that reaches
hopeless values (10.0), the median pruner stopping some, the study in SQLite continued to 12
trials by a second call, best_config.yaml training to the best trial's score, and a search
stopped by Ctrl-C resuming its trial in flight."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

import main
import studies.search_report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "configs/quickstart.yaml")
FAST = ["DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled", "PRINT_FREQ", "50", "DATA.TRAIN_SUBSET", "256",
        "TRAIN.EPOCHS", "4", "TRAIN.WARMUP_EPOCHS", "0"]
NAME = "lenet_digits-search"


def search_main(argv: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("script_search", os.path.join(REPO, "scripts", "search.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def search_argv(output, trials: int, *flags: str) -> list[str]:
    # Seed 2 draws good rates before hopeless ones, so the median has good trials to compare against.
    return ["--cfg", QUICKSTART, "--space", "TRAIN.LR=loguniform:1e-4:10", "--trials", str(trials), "--seed", "2",
            "--output", str(output), "--device", "cpu", *flags, "--opts", *FAST]


def load_study(output) -> optuna.Study:
    storage = f"sqlite:///{output / 'searches' / NAME / 'study.db'}"
    return optuna.load_study(study_name=NAME, storage=storage)


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """The output folder of an 8-trial search, and the study's trials as it ended."""
    output = tmp_path_factory.mktemp("search")
    assert search_main(search_argv(output, 8)) == 0
    return output, [(trial.number, trial.state, trial.value) for trial in load_study(output).trials]


def test_the_median_pruner_stops_hopeless_trials_cleanly(search):
    output, trials = search
    assert len(trials) == 8
    pruned = [number for number, state, _ in trials if state == optuna.trial.TrialState.PRUNED]
    assert pruned and len(pruned) < 8
    for number in pruned:
        run = output / "searches" / NAME / "lenet_digits" / f"trial{number}"
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "pruned" and summary["epochs_completed"] < 4
        assert not (run / "last.pth").exists()
    complete = [number for number, state, _ in trials if state == optuna.trial.TrialState.COMPLETE]
    for number in complete:
        summary = json.loads((output / "searches" / NAME / "lenet_digits" / f"trial{number}" / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["epochs_completed"] == 4


def test_the_report_ranks_the_trials_and_draws_optuna_s_pictures(search):
    output, trials = search
    folder = output / "searches" / NAME
    best = max((value, number) for number, state, value in trials if state == optuna.trial.TrialState.COMPLETE)
    rows = (folder / "top_trials.md").read_text().splitlines()
    assert rows[0] == f"# {NAME}: 8 trials, val_acc1 (maximize)"
    first = [cell.strip() for cell in rows[4].split("|")[1:-1]]
    assert first[:2] == [str(best[1]), "complete"] and float(first[2]) == pytest.approx(best[0], abs=0.01)
    for name in ("compare.png", "compare.csv", "optimization_history.png", "parallel_coordinate.png",
                 "best_config.yaml"):
        assert (folder / name).stat().st_size > 0, name


def test_a_second_call_continues_the_study_and_the_best_config_trains_to_the_best_score(search, tmp_path, capsys):
    output, trials = search
    assert search_main(search_argv(output, 12)) == 0
    study = load_study(output)
    assert len(study.trials) == 12
    assert [(trial.number, trial.state, trial.value) for trial in study.trials[:8]] == trials  # kept as they were
    capsys.readouterr()
    assert search_main(search_argv(output, 12, "--report")) == 0  # trains nothing
    assert "starting" not in capsys.readouterr().out
    best_config = output / "searches" / NAME / "best_config.yaml"
    assert f"trial {study.best_trial.number}" in best_config.read_text().splitlines()[0]
    assert main.main(["--cfg", str(best_config), "--output", str(tmp_path), "--tag", "best", "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "lenet_digits" / "best" / "summary.json").read_text())
    assert abs(summary["best_val_acc1"] - study.best_value) <= 0.5


def test_a_search_stopped_by_ctrl_c_resumes_its_trial_in_flight(tmp_path):
    argv = search_argv(tmp_path, 2, "--pruner", "none")
    process = subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", "search.py"), *argv], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "searches" / NAME / "lenet_digits" / "trial0" / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 1):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(120) == 130 and "search interrupted" in process.stderr.read()
    assert [trial.state for trial in load_study(tmp_path).trials] == [optuna.trial.TrialState.RUNNING]
    assert search_main(argv) == 0
    study = load_study(tmp_path)
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    log = (tmp_path / "searches" / NAME / "lenet_digits" / "trial0" / "log.txt").read_text()
    assert "resumed from" in log
    assert len(metrics.read_text().splitlines()) == 4


def test_the_report_logs_the_trials_comparison_to_the_search_s_wandb_group(search, monkeypatch):
    output, _ = search
    calls = []
    monkeypatch.setattr(studies.search_report, "log_comparison", lambda *args: calls.append(args))
    assert search_main(search_argv(output, 8, "--report")) == 0
    [(mode, _, _, group, figures, table, out_dir)] = calls
    assert (mode, group, out_dir) == ("disabled", NAME, str(output / "searches" / NAME))
    assert figures == {"compare": str(output / "searches" / NAME / "compare.png")} and len(table) >= 8
