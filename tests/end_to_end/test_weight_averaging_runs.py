"""TRAIN.EMA and TRAIN.SWA end to end: scored every epoch, kept in checkpoints, resumed exactly, and used for the submission when they score best."""
import json

import pytest
import torch

import engine.build
import engine.weight_averaging
import evaluation.evaluate
import main
from engine.summary import best_val_acc1
from models.pretrained import read_state_dict
from tests.conftest import patch_evaluate
from tests.end_to_end.test_resume import interrupt_at_epoch, quickstart, read_metrics, run_dir
from utils.checkpoint_io import eval_weights


def test_ema_is_scored_every_epoch_and_kept_in_the_checkpoint(tmp_path):
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "2", "TRAIN.EMA.DECAY", "0.9") == 0
    folder = run_dir(tmp_path)
    rows = read_metrics(folder)
    assert all({"val_acc1_ema", "val_loss_ema", "val_acc5_ema"} <= set(row) for row in rows)
    last = torch.load(folder / "last.pth", weights_only=True)
    assert int(last["ema"]["n_averaged"]) == 2 * 22  # every update of both epochs (22 full batches of 64)
    winner = "ema" if rows[-1]["val_acc1_ema"] > rows[-1]["val_acc1"] else "model"
    assert last["eval_weights"] == winner
    log = (folder / "log.txt").read_text()
    assert "EMA val loss" in log and "weights)" in log
    best = torch.load(folder / "best.pth", weights_only=True)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["best_val_acc1"] == max(best_val_acc1(row) for row in rows) == best["best_score"]
    # MODEL.PRETRAINED from best.pth starts from the weights that scored best.
    expected, _ = eval_weights(best)
    assert all(torch.equal(read_state_dict(str(folder / "best.pth"))[k], v) for k, v in expected.items())


def make_the_ema_score_100_percent(monkeypatch):
    """Every per-epoch val pass of the EMA weights scores 100%; the trained weights score as they do."""
    real_evaluate, real_build, trained = evaluation.evaluate.evaluate, main.build_training_parts, {}

    def evaluate(model, *args, **kwargs):
        result = real_evaluate(model, *args, **kwargs)
        is_ema = not kwargs.get("keep_predictions") and model is not trained["model"]
        return {**result, "acc1": 100.0} if is_ema else result

    def build_training_parts(*args, **kwargs):
        parts = real_build(*args, **kwargs)
        trained["model"] = parts.forward_model
        return parts

    patch_evaluate(monkeypatch, evaluate)
    monkeypatch.setattr(main, "build_training_parts", build_training_parts)


def test_the_submission_and_eval_use_the_ema_weights_when_they_score_best(tmp_path, monkeypatch, capsys):
    make_the_ema_score_100_percent(monkeypatch)
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "2", "TRAIN.EMA.DECAY", "0.5") == 0
    monkeypatch.undo()
    folder = run_dir(tmp_path)
    best = torch.load(folder / "best.pth", weights_only=True)
    assert best["eval_weights"] == "ema" and best["best_weights"] == "ema" and best["epoch"] == 0
    log = (folder / "log.txt").read_text()
    assert "best 100.00% (EMA weights)" in log
    assert "written with the best checkpoint's EMA weights" in log
    # --predict of best.pth loads the same EMA weights, so it writes the same submission.
    capsys.readouterr()
    assert main.main(["--predict", "--resume", str(folder / "best.pth"), "--device", "cpu"]) == 0
    assert "using the checkpoint's EMA weights, which scored best on val" in capsys.readouterr().out
    eval_dir = next(folder.glob("eval-*"))
    assert (eval_dir / "submission.csv").read_text() == (folder / "submission.csv").read_text()


def test_resume_with_ema_and_swa_gives_the_metrics_of_an_uninterrupted_run(tmp_path, monkeypatch):
    opts = ["TRAIN.EPOCHS", "4", "TRAIN.EMA.DECAY", "0.9", "TRAIN.SWA.START_EPOCH", "1", "TRAIN.SWA.LR", "1e-3",
            "TRAIN.SWA.ANNEAL_EPOCHS", "1"]
    assert quickstart(tmp_path / "straight", *opts) == 0
    with monkeypatch.context() as interrupted:
        interrupt_at_epoch(interrupted, 2)
        assert quickstart(tmp_path / "split", *opts) == 130
    assert quickstart(tmp_path / "split", *opts, flags=["--resume", "auto"]) == 0
    keys = ("epoch", "lr", "train_loss", "val_loss", "val_acc1", "val_loss_ema", "val_acc1_ema")
    straight, split = read_metrics(run_dir(tmp_path / "straight")), read_metrics(run_dir(tmp_path / "split"))
    assert [{k: row[k] for k in keys} for row in split] == [{k: row[k] for k in keys} for row in straight]
    assert straight[-1]["val_acc1_swa"] == split[-1]["val_acc1_swa"]
    assert all("val_acc1_swa" not in row for row in straight[:-1])
    # From epoch 2 (index 1) SWALR sets the LR once per epoch: 3e-3 has become SWA.LR after 1 anneal epoch.
    assert [row["lr"] for row in straight[2:]] == [pytest.approx(1e-3)] * 2
    last = torch.load(run_dir(tmp_path / "straight") / "last.pth", weights_only=True)
    assert int(last["swa"]["average"]["n_averaged"]) == 3
    for name in ("submission.csv", "steps.csv"):
        assert (run_dir(tmp_path / "split") / name).read_text() == (run_dir(tmp_path / "straight") / name).read_text()


def test_the_quickstart_with_mixup_label_smoothing_and_ema_reaches_97_percent(tmp_path):
    assert quickstart(tmp_path, "AUG.MIXUP", "0.2", "TRAIN.LABEL_SMOOTHING", "0.1", "TRAIN.EMA.DECAY", "0.99") == 0
    rows = read_metrics(run_dir(tmp_path))
    assert len(rows) == 15
    assert rows[-1]["val_acc1_ema"] >= 97.0 and max(best_val_acc1(row) for row in rows) >= 97.0


@pytest.mark.parametrize("tta_val, per_epoch_tta", [("True", "hflip"), ("False", "none")])
def test_ema_warmup_and_tta_val_keys_reach_the_loop(tmp_path, monkeypatch, tta_val, per_epoch_tta):
    made, tta_of_calls = [], []
    real_ema, real_evaluate = engine.weight_averaging.ExponentialMovingAverage, evaluation.evaluate.evaluate

    def ema(model, decay, warmup):
        made.append((decay, warmup))
        return real_ema(model, decay, warmup)

    def evaluate(*args, **kwargs):
        tta_of_calls.append((kwargs.get("keep_predictions", False), kwargs.get("tta")))
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(engine.build, "ExponentialMovingAverage", ema)
    patch_evaluate(monkeypatch, evaluate)
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "1", "TRAIN.EMA.DECAY", "0.5", "TRAIN.EMA.WARMUP", "False",
                      "TEST.TTA", "hflip", "TEST.TTA_VAL", tta_val) == 0
    assert made == [(0.5, False)]
    # The epoch's val passes (trained and EMA weights), then the final report, which always uses TEST.TTA.
    assert tta_of_calls == [(False, per_epoch_tta), (False, per_epoch_tta), (True, "hflip")]


def test_without_best_pth_the_submission_comes_from_the_final_ema_when_it_scored_best(tmp_path, monkeypatch):
    make_the_ema_score_100_percent(monkeypatch)
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "1", "TRAIN.EMA.DECAY", "0.5", "SAVE.CHECKPOINTS", "none") == 0
    folder = run_dir(tmp_path)
    assert not list(folder.glob("*.pth")) and (folder / "submission.csv").exists()
    assert ("written with the final weights (SAVE.CHECKPOINTS none keeps no best.pth), their EMA average, which "
            "scored best") in (folder / "log.txt").read_text()
