"""Runs that survive: resume keeps the run's own config, exact resume (also inside an epoch and
with loader workers), preemption signals, non-finite losses, and checkpoint writes that fail."""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch

import engine.loop
import evaluation.evaluate
import main
import models.build
import utils.checkpoint_io
from config import get_config
from engine.preemption import StopRequest
from optimizer import build_optimizer
from tests.conftest import patch_evaluate

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "configs/quickstart.yaml")
FAST = ["WANDB.MODE", "disabled", "DATA.BATCH_SIZE", "64", "PRINT_FREQ", "5"]


def quickstart(tmp_path, *opts, tag="run", flags=(), workers=0):
    return main.main(["--cfg", QUICKSTART, "--output", str(tmp_path), "--tag", tag, "--device", "cpu", *flags,
                      "--opts", *FAST, "DATA.NUM_WORKERS", str(workers), *opts])


def run_dir(tmp_path, tag="run"):
    return tmp_path / "lenet_digits" / tag


def read_metrics(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def interrupt_at_epoch(monkeypatch, epoch):
    """Ctrl-C (KeyboardInterrupt) as epoch `epoch` starts."""
    real = main.train_one_epoch

    def train_one_epoch(*args, **kwargs):
        if args[3] == epoch:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(main, "train_one_epoch", train_one_epoch)


def files_and_times(folder):
    return {name: (folder / name).stat().st_mtime_ns for name in os.listdir(folder)}


# --- defect 1: a resumed run keeps its own config -------------------------------------------------

def test_resuming_with_another_lr_is_refused_in_one_line_before_anything_is_written(tmp_path, capsys):
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "1") == 0
    before = files_and_times(run_dir(tmp_path))
    capsys.readouterr()
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "2", "TRAIN.LR", "0.5", flags=["--resume", "auto"]) == 2
    err = capsys.readouterr().err
    last = run_dir(tmp_path) / "last.pth"
    assert err.startswith(f"error: {last} continues with the config it was trained with, and this command changes "
                          f"TRAIN.LR (0.5; the run has 0.003); only TRAIN.EPOCHS, ")
    assert err.endswith(f"start a new run with --opts MODEL.PRETRAINED {last}\n") and err.count("\n") == 1
    assert files_and_times(run_dir(tmp_path)) == before


def test_resume_auto_without_the_starting_opts_keeps_the_runs_epochs_and_lr(tmp_path, monkeypatch):
    """Started with TRAIN.EPOCHS 4 and TRAIN.LR 0.01, resumed without them: still 4 epochs at that LR."""
    assert quickstart(tmp_path / "straight", "TRAIN.EPOCHS", "4", "TRAIN.LR", "0.01") == 0
    interrupt_at_epoch(monkeypatch, 2)
    assert quickstart(tmp_path / "split", "TRAIN.EPOCHS", "4", "TRAIN.LR", "0.01") == 130
    monkeypatch.undo()
    assert quickstart(tmp_path / "split", flags=["--resume", "auto"]) == 0
    straight, split = read_metrics(run_dir(tmp_path / "straight")), read_metrics(run_dir(tmp_path / "split"))
    assert [row["epoch"] for row in split] == [0, 1, 2, 3]
    assert [row["lr"] for row in split] == pytest.approx([row["lr"] for row in straight])
    log = (run_dir(tmp_path / "split") / "log.txt").read_text()
    assert f"the run keeps its own config, not {QUICKSTART}'s TRAIN.EPOCHS 15 (the run has 4), TRAIN.LR 0.003 " \
           f"(the run has 0.01)" in log


def test_raising_train_epochs_on_resume_replans_the_lr_schedule_and_says_so(tmp_path):
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "2") == 0
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "4", flags=["--resume", "auto"]) == 0
    rows = read_metrics(run_dir(tmp_path))
    assert [row["epoch"] for row in rows] == [0, 1, 2, 3]
    assert "resume changes TRAIN.EPOCHS 2 -> 4" in (run_dir(tmp_path) / "log.txt").read_text()
    # The cosine schedule now spans 4 epochs: epoch 3 starts at the 4-epoch plan's LR, not near MIN_LR.
    cfg = get_config(QUICKSTART, ["TRAIN.EPOCHS", "4"])
    model = models.build.build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    scheduler = main.build_scheduler(cfg, optimizer, 22)
    expected = cfg.TRAIN.LR * scheduler.lr_lambdas[0](2 * 22)
    assert rows[2]["lr"] == pytest.approx(expected)


# --- defect 5: changes that used to crash after the run folder was written -----------------------

@pytest.mark.parametrize("opts, key", [
    (["TRAIN.DECAY_NORM_AND_BIAS", "True"], "TRAIN.DECAY_NORM_AND_BIAS (True; the run has False)"),
    (["TRAIN.OPTIMIZER.NAME", "sgd"], "TRAIN.OPTIMIZER.NAME ('sgd'; the run has 'adamw')"),
])
def test_resume_with_another_optimizer_setup_is_one_line_not_a_traceback(tmp_path, capsys, opts, key):
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "1") == 0
    capsys.readouterr()
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "2", *opts, flags=["--resume", "auto"]) == 2
    err = capsys.readouterr().err
    assert key in err and err.count("\n") == 1 and "Traceback" not in err


def test_fp16_loss_scaling_starts_afresh_from_a_checkpoint_without_a_scaler_state(tmp_path, capsys):
    """A bf16, fp32 or CPU checkpoint stores an empty scaler state; fp16 used to crash loading it."""
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "1") == 0
    checkpoint = torch.load(run_dir(tmp_path) / "last.pth", weights_only=True)
    assert checkpoint["scaler"] == {}
    cfg = get_config(base_yaml=checkpoint["config"], opts=["TRAIN.EPOCHS", "2"])
    model = models.build.build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    scaler = torch.amp.GradScaler("cpu", enabled=True, init_scale=1024.0)
    parts = SimpleNamespace(optimizer=optimizer, scaler=scaler, train_criterion=models.build.build_loss(cfg, model))
    plan = main.RunPlan(cfg, str(run_dir(tmp_path)), str(run_dir(tmp_path) / "last.pth"), checkpoint)
    capsys.readouterr()
    start = main.restore_training_state(plan, parts, main.build_scheduler(cfg, optimizer, 22), 22,
                                        main.create_logger(None))
    assert start.epoch == 1 and scaler.get_scale() == 1024.0
    assert "fp16 loss scaling starts afresh" in capsys.readouterr().out


# --- defect 12: a resume with nothing left to train ----------------------------------------------

def test_resuming_a_finished_run_into_a_new_folder_with_no_epochs_left_is_refused(tmp_path, capsys):
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "2") == 0
    last = run_dir(tmp_path) / "last.pth"
    capsys.readouterr()
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "2", tag="ft", flags=["--resume", str(last)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {last} has already trained 2 of 2 epochs, so there is nothing left to train; raise "
                   f"TRAIN.EPOCHS (--opts TRAIN.EPOCHS N) to train longer, or score it with --eval / --predict\n")
    assert not run_dir(tmp_path, "ft").exists()


# --- defect 6 and preemption: exact resume, also inside an epoch and with workers ----------------

def sigterm_at_batch(monkeypatch, epoch, batch):
    """Send this process a real SIGTERM during the backward pass of (epoch, batch)."""
    real_backward, seen = engine.loop.backward, {"batches": 0}

    def backward(*args, **kwargs):
        if seen["batches"] == epoch * 22 + batch:
            os.kill(os.getpid(), signal.SIGTERM)
        seen["batches"] += 1
        return real_backward(*args, **kwargs)

    monkeypatch.setattr(engine.loop, "backward", backward)


@pytest.mark.parametrize("workers, mode", [(0, []), (2, []), (2, ["DATA.AUG_DEVICE", "device"]),
                                           (0, ["DATA.CACHE", "ram"])])
def test_sigterm_inside_an_epoch_then_resume_ends_exactly_like_an_uninterrupted_run(tmp_path, monkeypatch, capsys,
                                                                                  workers, mode):
    epochs = ["TRAIN.EPOCHS", "3", *mode]
    assert quickstart(tmp_path / "straight", *epochs, workers=workers) == 0
    sigterm_at_batch(monkeypatch, epoch=1, batch=9)
    capsys.readouterr()
    assert quickstart(tmp_path / "split", *epochs, workers=workers) == 128 + signal.SIGTERM
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert err.startswith("stopped by SIGTERM after batch 11 of 22 in epoch 2; last.pth holds that point; "
                          "continue with: python main.py") and err.count("\n") == 1
    checkpoint = torch.load(run_dir(tmp_path / "split") / "last.pth", weights_only=True)
    assert checkpoint["epoch"] == 0 and checkpoint["progress"]["batches_done"] == 11
    assert json.loads((run_dir(tmp_path / "split") / "summary.json").read_text())["status"] == "interrupted"

    assert quickstart(tmp_path / "split", *epochs, flags=["--resume", "auto"], workers=workers) == 0
    assert "continuing with epoch 2 at batch 12" in (run_dir(tmp_path / "split") / "log.txt").read_text()
    straight, split = read_metrics(run_dir(tmp_path / "straight")), read_metrics(run_dir(tmp_path / "split"))
    keys = ("epoch", "lr", "train_loss", "train_acc1", "val_loss", "val_acc1")
    assert [{k: row[k] for k in keys} for row in split] == [{k: row[k] for k in keys} for row in straight]
    for name in ("submission.csv", "steps.csv"):
        assert (run_dir(tmp_path / "split") / name).read_text() == (run_dir(tmp_path / "straight") / name).read_text()


def test_a_real_sigterm_from_outside_saves_the_position_and_exits_143(tmp_path):
    argv = [sys.executable, "main.py", "--cfg", "configs/quickstart.yaml", "--output", str(tmp_path), "--tag", "run",
            "--device", "cpu", "--opts", *FAST, "DATA.NUM_WORKERS", "2", "TRAIN.EPOCHS", "200"]
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = run_dir(tmp_path) / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None and not (
            metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert err.startswith("stopped by SIGTERM after batch ") and "Traceback" not in err, err
    checkpoint = torch.load(run_dir(tmp_path) / "last.pth", weights_only=True)
    assert checkpoint["epoch"] >= 1 and checkpoint["progress"]["batches_done"] >= 1


def test_stop_request_records_the_first_signal_and_restores_the_handlers():
    previous = signal.getsignal(signal.SIGUSR1)
    with StopRequest() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signum == signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) == previous


# --- defect 13: non-finite losses -----------------------------------------------------------------

def test_an_injected_nan_loss_stops_the_run_in_one_line_and_its_last_checkpoint_loads(tmp_path, monkeypatch, capsys):
    real_forward = engine.loop.forward
    calls = {"n": 0}

    def forward(*args, **kwargs):
        logits, loss, targets = real_forward(*args, **kwargs)
        calls["n"] += 1
        return logits, (loss * float("nan") if calls["n"] > 22 else loss), targets  # from epoch 2 on

    monkeypatch.setattr(engine.loop, "forward", forward)
    capsys.readouterr()
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "3", "TRAIN.MAX_NONFINITE", "4") == 2
    err = capsys.readouterr().err
    assert err == ("error: the loss was NaN or Inf for 4 updates in a row (epoch 2, batch 4 of 22), so the run stopped; "
                   "its last checkpoint is kept. Lower TRAIN.LR, set TRAIN.CLIP_GRAD, or raise "
                   "TRAIN.WARMUP_EPOCHS\n")
    monkeypatch.undo()
    assert utils.checkpoint_io.load_checkpoint(str(run_dir(tmp_path) / "last.pth"))["epoch"] == 0
    summary = json.loads((run_dir(tmp_path) / "summary.json").read_text())
    assert summary["status"] == "failed" and "NaN or Inf" in summary["error"]
    assert not (run_dir(tmp_path) / "submission.csv").exists()


# --- checkpoint writes that fail ------------------------------------------------------------------

def test_a_full_disk_during_training_is_one_line_and_the_previous_checkpoint_still_loads(tmp_path, monkeypatch,
                                                                                        capsys):
    real_save, saves = torch.save, {"n": 0}

    def save(obj, f, *args, **kwargs):
        saves["n"] += 1
        if saves["n"] > 2:  # epoch 1 writes best.pth and last.pth; epoch 2's first write fails
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    capsys.readouterr()
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "3") == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert err.startswith(f"error: could not write checkpoint {run_dir(tmp_path) / 'best.pth'} (No space left on "
                          f"device); the previous one is unchanged.") and err.count("\n") == 1
    assert utils.checkpoint_io.load_checkpoint(str(run_dir(tmp_path) / "last.pth"))["epoch"] == 0
    assert not [name for name in os.listdir(run_dir(tmp_path)) if ".tmp" in name]


# --- torchrun restarts -----------------------------------------------------------------------------

def test_a_group_restarted_by_torchrun_resumes_its_run_by_itself(tmp_path, monkeypatch):
    interrupt_at_epoch(monkeypatch, 1)
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "2") == 130
    monkeypatch.undo()
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "2") == 0  # the same command line, as torchrun repeats it
    assert [row["epoch"] for row in read_metrics(run_dir(tmp_path))] == [0, 1]
    assert "resumed from" in (run_dir(tmp_path) / "log.txt").read_text()


# --- issue 8: every schedule resumes exactly; early stopping ---------------------------------------

@pytest.mark.parametrize("schedule", [
    ["multistep", "TRAIN.LR_SCHEDULER.MILESTONES", "(1, 2)", "TRAIN.LR_SCHEDULER.DECAY_RATE", "0.5"],
    ["exponential", "TRAIN.LR_SCHEDULER.DECAY_RATE", "0.7"],
    ["polynomial", "TRAIN.LR_SCHEDULER.POWER", "2.0"],
    ["onecycle"],
    ["plateau", "TRAIN.LR_SCHEDULER.PATIENCE", "0", "TRAIN.LR_SCHEDULER.PLATEAU_METRIC", "val_acc1"],
], ids=lambda opts: opts[0])
def test_each_schedule_resumes_like_an_uninterrupted_run(tmp_path, monkeypatch, schedule):
    opts = ["TRAIN.EPOCHS", "4", "TRAIN.LR_SCHEDULER.NAME", *schedule]
    if schedule[0] == "plateau":  # a flat val acc@1, so that the plateau schedule lowers the LR
        real_evaluate = evaluation.evaluate.evaluate
        patch_evaluate(monkeypatch, lambda *args, **kwargs: {**real_evaluate(*args, **kwargs), "acc1": 50.0})
    assert quickstart(tmp_path / "straight", *opts) == 0
    with monkeypatch.context() as interrupted:
        interrupt_at_epoch(interrupted, 2)
        assert quickstart(tmp_path / "split", *opts) == 130
    assert quickstart(tmp_path / "split", *opts, flags=["--resume", "auto"]) == 0
    keys = ("epoch", "lr", "train_loss", "val_loss", "val_acc1")
    straight, split = read_metrics(run_dir(tmp_path / "straight")), read_metrics(run_dir(tmp_path / "split"))
    assert [{k: row[k] for k in keys} for row in split] == [{k: row[k] for k in keys} for row in straight]
    assert len({row["lr"] for row in straight}) >= 3  # the schedule moved the LR


def test_early_stopping_ends_the_run_after_its_patience_and_submits_from_best(tmp_path, monkeypatch):
    real_evaluate, scores = evaluation.evaluate.evaluate, iter([50.0, 60.0, 55.0, 58.0, 59.0, 70.0])

    def evaluate(*args, **kwargs):
        result = real_evaluate(*args, **kwargs)
        return result if kwargs.get("keep_predictions") else {**result, "acc1": next(scores)}

    patch_evaluate(monkeypatch, evaluate)
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "6", "TRAIN.EARLY_STOP_PATIENCE", "3") == 0
    assert [row["epoch"] for row in read_metrics(run_dir(tmp_path))] == [0, 1, 2, 3, 4]
    log = (run_dir(tmp_path) / "log.txt").read_text()
    assert "early stop: val acc@1 has not improved for 3 epochs" in log
    assert torch.load(run_dir(tmp_path) / "best.pth", weights_only=True)["epoch"] == 1
    assert (run_dir(tmp_path) / "submission.csv").exists()
