"""torchrun on CPU (gloo): two processes train exactly like one with the same global batch, and
their val accuracy and submission equal a single-process --eval / --predict of the checkpoint."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch

import main


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "configs/quickstart.yaml")
# LeNet has no BatchNorm, so per-process batch statistics cannot make the two runs differ. SGD,
# because Adam's normalised steps turn the rounding of near-zero gradients (summed in another
# order across processes) into differences of a whole LR step.
OPTS = ["WANDB.MODE", "disabled", "DATA.NUM_WORKERS", "0", "PRINT_FREQ", "5", "TRAIN.EPOCHS", "2",
        "TRAIN.OPTIMIZER.NAME", "sgd", "TRAIN.LR", "0.05"]

# Threads of the one-process reference run, as on the 2-core machines this suite was written on.
REFERENCE_THREADS = 2


def run_folder(output, tag):
    return output / "lenet_digits" / tag


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same 2-epoch run twice: torchrun with 2 processes of batch 32, and one process of batch 64."""
    output = tmp_path_factory.mktemp("runs")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "main.py",
               "--cfg", QUICKSTART, "--output", str(output), "--tag", "ddp", "--device", "cpu",
               "--opts", *OPTS, "DATA.BATCH_SIZE", "32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    # The reference runs on two threads whatever share of the cores this test worker has: the
    # summation order of the CPU kernels moves the weights by about 1e-5 between thread counts.
    threads = torch.get_num_threads()
    torch.set_num_threads(REFERENCE_THREADS)
    try:
        assert main.main(["--cfg", QUICKSTART, "--output", str(output), "--tag", "single", "--device", "cpu",
                          "--opts", *OPTS, "DATA.BATCH_SIZE", "64"]) == 0
    finally:
        torch.set_num_threads(threads)
    return output, ddp


def test_two_processes_end_with_the_parameters_of_one_process_with_the_same_global_batch(runs):
    output, ddp = runs
    two = torch.load(run_folder(output, "ddp") / "last.pth", weights_only=True)["model"]
    one = torch.load(run_folder(output, "single") / "last.pth", weights_only=True)["model"]
    assert two.keys() == one.keys()
    for name in one:
        assert torch.allclose(two[name], one[name], rtol=1e-4, atol=1e-5), name
    log = (run_folder(output, "ddp") / "log.txt").read_text()
    assert "batch 32 per process x 2 processes = 64" in log
    # Only rank 0 printed: one "run folder" line, not two.
    assert ddp.stdout.count("run folder:") == 1


def test_two_processes_log_the_metrics_of_the_whole_split(runs):
    output, _ = runs
    rows = {tag: [json.loads(line) for line in (run_folder(output, tag) / "metrics.jsonl").read_text().splitlines()]
            for tag in ("ddp", "single")}
    for two, one in zip(rows["ddp"], rows["single"]):
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)
        assert two["val_acc1"] == pytest.approx(one["val_acc1"], abs=0.3)  # 359 images: one image is 0.28%


def test_the_val_accuracy_and_submission_equal_a_single_process_eval_of_the_checkpoint(runs, capsys):
    output, _ = runs
    folder = run_folder(output, "ddp")
    best = max(json.loads(line)["val_acc1"] for line in (folder / "metrics.jsonl").read_text().splitlines())
    capsys.readouterr()
    assert main.main(["--eval", "--predict", "--resume", str(folder / "best.pth"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"digits val \(359 images\): loss [0-9.]+  acc@1 ([0-9.]+)%", out).group(1) == f"{best:.2f}"
    (eval_dir,) = [name for name in os.listdir(folder) if name.startswith("eval-")]
    assert (folder / eval_dir / "submission.csv").read_text() == (folder / "submission.csv").read_text()
    predicted = (folder / "val_predictions.csv").read_text()
    assert predicted == (folder / eval_dir / "val_predictions.csv").read_text()


def test_a_rank_that_dies_restarts_the_group_which_resumes_from_last_pth(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "--max-restarts", "1", os.path.join(REPO, "tests", "end_to_end", "die_once.py"), "--cfg", QUICKSTART,
               "--output", str(tmp_path), "--tag", "restarted", "--device", "cpu", "--opts", *OPTS,
               "TRAIN.EPOCHS", "3", "DATA.BATCH_SIZE", "32"]
    result = subprocess.run(command, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = run_folder(tmp_path, "restarted")
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    log = (folder / "log.txt").read_text()
    assert f"resumed from {folder / 'last.pth'}: continuing with epoch 2" in log
    assert json.loads((folder / "summary.json").read_text())["status"] == "finished"
