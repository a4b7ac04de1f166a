"""TRAIN.EMA and TRAIN.SWA: the averages equal their formulas, are scored beside the trained
weights, ship in best.pth and the submission when they score best, and resume exactly."""

import pytest
import torch
from torch import nn

from config import get_config
from engine.summary import best_val_acc1
from engine.weight_averaging import ExponentialMovingAverage, StochasticWeightAveraging, ema_decay
from evaluation.selection import best_of
from utils.checkpoint_io import eval_weights
from utils.errors import UserError


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


