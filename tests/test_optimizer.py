"""Optimizers, parameter groups and the per-step learning-rate schedules."""
import math

import pytest
import torch

from config import get_config
from models import create_model
from optimizer import CosineSchedule, build_optimizer, build_scheduler
from utils.errors import UserError


def build(opts):
    cfg = get_config(None, opts)
    model = create_model("lenet", num_classes=10)
    return cfg, model, build_optimizer(cfg, model)


@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                       ("adamw", torch.optim.AdamW), ("rmsprop", torch.optim.RMSprop),
                                       ("radam", torch.optim.RAdam)])
def test_each_optimizer_name_builds_its_class(name, cls):
    assert isinstance(build(["TRAIN.OPTIMIZER.NAME", name])[2], cls)


def test_sgd_takes_momentum_and_nesterov_and_adam_takes_betas_and_eps():
    sgd = build(["TRAIN.OPTIMIZER.NAME", "sgd", "TRAIN.OPTIMIZER.MOMENTUM", "0.8"])[2]
    assert sgd.defaults["momentum"] == 0.8 and sgd.defaults["nesterov"] is True
    adamw = build(["TRAIN.OPTIMIZER.BETAS", "(0.8, 0.95)", "TRAIN.OPTIMIZER.EPS", "1e-6"])[2]
    assert adamw.defaults["betas"] == (0.8, 0.95) and adamw.defaults["eps"] == 1e-6


def test_norms_and_biases_get_no_weight_decay_by_default():
    _, model, opt = build(["TRAIN.WEIGHT_DECAY", "0.05"])
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    (only,) = build(["TRAIN.DECAY_NORM_AND_BIAS", "True"])[2].param_groups
    assert only["weight_decay"] == 0.05


def test_cosine_with_warmup_rises_linearly_then_decays_to_min_lr():
    cfg, _, opt = build(["TRAIN.LR", "0.1", "TRAIN.WARMUP_LR", "0.001", "TRAIN.MIN_LR", "0.0001",
                         "TRAIN.WARMUP_EPOCHS", "2", "TRAIN.EPOCHS", "10"])
    scheduler = build_scheduler(cfg, opt, steps_per_epoch=5)
    lrs = []
    for _ in range(50):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.001)
    assert lrs[5] == pytest.approx(0.001 + (0.1 - 0.001) * 5 / 10)   # smooth within the warmup
    assert lrs[10] == pytest.approx(0.1)
    assert lrs[30] == pytest.approx(0.0001 + 0.5 * (0.1 - 0.0001) * (1 + math.cos(math.pi * 20 / 40)))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0001)
    assert opt.param_groups[1]["lr"] == opt.param_groups[0]["lr"]


def test_step_and_constant_schedules():
    cfg, _, opt = build(["TRAIN.LR", "1.0", "TRAIN.LR_SCHEDULER.NAME", "step",
                         "TRAIN.LR_SCHEDULER.DECAY_EPOCHS", "2", "TRAIN.LR_SCHEDULER.DECAY_RATE", "0.5"])
    scheduler = build_scheduler(cfg, opt, steps_per_epoch=3)
    lrs = []
    for _ in range(13):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    assert lrs[0] == lrs[5] == 1.0 and lrs[6] == 0.5 and lrs[12] == 0.25
    cfg, _, opt = build(["TRAIN.LR_SCHEDULER.NAME", "constant", "TRAIN.LR", "0.3"])
    scheduler = build_scheduler(cfg, opt, steps_per_epoch=3)
    for _ in range(7):
        opt.step()
        scheduler.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.3)


def test_scheduler_state_round_trips():
    cfg, _, opt = build(["TRAIN.WARMUP_EPOCHS", "1"])
    scheduler = build_scheduler(cfg, opt, steps_per_epoch=4)
    for _ in range(6):
        opt.step()
        scheduler.step()
    cfg2, _, opt2 = build(["TRAIN.WARMUP_EPOCHS", "1"])
    restored = build_scheduler(cfg2, opt2, steps_per_epoch=4)
    opt2.load_state_dict(opt.state_dict())
    restored.load_state_dict(scheduler.state_dict())
    opt.step(), scheduler.step(), opt2.step(), restored.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])


def test_cosine_schedule_ends_at_min_lr_and_stays_there():
    schedule = CosineSchedule(base_lr=1.0, warmup_lr=0.0, warmup_steps=0, min_lr=0.1, total_steps=10)
    assert schedule(0) == 1.0 and schedule(10) == pytest.approx(0.1) and schedule(15) == pytest.approx(0.1)


def test_unknown_names_suggest_the_closest_and_list_the_valid_ones():
    with pytest.raises(UserError, match="unknown TRAIN.OPTIMIZER.NAME 'adamx'; did you mean adam.? "
                                        "choose one of: sgd, adam, adamw"):
        build(["TRAIN.OPTIMIZER.NAME", "adamx"])
    with pytest.raises(UserError, match="unknown TRAIN.LR_SCHEDULER.NAME 'poly'; choose one "
                                        "of: cosine, step, multistep, exponential, polynomial, constant, onecycle, "
                                        "plateau"):
        build(["TRAIN.LR_SCHEDULER.NAME", "poly"])
    with pytest.raises(UserError, match="unknown TRAIN.LR_SCHEDULER.PLATEAU_METRIC 'acc'"):
        build(["TRAIN.LR_SCHEDULER.PLATEAU_METRIC", "acc"])


def test_optimizer_and_scheduler_names_match_in_any_case():
    cfg, _, optimizer = build(["TRAIN.OPTIMIZER.NAME", "SGD", "TRAIN.LR_SCHEDULER.NAME", "Step"])
    assert cfg.TRAIN.OPTIMIZER.NAME == "sgd" and isinstance(optimizer, torch.optim.SGD)
    assert cfg.TRAIN.LR_SCHEDULER.NAME == "step"
    build_scheduler(cfg, optimizer, steps_per_epoch=1)


def test_parameters_a_model_lists_in_no_weight_decay_are_exempt():
    import models.convnext  # noqa: F401
    cfg = get_config(None, ["MODEL.NAME", "convnext_tiny"])
    model = create_model("convnextv2_atto")
    no_decay_ids = {id(p) for p in build_optimizer(cfg, model).param_groups[1]["params"]}
    named = dict(model.named_parameters())
    assert id(named["features.1.0.block.5.gamma"]) in no_decay_ids
    assert id(named["features.1.0.block.3.weight"]) not in no_decay_ids
    v1 = create_model("convnext_tiny")
    assert id(dict(v1.named_parameters())["features.1.0.layer_scale"]) in {
        id(p) for p in build_optimizer(cfg, v1).param_groups[1]["params"]}


def lrs_per_update(opts, steps_per_epoch, updates, key="lr"):
    """The LR (or another param-group `key`) of each of `updates` optimizer updates under the
    schedule `opts` configure."""
    cfg, _, opt = build(opts)
    scheduler = build_scheduler(cfg, opt, steps_per_epoch=steps_per_epoch)
    values = []
    for _ in range(updates):
        values.append(opt.param_groups[0][key])
        opt.step()
        scheduler.step()
    return values


def test_multistep_multiplies_the_lr_at_each_milestone_epoch():
    lrs = lrs_per_update(["TRAIN.LR", "1.0", "TRAIN.LR_SCHEDULER.NAME", "multistep", "TRAIN.LR_SCHEDULER.MILESTONES",
                          "(2, 4)", "TRAIN.LR_SCHEDULER.DECAY_RATE", "0.5"], steps_per_epoch=3, updates=18)
    assert lrs == pytest.approx([1.0] * 6 + [0.5] * 6 + [0.25] * 6)


def test_exponential_multiplies_the_lr_once_per_epoch_and_polynomial_decays_to_min_lr():
    lrs = lrs_per_update(["TRAIN.LR", "1.0", "TRAIN.LR_SCHEDULER.NAME", "exponential",
                          "TRAIN.LR_SCHEDULER.DECAY_RATE", "0.5"], steps_per_epoch=4, updates=9)
    assert lrs[0] == 1.0 and lrs[4] == pytest.approx(0.5) and lrs[8] == pytest.approx(0.25)
    assert lrs[2] == pytest.approx(0.5 ** 0.5)  # spread smoothly within the epoch
    lrs = lrs_per_update(["TRAIN.LR", "1.0", "TRAIN.MIN_LR", "0.0", "TRAIN.EPOCHS", "4", "TRAIN.LR_SCHEDULER.NAME",
                          "polynomial", "TRAIN.LR_SCHEDULER.POWER", "2.0"], steps_per_epoch=5, updates=21)
    assert lrs[10] == pytest.approx(0.25) and lrs[20] == pytest.approx(0.0)


def test_onecycle_rises_to_lr_at_its_pct_start_then_falls_and_cycles_momentum():
    opts = ["TRAIN.LR", "0.4", "TRAIN.EPOCHS", "10", "TRAIN.OPTIMIZER.NAME", "sgd", "TRAIN.LR_SCHEDULER.NAME",
            "onecycle", "TRAIN.LR_SCHEDULER.ONECYCLE_PCT_START", "0.25", "TRAIN.WARMUP_EPOCHS", "3"]
    lrs = lrs_per_update(opts, steps_per_epoch=4, updates=40)
    peak = max(range(40), key=lrs.__getitem__)
    assert peak == 9 and lrs[peak] == pytest.approx(0.4, rel=1e-3)  # 25% of 40 updates, not the 3-epoch warmup
    assert lrs[0] == pytest.approx(0.4 / 25) and lrs[-1] < 1e-4
    momenta = lrs_per_update(opts, steps_per_epoch=4, updates=10, key="momentum")
    assert momenta[0] > momenta[-1]


def test_plateau_lowers_the_lr_after_its_patience_on_a_flat_metric():
    cfg, _, opt = build(["TRAIN.LR", "1.0", "TRAIN.WARMUP_EPOCHS", "1", "TRAIN.WARMUP_LR", "0.1",
                         "TRAIN.LR_SCHEDULER.NAME", "plateau", "TRAIN.LR_SCHEDULER.PATIENCE", "2",
                         "TRAIN.LR_SCHEDULER.DECAY_RATE", "0.5", "TRAIN.MIN_LR", "0.2"])
    scheduler = build_scheduler(cfg, opt, steps_per_epoch=2)
    lrs = []
    for epoch in range(9):
        lrs.append(opt.param_groups[0]["lr"])
        for _ in range(2):
            opt.step()
            scheduler.step()
        scheduler.step_epoch({"val_loss": 1.0, "val_acc1": 50.0})
    # Warmup, then 1.0 while the first flat epoch sets the best and 2 more wait; halved after
    # every 3 flat epochs, never below MIN_LR.
    assert lrs == pytest.approx([0.1, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25])
    state = scheduler.state_dict()
    cfg2, _, opt2 = build(["TRAIN.LR", "1.0", "TRAIN.LR_SCHEDULER.NAME", "plateau"])
    restored = build_scheduler(cfg, opt2, steps_per_epoch=2)
    restored.load_state_dict(state)
    assert restored.plateau.num_bad_epochs == scheduler.plateau.num_bad_epochs
    assert restored.plateau.best == scheduler.plateau.best
