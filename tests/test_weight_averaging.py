"""TRAIN.EMA and TRAIN.SWA: the averages equal their formulas, are scored beside the trained
weights, ship in best.pth and the submission when they score best, and resume exactly."""
import json

import pytest
import torch
from torch import nn

import main
from config import get_config
from models.pretrained import read_state_dict
from utils.errors import UserError
from utils.selection import best_of
from utils.summary import best_val_acc1
from utils.weight_averaging import ExponentialMovingAverage, StochasticWeightAveraging, ema_decay, eval_weights

from test_resume import interrupt_at_epoch, quickstart, read_metrics, run_dir


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))


def sgd_step(model, optimizer, seed):
    torch.manual_seed(seed)
    model.train()
    model(torch.randn(8, 4)).pow(2).mean().backward()
    optimizer.step()
    optimizer.zero_grad()


def snapshot(model):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


@pytest.mark.parametrize("decay, warmup", [(0.9, False), (0.999, True)])
def test_ema_after_3_updates_equals_the_hand_computed_average(decay, warmup):
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    ema = ExponentialMovingAverage(model, decay, warmup)
    weights = []
    for step in range(3):
        sgd_step(model, optimizer, step)
        ema.update_parameters(model)
        weights.append(snapshot(model))
    # The first update copies; then ema = d * ema + (1 - d) * model, with d warmed up as (1 + n) / (10 + n).
    d1, d2 = (min(decay, 2 / 11), min(decay, 3 / 12)) if warmup else (decay, decay)
    averaged = ema.module.state_dict()
    for name in ("0.weight", "0.bias", "1.weight", "1.running_mean", "1.running_var"):
        expected = d2 * (d1 * weights[0][name] + (1 - d1) * weights[1][name]) + (1 - d2) * weights[2][name]
        torch.testing.assert_close(averaged[name], expected)
    assert averaged["1.num_batches_tracked"] == 3  # integer buffers are copied, not averaged
    assert int(ema.n_averaged) == 3 and ema.n_averaged.device.type == "cpu"


def test_ema_decay_warmup_rises_to_the_configured_decay():
    assert [ema_decay(0.999, n, True) for n in (0, 1, 10)] == [pytest.approx(0.1), pytest.approx(2 / 11),
                                                               pytest.approx(11 / 20)]
    assert ema_decay(0.9, 10_000, True) == 0.9 and ema_decay(0.999, 0, False) == 0.999


def test_swa_is_the_equal_average_of_each_epochs_weights_and_swalr_anneals_the_lr():
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    swa = StochasticWeightAveraging(model, optimizer, start_epoch=1, swa_lr=0.01, anneal_epochs=2)
    weights, lrs = [], []
    for epoch in range(4):
        swa.begin_epoch(epoch)
        lrs.append(optimizer.param_groups[0]["lr"])
        sgd_step(model, optimizer, epoch)
        swa.end_epoch(epoch, model)
        weights.append(snapshot(model))
    assert swa.epochs_averaged == 3
    expected = sum(weights[epoch]["0.weight"] for epoch in (1, 2, 3)) / 3
    torch.testing.assert_close(swa.average.module.state_dict()["0.weight"], expected)
    # Epoch 1 keeps the run's LR; cosine annealing reaches SWA.LR after ANNEAL_EPOCHS steps.
    assert lrs[:3] == [0.1, 0.1, pytest.approx(0.055)] and lrs[3] == pytest.approx(0.01)
    batches = [torch.randn(8, 4) for _ in range(3)]
    swa.recompute_batchnorm(batches)
    torch.testing.assert_close(swa.average.module[1].running_mean,
                               swa.average.module[0](torch.cat(batches)).mean(0).detach())


def test_eval_weights_picks_what_scored_best_and_reads_old_checkpoints():
    model = tiny_model()
    ema = ExponentialMovingAverage(model, 0.9, True)
    with torch.no_grad():
        ema.module[0].weight.fill_(7.0)
    checkpoint = {"model": model.state_dict(), "ema": ema.state_dict(), "eval_weights": "ema"}
    state, name = eval_weights(checkpoint)
    assert name == "ema" and set(state) == set(model.state_dict()) and state["0.weight"].eq(7.0).all()
    old_state, old_name = eval_weights({"model": checkpoint["model"]})
    assert old_name == "model" and old_state is checkpoint["model"]


def test_best_of_prefers_the_trained_weights_on_a_tie():
    assert best_of({"model": {"acc1": 90.0}, "ema": {"acc1": 90.0}}, None, "val_acc1") == ("model", True)
    assert best_of({"model": {"acc1": 90.0}, "ema": {"acc1": 91.0}}, 91.0, "val_acc1") == ("ema", False)
    assert best_val_acc1({"val_acc1": 80.0, "val_acc1_ema": 85.0}) == 85.0


@pytest.mark.parametrize("opts, message", [
    (["TRAIN.EMA.DECAY", "1.0"], "TRAIN.EMA.DECAY must be in [0, 1)"),
    (["TRAIN.EMA.DECAY", "-0.5"], "TRAIN.EMA.DECAY must be in [0, 1)"),
    (["TRAIN.SWA.START_EPOCH", "30"], "TRAIN.SWA.START_EPOCH must be an epoch in [0, TRAIN.EPOCHS = 30)"),
    (["TRAIN.SWA.LR", "0"], "TRAIN.SWA.LR must be positive"),
    (["TRAIN.SWA.ANNEAL_EPOCHS", "-1"], "TRAIN.SWA.ANNEAL_EPOCHS must be 0 or more"),
])
def test_bad_ema_and_swa_values_are_refused_in_one_line(opts, message):
    with pytest.raises(UserError) as error:
        get_config(None, opts)
    assert message in str(error.value) and "\n" not in str(error.value)


# --- through main.py ---------------------------------------------------------------------------

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
    real_evaluate, real_build, trained = main.evaluate, main.build_training_parts, {}

    def evaluate(model, *args, **kwargs):
        result = real_evaluate(model, *args, **kwargs)
        is_ema = not kwargs.get("keep_predictions") and model is not trained["model"]
        return {**result, "acc1": 100.0} if is_ema else result

    def build_training_parts(*args, **kwargs):
        parts = real_build(*args, **kwargs)
        trained["model"] = parts.forward_model
        return parts

    monkeypatch.setattr(main, "evaluate", evaluate)
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
    real_ema, real_evaluate = main.ExponentialMovingAverage, main.evaluate

    def ema(model, decay, warmup):
        made.append((decay, warmup))
        return real_ema(model, decay, warmup)

    def evaluate(*args, **kwargs):
        tta_of_calls.append((kwargs.get("keep_predictions", False), kwargs.get("tta")))
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(main, "ExponentialMovingAverage", ema)
    monkeypatch.setattr(main, "evaluate", evaluate)
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
