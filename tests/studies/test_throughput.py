"""The throughput scan: one row per batch size that trains, timed with the loader and without,
and a clean stop at the first batch size that runs out of memory."""
import pytest
import torch
from torch import nn

import studies.throughput
from data.normalize import Normalize
from models import create_model
from studies.throughput import default_batch_sizes, scan_throughput
from utils.device import DeviceSetup

IMAGE_SIZE = 32
NUM_CLASSES = 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_loader(batch_size, num_batches):
    """A list of `num_batches` uint8 batches, the shape a real loader yields."""
    generator = torch.Generator().manual_seed(batch_size)
    return [(torch.randint(0, 256, (batch_size, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8, generator=generator),
             torch.randint(0, NUM_CLASSES, (batch_size,), generator=generator))
            for _ in range(num_batches)]


def scan(batch_sizes, model=None, loader=make_loader):
    torch.manual_seed(0)
    model = model or create_model("lenet", num_classes=NUM_CLASSES)
    setup = DeviceSetup.create(torch.device("cpu"), "off", False, False, False)
    return scan_throughput(model, Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), nn.CrossEntropyLoss(),
                           torch.optim.SGD(model.parameters(), lr=0.01), setup.grad_scaler(), setup, loader,
                           batch_sizes, IMAGE_SIZE, NUM_CLASSES, warmup_steps=1, timed_steps=2)


def run_out_of_memory_from(monkeypatch, batch_size):
    """Make every training step on `batch_size` images or more raise CUDA's out-of-memory error."""
    real_train_step = studies.throughput.train_step

    def train_step(model, normalize, images, *args):
        if images.shape[0] >= batch_size:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_train_step(model, normalize, images, *args)

    monkeypatch.setattr(studies.throughput, "train_step", train_step)


def test_default_batch_sizes_are_the_powers_of_two_up_to_the_maximum():
    assert default_batch_sizes(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert default_batch_sizes(100) == [1, 2, 4, 8, 16, 32, 64]
    assert default_batch_sizes(1) == [1]


def test_scan_gives_one_row_per_batch_size_with_positive_speeds_and_cpu_memory():
    result = scan([1, 2, 4])
    assert [row["batch_size"] for row in result.rows] == [1, 2, 4]
    for row in result.rows:
        assert set(row) == {"batch_size", "model_images_per_sec", "model_ms_per_step", "loader_images_per_sec",
                            "loader_ms_per_step", "peak_tensor_mb", "peak_rss_mb"}
        assert row["model_images_per_sec"] > 0 and row["loader_images_per_sec"] > 0
        assert row["model_ms_per_step"] > 0 and row["loader_ms_per_step"] > 0
        assert row["peak_rss_mb"] > row["peak_tensor_mb"] > 0
        assert row["model_images_per_sec"] == pytest.approx(1000 * row["batch_size"] / row["model_ms_per_step"])
    assert (result.largest_fit, result.out_of_memory_at) == (4, None)


def test_scan_asks_the_loader_for_warmup_plus_timed_batches_of_each_size():
    requests = []

    def loader(batch_size, num_batches):
        requests.append((batch_size, num_batches))
        return make_loader(batch_size, num_batches)

    scan([2, 4], loader=loader)
    assert requests == [(2, 3), (4, 3)]


def test_scan_trains_the_model_it_is_given():
    torch.manual_seed(0)
    model = create_model("lenet", num_classes=NUM_CLASSES)
    before = [parameter.detach().clone() for parameter in model.parameters()]
    scan([2], model=model)
    assert model.training
    assert any(not torch.equal(old, new) for old, new in zip(before, model.parameters()))


def test_scan_stops_at_the_first_batch_size_that_runs_out_of_memory(monkeypatch):
    run_out_of_memory_from(monkeypatch, 64)
    result = scan(default_batch_sizes(256))
    assert [row["batch_size"] for row in result.rows] == [1, 2, 4, 8, 16, 32]
    assert result.largest_fit == 32
    assert result.out_of_memory_at == 64


def test_scan_where_even_the_first_batch_size_runs_out_of_memory_has_no_largest_fit(monkeypatch):
    run_out_of_memory_from(monkeypatch, 1)
    result = scan([1, 2])
    assert (result.rows, result.largest_fit, result.out_of_memory_at) == ([], None, 1)


def test_scan_skips_a_batch_size_the_model_cannot_train_on_and_goes_on():
    # BatchNorm refuses to train on a batch of one (one value per channel): a ValueError.
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=8), nn.Flatten(), nn.BatchNorm1d(4 * 4 * 4),
                          nn.Linear(4 * 4 * 4, NUM_CLASSES))
    result = scan([1, 2, 4], model=model)
    assert [row["batch_size"] for row in result.rows] == [2, 4]
    assert (result.largest_fit, result.out_of_memory_at) == (4, None)
