"""peak_tensor_mb: the peak memory held by tensors during training steps on the CPU, the figure
torch.cuda.max_memory_allocated gives on a GPU. A known allocation reads back as its size, the
figure grows with the batch as LeNet's activations do, and runs and --throughput report it."""
import json
import os

import pytest
import torch
from torch import nn

import main
from data.normalize import Normalize
from models import create_model
from studies.throughput import scan_throughput
from utils.device import DeviceSetup
from utils.tensor_memory import TensorMemoryWindow, cpu_bytes, peak_of_running_total, training_tensors

MB = 2**20
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "configs/quickstart.yaml")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- the measurement ------------------------------------------------------------------------------

def test_a_step_that_allocates_4_mb_measures_4_mb():
    with TensorMemoryWindow([]) as window:
        block = torch.ones(4 * MB, dtype=torch.uint8)
        del block
    assert window.peak_mb == pytest.approx(4.0, abs=0.01)


def test_the_peak_is_what_is_alive_at_once_not_the_sum_of_allocations():
    with TensorMemoryWindow([]) as window:
        first = torch.ones(4 * MB, dtype=torch.uint8)
        second = torch.ones(2 * MB, dtype=torch.uint8)
        del first
        third = torch.ones(3 * MB, dtype=torch.uint8)
        del second, third
    assert window.peak_mb == pytest.approx(6.0, abs=0.01)  # first and second; never all three


def test_tensors_held_when_the_window_opens_count_once_however_many_views_share_them():
    held = torch.ones(MB, dtype=torch.uint8)
    with TensorMemoryWindow([held, held[:10], held.view(2, -1)]) as window:
        block = torch.ones(4 * MB, dtype=torch.uint8)
        del block
    assert window.peak_mb == pytest.approx(5.0, abs=0.01)


def test_running_total_peaks_where_the_most_is_allocated_at_once():
    assert peak_of_running_total([4, 2, -4, 3, -5]) == 6
    assert peak_of_running_total([-3, 1]) == 0
    assert peak_of_running_total([]) == 0


def test_training_tensors_are_parameters_gradients_and_optimizer_state_each_counted_once():
    model = nn.Linear(100, 10)  # 1,010 float32 parameters
    optimizer = torch.optim.AdamW(model.parameters())
    assert cpu_bytes(training_tensors(model, optimizer)) == 1010 * 4
    model(torch.ones(1, 100)).sum().backward()
    optimizer.step()  # gradients stay; AdamW adds two moments and a step count per parameter
    assert cpu_bytes(training_tensors(model, None, optimizer)) == 4 * 1010 * 4 + 2 * 4


def test_a_window_inside_another_profiler_gives_no_figure_and_leaves_that_profiler_running():
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]):
        with TensorMemoryWindow([]) as window:
            torch.ones(MB)
        assert torch._C._autograd._profiler_enabled()
    assert window.peak_mb is None


def test_over_first_opens_the_window_at_once_and_closes_it_after_that_many_batches():
    window = TensorMemoryWindow([])
    batches = window.over_first(iter(range(5)), 2)
    assert torch._C._autograd._profiler_enabled()  # open before the first batch is asked for
    seen = []
    for batch in batches:
        seen.append((batch, torch._C._autograd._profiler_enabled()))
    assert seen == [(0, True), (1, True), (2, False), (3, False), (4, False)]
    assert window.peak_mb is not None


def test_closing_the_batches_early_closes_the_window():
    window = TensorMemoryWindow([])
    batches = window.over_first(iter(range(5)), 3)
    next(batches)
    batches.close()  # a stop request or an error ends the epoch inside the window
    assert not torch._C._autograd._profiler_enabled()
    assert window.peak_mb is not None


# --- it grows with the batch ------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer_name", ["sgd", "adamw"])
def test_lenet_tensor_memory_roughly_doubles_from_batch_64_to_128(optimizer_name):
    torch.manual_seed(0)
    model = create_model("lenet", num_classes=10)
    optimizer = (torch.optim.SGD(model.parameters(), lr=0.01) if optimizer_name == "sgd"
                 else torch.optim.AdamW(model.parameters()))
    setup = DeviceSetup.create(torch.device("cpu"), "off", False, False, False)

    def loader(batch_size, num_batches):
        return [(torch.zeros(batch_size, 3, 32, 32, dtype=torch.uint8), torch.zeros(batch_size, dtype=torch.long))
                for _ in range(num_batches)]

    scan = scan_throughput(model, Normalize((0.5,) * 3, (0.25,) * 3), nn.CrossEntropyLoss(), optimizer,
                           setup.grad_scaler(), setup, loader, [64, 128], 32, 10, warmup_steps=1, timed_steps=1)
    at_64, at_128 = (row["peak_tensor_mb"] for row in scan.rows)
    # What does not grow with the batch: the parameters, their gradients, the optimizer's state.
    fixed = (cpu_bytes(training_tensors(model, optimizer)) + cpu_bytes(model.parameters())) / MB
    assert 0 < fixed < at_64 < at_128
    assert 1.6 < at_128 / at_64 < 2.4
    assert 1.8 < (at_128 - fixed) / (at_64 - fixed) < 2.2  # the activations, batch and temporaries double
    assert all(row["peak_rss_mb"] > at_128 for row in scan.rows)  # the process holds far more than its tensors


# --- a run reports it -------------------------------------------------------------------------------

def quickstart_run(tmp_path, batch_size):
    assert main.main(["--cfg", QUICKSTART, "--output", str(tmp_path), "--tag", f"bs{batch_size}", "--device", "cpu",
                      "--opts", "DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled", "TRAIN.EPOCHS", "2",
                      "TRAIN.MAX_STEPS_PER_EPOCH", "4", "DATA.BATCH_SIZE", str(batch_size)]) == 0
    folder = tmp_path / "lenet_digits" / f"bs{batch_size}"
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return json.loads((folder / "summary.json").read_text()), rows


def test_a_cpu_run_reports_peak_tensor_mb_each_epoch_and_its_peak_in_summary_json(tmp_path, capfd):
    summary, rows = quickstart_run(tmp_path, 64)
    assert all(row["peak_tensor_mb"] > 0 and row["peak_rss_mb"] > row["peak_tensor_mb"] for row in rows)
    assert summary["peak_tensor_mb"] == max(row["peak_tensor_mb"] for row in rows)
    assert summary["peak_rss_mb"] > summary["peak_tensor_mb"] and "peak_memory_mb" not in summary
    # The profiler's own chatter (Kineto's start/stop lines, frees it never saw) stays off the terminal.
    err = capfd.readouterr().err
    assert "profiler_start" not in err and "Memory block of unknown size" not in err
    summary_128, _ = quickstart_run(tmp_path, 128)
    assert 1.6 < summary_128["peak_tensor_mb"] / summary["peak_tensor_mb"] < 2.4
