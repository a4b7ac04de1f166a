"""The LR range test: an exponential LR sweep, one step each, that stops when the loss diverges,
and a suggestion where the smoothed loss falls fastest."""
import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

import studies.lr_finder
from data.normalize import Normalize
from studies.lr_finder import SKIP_END, SKIP_START, lr_at_step, lr_range_test, suggest_lr
from utils.device import DeviceSetup

MIN_LR, MAX_LR = 1e-4, 1.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def separable_batches(num_batches=4, batch_size=16, size=4, flipped_share=0.0):
    """uint8 batches of two classes a linear model can learn: dark images are 0, bright ones 1;
    `flipped_share` of the labels are then flipped, which no LR can fit."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(num_batches):
        targets = torch.randint(0, 2, (batch_size,), generator=generator)
        noise = torch.randint(0, 60, (batch_size, 3, size, size), generator=generator)
        images = (noise + 190 * targets.view(-1, 1, 1, 1)).to(torch.uint8)
        flipped = torch.rand(batch_size, generator=generator) < flipped_share
        batches.append((images, torch.where(flipped, 1 - targets, targets)))
    return batches


def range_test(loader=None, num_steps=30, min_lr=MIN_LR, max_lr=MAX_LR):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    setup = DeviceSetup.create(torch.device("cpu"), "off", False, False, False)
    return lr_range_test(model, Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), loader or separable_batches(),
                         nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.0), setup.grad_scaler(),
                         setup, min_lr=min_lr, max_lr=max_lr, num_steps=num_steps)


def losses_per_step(monkeypatch, loss_at):
    """Replace the training step with one whose loss at step i (counted from 0) is loss_at(i)."""
    steps = itertools.count()
    monkeypatch.setattr(studies.lr_finder, "train_step", lambda *args: torch.tensor(loss_at(next(steps))))


# --- lr_at_step -----------------------------------------------------------------------------------

def test_lr_at_step_goes_from_min_lr_at_the_first_step_to_max_lr_at_the_last():
    assert lr_at_step(0, 100, 1e-7, 10.0) == pytest.approx(1e-7)
    assert lr_at_step(99, 100, 1e-7, 10.0) == pytest.approx(10.0)


def test_lr_at_step_grows_by_the_same_factor_each_step():
    lrs = [lr_at_step(step, 5, 1e-4, 1.0) for step in range(5)]
    assert lrs == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])


def test_lr_at_step_of_a_single_step_test_is_min_lr():
    assert lr_at_step(0, 1, 1e-3, 1.0) == pytest.approx(1e-3)


# --- suggest_lr -----------------------------------------------------------------------------------

def test_suggest_lr_picks_the_lr_where_the_smoothed_loss_falls_fastest():
    steps = np.arange(40)
    lrs = [lr_at_step(step, 40, 1e-6, 1.0) for step in steps]
    smoothed = list(2.0 - np.tanh((steps - 22) / 3.0))  # steepest descent at step 22
    assert suggest_lr(lrs, smoothed) == lrs[22]


def test_suggest_lr_ignores_the_settling_start_and_the_diverging_end():
    lrs = [lr_at_step(step, 40, 1e-6, 1.0) for step in range(40)]
    smoothed = [2.0] * 40
    smoothed[SKIP_START - 3:] = [1.0] * (40 - SKIP_START + 3)  # a cliff before SKIP_START
    smoothed[25] = 0.5  # the steepest fall that counts: the central difference is lowest at step 24
    smoothed[40 - SKIP_END + 1] = -50.0  # a cliff inside the skipped end
    assert suggest_lr(lrs, smoothed) == lrs[24]


def test_suggest_lr_is_none_when_too_few_points_remain_after_skipping():
    too_few = SKIP_START + SKIP_END + 2
    lrs = [lr_at_step(step, too_few, 1e-6, 1.0) for step in range(too_few)]
    assert suggest_lr(lrs, list(np.linspace(2, 1, too_few))) is None
    assert suggest_lr(lrs + [1.1], list(np.linspace(2, 1, too_few + 1))) is not None
    assert suggest_lr([], []) is None


# --- lr_range_test --------------------------------------------------------------------------------

def test_range_test_sweeps_increasing_lrs_inside_the_range_one_per_step():
    result = range_test(num_steps=30, max_lr=0.1)  # too small an LR to diverge: all 30 steps run
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) == 30
    assert all(a < b for a, b in zip(result.lrs, result.lrs[1:]))
    assert result.lrs[0] == pytest.approx(MIN_LR)
    assert result.lrs[-1] == pytest.approx(0.1)


def test_range_test_on_learnable_data_lowers_the_loss_and_suggests_a_finite_lr_inside_the_range():
    result = range_test(num_steps=30)
    assert min(result.smoothed) < result.smoothed[0]
    assert result.suggestion is not None and math.isfinite(result.suggestion)
    assert MIN_LR <= result.suggestion <= MAX_LR
    assert result.suggestion in result.lrs


def test_range_test_of_a_real_model_stops_early_once_the_lr_is_too_large():
    result = range_test(separable_batches(flipped_share=0.2), num_steps=30, max_lr=1e3)
    assert len(result.lrs) < 30
    assert result.smoothed[-1] > 4 * min(result.smoothed)
    assert all(a < b for a, b in zip(result.lrs, result.lrs[1:]))


def test_range_test_sets_the_optimizers_lr_at_each_step(monkeypatch):
    seen = []

    def train_step(model, normalize, images, targets, criterion, optimizer, *args):
        seen.append(optimizer.param_groups[0]["lr"])
        return torch.tensor(1.0)

    monkeypatch.setattr(studies.lr_finder, "train_step", train_step)
    result = range_test(num_steps=12)
    assert seen == result.lrs


def test_range_test_stops_at_the_step_where_the_smoothed_loss_diverges(monkeypatch):
    losses_per_step(monkeypatch, lambda step: 1.0 if step < 15 else 1000.0)
    result = range_test(num_steps=30)
    assert len(result.lrs) == 16  # the diverging step is kept, nothing after it
    assert result.losses[-1] == 1000.0
    assert result.smoothed[-1] > 4 * min(result.smoothed)


def test_range_test_stops_before_a_nan_loss_and_keeps_the_steps_before(monkeypatch):
    losses_per_step(monkeypatch, lambda step: 1.0 if step < 20 else math.nan)
    result = range_test(num_steps=30)
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) == 20
    assert all(math.isfinite(loss) for loss in result.losses)


def test_range_test_smooths_the_loss_with_a_bias_corrected_average(monkeypatch):
    losses_per_step(monkeypatch, lambda step: 2.0)
    result = range_test(num_steps=12)
    assert result.smoothed == pytest.approx([2.0] * 12)


def test_range_test_that_stops_too_early_has_no_suggestion(monkeypatch):
    losses_per_step(monkeypatch, lambda step: 1.0 if step < 5 else math.inf)
    result = range_test(num_steps=30)
    assert len(result.lrs) == 5
    assert result.suggestion is None


def test_range_test_goes_round_a_short_loader_again_telling_its_sampler_each_pass(monkeypatch):
    class Sampler:
        def __init__(self):
            self.epochs = []

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

    class Loader:
        def __init__(self, batches):
            self.batches, self.sampler = batches, Sampler()

        def __iter__(self):
            return iter(self.batches)

    loader = Loader(separable_batches(num_batches=4))
    losses_per_step(monkeypatch, lambda step: 1.0)
    result = range_test(loader, num_steps=10)
    assert len(result.lrs) == 10
    assert loader.sampler.epochs == [0, 1, 2]
