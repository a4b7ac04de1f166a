"""End to end through main.py: train, checkpoint, resume, evaluate, submit, and refuse bad input."""
import csv
import json
import os
import subprocess
import sys

import pytest

import engine.build
import evaluation.evaluate
import main
import models.build
import utils.checkpoint_io
from config import get_config
from engine.train_step import training_loss
from tests.conftest import patch_evaluate

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST = ["DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled", "DATA.BATCH_SIZE", "64", "PRINT_FREQ", "5"]


def train(tmp_path, *extra_opts, tag="run", flags=(), epochs=2):
    argv = ["--cfg", os.path.join(REPO, "configs/quickstart.yaml"), "--output", str(tmp_path), "--tag", tag,
            "--device", "cpu", *flags, "--opts", *FAST, "TRAIN.EPOCHS", str(epochs), *extra_opts]
    return main.main(argv)


def run_dir(tmp_path, tag="run", experiment="lenet_digits"):
    return tmp_path / experiment / tag


def read_metrics(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_training_writes_every_output_file(tmp_path, capsys):
    assert train(tmp_path) == 0
    folder = run_dir(tmp_path)
    assert {"log.txt", "metrics.jsonl", "config.yaml", "best.pth", "last.pth", "submission.csv"} <= set(
        os.listdir(folder))
    out = capsys.readouterr().out
    assert f"outputs in {folder}" in out
    log = (folder / "log.txt").read_text()
    assert "epoch 2/2" in log and "train epoch 1 [" in log  # per-iteration lines go to the file


def test_metrics_jsonl_has_one_line_per_epoch_with_the_documented_fields(tmp_path):
    train(tmp_path, epochs=3)
    rows = read_metrics(run_dir(tmp_path))
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    for row in rows:
        assert {"epoch", "lr", "train_loss", "train_acc1", "train_acc5", "val_loss", "val_acc1", "val_acc5",
                "epoch_time", "images_per_sec", "peak_rss_mb"} <= set(row)
        assert "peak_memory_mb" not in row  # on CPU the number is the process's RSS, and is named so
        assert 0 <= row["val_acc1"] <= row["val_acc5"] <= 100 and row["images_per_sec"] > 0


def test_submission_has_a_header_and_one_row_per_test_image_in_order(tmp_path):
    train(tmp_path, "SUBMISSION.HEADER", "ImageId,Label")
    with open(run_dir(tmp_path) / "submission.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ImageId", "Label"]
    assert [int(r[0]) for r in rows[1:]] == list(range(359))
    assert all(0 <= int(r[1]) < 10 for r in rows[1:])


def test_config_yaml_reproduces_the_run_config(tmp_path):
    train(tmp_path, "TRAIN.LR", "0.002")
    written = run_dir(tmp_path) / "config.yaml"
    original = get_config(os.path.join(REPO, "configs/quickstart.yaml"),
                          ["TAG", "run", "OUTPUT", str(tmp_path), "DEVICE", "cpu", *FAST, "TRAIN.EPOCHS", "2",
                           "TRAIN.LR", "0.002"])
    assert get_config(str(written)) == original


def test_interrupted_run_resumes_from_its_last_checkpoint_and_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    assert train(tmp_path / "straight", epochs=4) == 0
    straight = read_metrics(run_dir(tmp_path / "straight"))

    real_train_one_epoch = main.train_one_epoch

    def interrupt_at_epoch_two(*args, **kwargs):
        if args[3] == 2:  # the epoch argument
            raise KeyboardInterrupt
        return real_train_one_epoch(*args, **kwargs)

    monkeypatch.setattr(main, "train_one_epoch", interrupt_at_epoch_two)
    assert train(tmp_path / "split", epochs=4) == 130
    monkeypatch.undo()
    assert [row["epoch"] for row in read_metrics(run_dir(tmp_path / "split"))] == [0, 1]

    assert train(tmp_path / "split", epochs=4, flags=["--resume", "auto"]) == 0
    resumed = read_metrics(run_dir(tmp_path / "split"))
    assert [row["epoch"] for row in resumed] == [0, 1, 2, 3]
    for a, b in zip(straight, resumed):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
        assert a["lr"] == pytest.approx(b["lr"])
    assert "resumed from" in (run_dir(tmp_path / "split") / "log.txt").read_text()


def test_resume_auto_without_a_tag_picks_the_latest_run(tmp_path):
    argv = ["--cfg", os.path.join(REPO, "configs/quickstart.yaml"), "--output", str(tmp_path), "--device", "cpu"]
    assert main.main(argv + ["--opts", *FAST, "TRAIN.EPOCHS", "1"]) == 0
    (first,) = os.listdir(tmp_path / "lenet_digits")
    assert main.main(argv + ["--resume", "auto", "--opts", *FAST, "TRAIN.EPOCHS", "2"]) == 0
    assert os.listdir(tmp_path / "lenet_digits") == [first]
    assert [row["epoch"] for row in read_metrics(tmp_path / "lenet_digits" / first)] == [0, 1]


def test_rerunning_a_tag_never_overwrites_its_checkpoints(tmp_path, capsys):
    train(tmp_path, epochs=1)
    before = (run_dir(tmp_path) / "last.pth").read_bytes()
    assert train(tmp_path, epochs=1) == 2
    assert "already holds a run; continue it with --resume auto" in capsys.readouterr().err
    assert (run_dir(tmp_path) / "last.pth").read_bytes() == before


def test_eval_reports_the_checkpoint_accuracy_and_writes_only_an_eval_folder_beside_it(tmp_path, capsys):
    train(tmp_path, epochs=3)
    best = run_dir(tmp_path) / "best.pth"
    files_before = {name: (run_dir(tmp_path) / name).stat().st_mtime for name in os.listdir(run_dir(tmp_path))}
    capsys.readouterr()
    assert train(tmp_path, flags=["--eval", "--resume", str(best)]) == 0
    out = capsys.readouterr().out
    assert "digits val (359 images)" in out and "acc@1" in out
    best_val = max(row["val_acc1"] for row in read_metrics(run_dir(tmp_path)))
    assert f"acc@1 {best_val:.2f}%" in out
    (eval_dir,) = set(os.listdir(run_dir(tmp_path))) - set(files_before)
    assert eval_dir.startswith("eval-")
    assert sorted(os.listdir(run_dir(tmp_path) / eval_dir)) == [
        "calibration.png", "confusion.png", "per_class.csv", "predictions.png", "probs.json", "val_predictions.csv",
        "val_probs.csv"]
    assert {name: (run_dir(tmp_path) / name).stat().st_mtime for name in files_before} == files_before


def test_resuming_a_checkpoint_of_another_model_is_a_clear_error(tmp_path, capsys):
    train(tmp_path, epochs=1)
    last = str(run_dir(tmp_path) / "last.pth")
    assert train(tmp_path, "MODEL.NAME", "resnet18", tag="other", flags=["--resume", last]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {last} continues with the config it was trained with, and this command changes "
                          f"MODEL.NAME ('resnet18'; the run has 'lenet')")
    assert err.count("\n") == 1
    assert not (tmp_path / "resnet18_digits").exists()


def test_weights_that_do_not_fit_name_the_model_and_data_set_that_wrote_them(tmp_path):
    from utils.errors import UserError
    train(tmp_path, epochs=1)
    last = str(run_dir(tmp_path) / "last.pth")
    cfg = get_config(None, ["MODEL.NAME", "resnet18", "DATA.DATASET", "digits"])
    with pytest.raises(UserError) as error:
        main.load_model_weights(models.build.build_model(cfg), utils.checkpoint_io.load_checkpoint(last), last, cfg)
    message = str(error.value)
    assert message.startswith(f"checkpoint {last} holds lenet for digits (10 classes), which does not fit "
                              f"resnet18 for digits (10 classes): ")
    assert "Missing key(s)" in message and "\n" not in message


def test_a_malformed_flag_is_one_line_and_exit_code_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--batch-size", "many"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: argument --batch-size: invalid int value: 'many'; see python main.py --help\n"


def test_a_killed_training_process_resumes_from_its_last_checkpoint(tmp_path):
    import signal
    import time

    import torch

    argv = [sys.executable, "main.py", "--cfg", "configs/quickstart.yaml", "--output", str(tmp_path), "--tag", "run",
            "--device", "cpu", "--opts", *FAST, "TRAIN.EPOCHS", "40"]
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics_path = run_dir(tmp_path) / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if metrics_path.exists() and len(metrics_path.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    saved_epoch = torch.load(run_dir(tmp_path) / "last.pth", weights_only=True)["epoch"]
    assert 1 <= saved_epoch < 39

    assert train(tmp_path, epochs=40, flags=["--resume", "auto"]) == 0
    assert f"continuing with epoch {saved_epoch + 2}" in (run_dir(tmp_path) / "log.txt").read_text()
    assert [row["epoch"] for row in read_metrics(run_dir(tmp_path))] == list(range(40))


def test_list_models_prints_every_model_with_parameters_and_macs(capsys):
    from models import list_models
    assert main.main(["--list-models", "--img-size", "32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "params", "MACs", "@", "32px"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert sorted(rows) == list_models()
    assert rows["resnet18"] == ["11.68M", "555.93M"]   # CIFAR stem at 32 px, 1000 classes
    assert rows["alexnet"] == ["61.10M", "too", "small"]


def test_training_loss_adds_auxiliary_losses_with_weight_0_3():
    import torch
    criterion = torch.nn.CrossEntropyLoss()
    targets = torch.tensor([0, 1])
    logits, aux1, aux2 = torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3)
    returned, loss = training_loss((logits, [aux1, aux2]), targets, criterion)
    assert returned is logits
    expected = criterion(logits, targets) + 0.3 * (criterion(aux1, targets) + criterion(aux2, targets))
    assert loss.item() == pytest.approx(expected.item())
    assert training_loss(logits, targets, criterion)[1].item() == pytest.approx(criterion(logits, targets).item())


def test_googlenet_with_auxiliary_classifiers_trains_through_main(tmp_path):
    assert train(tmp_path, "MODEL.NAME", "googlenet", "MODEL.AUX_LOGITS", "True", "MODEL.STEM", "imagenet",
                 "DATA.VAL_SPLIT", "0.9", epochs=1) == 0
    (row,) = read_metrics(run_dir(tmp_path, experiment="googlenet_digits"))
    assert row["train_loss"] > 0


def test_linear_probe_changes_only_the_classifier(tmp_path):
    import torch
    assert train(tmp_path, "MODEL.FREEZE", "backbone", epochs=1) == 0
    trained = torch.load(run_dir(tmp_path) / "last.pth", weights_only=True)["model"]
    main.seed_everything(0)
    initial = models.build.build_model(get_config(None, ["MODEL.FREEZE", "backbone"])).state_dict()
    changed = sorted(key for key in trained if not torch.equal(trained[key], initial[key]))
    assert changed == ["fc.bias", "fc.weight"]


def run_epoch(model, optimizer, batches, accumulation_steps=1, max_nonfinite=0, criterion=None):
    """main.train_one_epoch on CPU over `batches`, outside any run folder; returns its stats."""
    import logging

    import torch
    from torch import nn

    from engine.loop import EpochProgress, LoopSettings, train_one_epoch
    from engine.parts import TrainingParts
    from engine.preemption import StopRequest
    from utils.device import DeviceSetup

    setup = DeviceSetup.create(torch.device("cpu"), "off", False, False, False)
    parts = TrainingParts(model, model, nn.Identity(), optimizer, setup.grad_scaler(), setup, None,
                               criterion or nn.CrossEntropyLoss(), 0, 0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loop = LoopSettings(len(batches), accumulation_steps, 0.0, 5, max_nonfinite)
    stats, _ = train_one_epoch(parts, scheduler, batches, 0, loop, logging.getLogger("test"), lambda rows: None,
                                    StopRequest(), EpochProgress())
    return stats


def test_the_last_short_accumulation_group_averages_its_own_batches():
    """10 identical batches with accumulation 4 make updates of 4, 4 and 2 batches: the same gradient each time."""
    import torch
    from torch import nn

    class RecordingSGD(torch.optim.SGD):
        def step(self, closure=None):
            norms.append(torch.cat([p.grad.flatten() for p in self.param_groups[0]["params"]]).norm().item())
            return super().step(closure)

    norms = []
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    batch = (torch.randn(8, 3, 2, 2), torch.randint(0, 3, (8,)))
    optimizer = RecordingSGD(model.parameters(), lr=1e-9)
    run_epoch(model, optimizer, [batch] * 10, accumulation_steps=4)
    assert len(norms) == 3 and norms[2] == pytest.approx(norms[0], rel=1e-4) and norms[1] == pytest.approx(norms[0])


class FakeWandbRun:
    """Stands in for engine.tracking.WandbRun: records which W&B run each training run asked to resume."""
    resumed_ids: list = []

    def __init__(self, *args, resume_id=None, **kwargs):
        FakeWandbRun.resumed_ids.append(resume_id)
        self.run_id = resume_id or f"wandb-{len(FakeWandbRun.resumed_ids)}"

    def __getattr__(self, name):  # log_epoch, log_steps, log_val_report, finish
        return lambda *args, **kwargs: None


def constant_accuracy(monkeypatch, acc1):
    real_evaluate = evaluation.evaluate.evaluate

    def evaluate(*args, **kwargs):
        return {**real_evaluate(*args, **kwargs), "acc1": acc1}

    patch_evaluate(monkeypatch, evaluate)


def test_a_run_that_never_beats_zero_accuracy_still_writes_best_pth(tmp_path, monkeypatch):
    constant_accuracy(monkeypatch, 0.0)
    assert train(tmp_path, epochs=2) == 0
    folder = run_dir(tmp_path)
    assert (folder / "best.pth").exists()
    assert "test predictions written with the best checkpoint" in (folder / "log.txt").read_text()


def test_a_run_started_from_another_runs_checkpoint_is_a_new_run_with_its_own_best_and_wandb_id(
        tmp_path, monkeypatch):
    monkeypatch.setattr(engine.build, "WandbRun", FakeWandbRun)
    FakeWandbRun.resumed_ids = []
    constant_accuracy(monkeypatch, 50.0)
    assert train(tmp_path, epochs=2) == 0
    copied = tmp_path / "copied.pth"  # a checkpoint inside its run folder would continue that run
    copied.write_bytes((run_dir(tmp_path) / "last.pth").read_bytes())
    assert train(tmp_path, tag="fork", epochs=3, flags=["--resume", str(copied)]) == 0
    assert FakeWandbRun.resumed_ids == [None, None]  # the fork did not continue the first run's W&B run
    fork = run_dir(tmp_path, tag="fork")
    assert (fork / "best.pth").exists()
    assert "as a new run (its own best.pth and W&B run): continuing with epoch 3" in (fork / "log.txt").read_text()
    assert train(tmp_path, epochs=4, flags=["--resume", "auto"]) == 0  # continuing keeps its W&B run
    assert FakeWandbRun.resumed_ids == [None, None, "wandb-1"]


def test_a_nan_loss_skips_its_update_and_is_counted():
    """Five batches whose third has a NaN loss train exactly like the four others alone."""
    import copy

    import torch
    from torch import nn

    class NanOnThirdBatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, logits, targets):
            self.calls += 1
            loss = nn.functional.cross_entropy(logits, targets)
            return loss * float("nan") if self.calls == 3 else loss

    torch.manual_seed(0)
    with_nan = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    without = copy.deepcopy(with_nan)
    batches = [(torch.randn(8, 3, 2, 2), torch.randint(0, 3, (8,))) for _ in range(5)]
    stats = run_epoch(with_nan, torch.optim.SGD(with_nan.parameters(), lr=0.1), batches, max_nonfinite=3,
                      criterion=NanOnThirdBatch())
    run_epoch(without, torch.optim.SGD(without.parameters(), lr=0.1), batches[:2] + batches[3:])
    assert stats["nonfinite_updates"] == 1
    for a, b in zip(with_nan.parameters(), without.parameters()):
        assert torch.allclose(a, b)
    assert stats["train_loss"] == stats["train_loss"]  # not NaN: the epoch's mean leaves that batch out


def test_a_user_error_raised_in_a_loader_worker_is_still_one_line():
    from torch._utils import ExceptionWrapper

    from utils.errors import UserError
    try:
        raise UserError("AUG.BLUR_KERNEL: GaussianBlur failed on a 8x8 px image: Padding size; lower it")
    except UserError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")  # what the DataLoader sends back
    with pytest.raises(UserError) as error:
        wrapped.reraise()
    assert "\n" in str(error.value)
    assert main.user_error_line(error.value) == ("AUG.BLUR_KERNEL: GaussianBlur failed on a 8x8 px image: Padding "
                                                 "size; lower it")
