"""bench/fake_data.py: every format it writes trains through main.py with the command it prints, and
its images carry a class signal that a short run learns."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import shlex
from pathlib import Path

import pytest
import torch

import main
from bench import fake_data
from bench.fake_formats import CIFAR10_FOLDER, CIFAR10_LABEL_NAMES

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")
REPO = Path(__file__).resolve().parent.parent.parent
# Each format at a size that trains in a second or two.
TINY = {
    "cifar10": ["--per-class", "20", "--test-per-class", "10"],
    "cifar100": ["--per-class", "2", "--test-per-class", "1"],
    "medium-imagenet": ["--per-class", "1", "--val-per-class", "1", "--num-test", "10"],
    "image-folder": ["--classes", "4", "--per-class", "6", "--val-per-class", "2", "--num-test", "5"],
    "kaggle-csv": ["--classes", "4", "--per-class", "6", "--num-test", "5"],
    "faces": ["--identities", "6", "--per-identity", "6", "--val-per-identity", "2", "--num-test", "5",
              "--unseen-identities", "3", "--unseen-per-identity", "3", "--num-pairs", "12", "--size", "32"],
}
# A few steps of LeNet, whatever the config trains.
QUICK = ["MODEL.NAME", "lenet", "TRAIN.EPOCHS", "1", "TRAIN.MAX_STEPS_PER_EPOCH", "2", "TRAIN.WARMUP_EPOCHS", "0",
         "DATA.BATCH_SIZE", "8", "DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled"]


def write(*argv: str) -> tuple[int, str]:
    """fake_data.py run with `argv`: (its exit code, what it printed)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = fake_data.main(list(argv))
    return code, printed.getvalue()


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, tuple[Path, list[str]]]:
    """Each format written tiny by the command line: {format: (ROOT, the main.py commands it printed)}."""
    base = tmp_path_factory.mktemp("fake")
    formats = {}
    for name, sizes in TINY.items():
        code, printed = write(name, str(base / name), *sizes)
        assert code == 0
        formats[name] = base / name, [line.strip() for line in printed.splitlines()
                                      if line.strip().startswith("python main.py ")]
    return formats


@pytest.fixture
def in_repo(monkeypatch, one_torch_thread):
    """The printed commands name configs relative to the repository, where a user runs them."""
    monkeypatch.chdir(REPO)


def train(command: str, output: Path, *opts: str) -> int:
    """main.py as the printed `command` runs it (tagged "run" unless it names a tag), into `output`, on
    the CPU, with `opts` last."""
    argv = shlex.split(command)
    assert argv[:2] == ["python", "main.py"]
    argv = ["--output", str(output), "--tag", "run", "--device", "cpu", *argv[2:]]
    return main.main(argv + ([] if "--opts" in argv else ["--opts"]) + list(opts))


def finished(run: Path, epochs: int = 1) -> dict:
    """The run's summary.json, once it is checked to have finished all `epochs`."""
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["epochs_completed"] == summary["epochs_planned"] == epochs
    return summary


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


# format -> (its run folder under OUTPUT, the classes the run learns, its test images)
RUNS = {
    "cifar10": ("lenet_cifar10", CIFAR10_LABEL_NAMES, 100),
    "cifar100": ("lenet_cifar100", [f"class_{k:02d}" for k in range(100)], 100),
    "medium-imagenet": ("lenet_medium_imagenet", [f"class_{k:03d}" for k in range(200)], 10),
    "image-folder": ("lenet_imagefolder", [f"class_{k:02d}" for k in range(4)], 5),
    "kaggle-csv": ("lenet_csv", [f"species_{k:02d}" for k in range(4)], 5),
}


@pytest.mark.parametrize("name", RUNS)
def test_each_format_trains_a_few_steps_with_the_command_it_prints(written, in_repo, tmp_path, name):
    root, commands = written[name]
    assert len(commands) == 1 and str(root) in commands[0]
    assert train(commands[0], tmp_path, *QUICK) == 0
    folder, classes, num_test = RUNS[name]
    run = tmp_path / folder / "run"
    finished(run)
    assert json.loads((run / "classes.json").read_text()) == classes
    submission = rows(run / "submission.csv")
    if name == "kaggle-csv":  # named by id and class, in sample_submission.csv's order
        assert submission[0] == ["id", "label"]
        assert [row[0] for row in submission[1:]] == [row[0] for row in rows(root / "sample_submission.csv")[1:]]
        assert {row[1] for row in submission[1:]} <= set(classes)
    assert len(submission) == 1 + num_test


def test_lenet_learns_the_fake_cifar10_well_above_chance_in_three_epochs(written, in_repo, tmp_path):
    root, _ = written["cifar10"]
    assert main.main(["--cfg", "configs/lenet_cifar10.yaml", "--data-path", str(root), "--output", str(tmp_path),
                      "--tag", "learn", "--device", "cpu", "--opts", "TRAIN.EPOCHS", "3", "TRAIN.WARMUP_EPOCHS", "0",
                      "DATA.BATCH_SIZE", "16", "DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled"]) == 0
    summary = finished(tmp_path / "lenet_cifar10" / "learn", epochs=3)
    assert summary["best_val_acc1"] > 50.0  # chance is 10%: 200 train images, 12 steps an epoch


def test_faces_classify_then_verify_scoring_the_pairs_files(written, in_repo, tmp_path):
    root, (classify, arcface) = written["faces"]
    assert train(classify, tmp_path, *QUICK) == 0
    stage1 = tmp_path / "lenet_imagefolder" / "classify"
    finished(stage1)
    metrics = [json.loads(line) for line in (stage1 / "metrics.jsonl").read_text().splitlines()]
    assert all(0.0 <= row["verify_auc"] <= 1.0 for row in metrics)
    assert "verification on 12 verify pairs" in (stage1 / "log.txt").read_text()
    test_pairs = (root / fake_data.VERIFY_TEST_PAIRS).read_text().splitlines()
    assert len(rows(stage1 / "verify_submission.csv")) == 1 + len(test_pairs) == 1 + 12
    # Stage 2 from stage 1's best.pth, which the printed command finds under output/ in the repository.
    assert train(arcface, tmp_path, *QUICK, "MODEL.PRETRAINED", str(stage1 / "best.pth")) == 0
    stage2 = tmp_path / "lenet_imagefolder" / "arcface"
    assert "best_verify_auc" in finished(stage2)
    assert torch.load(stage2 / "best.pth", weights_only=True)["best_metric"] == "verify_auc"


def test_the_pairs_files_pair_identities_that_training_never_sees(written):
    root, _ = written["faces"]
    trained = {folder.name for folder in (root / "train").iterdir()}
    labelled = [line.split() for line in (root / fake_data.VERIFY_PAIRS).read_text().splitlines()]
    assert len(labelled) == 12 and {label for *_, label in labelled} == {"0", "1"}
    assert len({frozenset(pair[:2]) for pair in labelled}) == 12  # no pair twice, none of an image with itself
    identities = {path.split("/")[2] for pair in labelled for path in pair[:2]}
    for first, second, label in labelled:
        assert (first.split("/")[2] == second.split("/")[2]) == (label == "1")
    assert len(identities) == 3 and not identities & trained
    unlabelled = [line.split() for line in (root / fake_data.VERIFY_TEST_PAIRS).read_text().splitlines()]
    assert all(len(pair) == 2 and all(path.startswith("verification/test/") for path in pair) for pair in unlabelled)


def test_the_same_seed_writes_the_same_files(tmp_path):
    for root, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        code, _ = write("cifar10", str(tmp_path / root), "--per-class", "2", "--test-per-class", "1", "--seed", seed)
        assert code == 0
    batch = f"{CIFAR10_FOLDER}/data_batch_1"
    assert (tmp_path / "a" / batch).read_bytes() == (tmp_path / "b" / batch).read_bytes()
    assert (tmp_path / "a" / batch).read_bytes() != (tmp_path / "c" / batch).read_bytes()


@pytest.mark.parametrize("name, existing", [("cifar10", f"{CIFAR10_FOLDER}/data_batch_1"),
                                            ("image-folder", "train/cat/0001.jpg"),
                                            ("medium-imagenet", "medium-imagenet-nmep-96.hdf5")])
def test_data_already_there_is_refused_and_left_as_it_was(tmp_path, capsys, name, existing):
    (tmp_path / existing).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / existing).write_bytes(b"the real data")
    assert write(name, str(tmp_path), "--per-class", "1")[0] == 2
    assert str(tmp_path) in error_line(capsys)
    assert (tmp_path / existing).read_bytes() == b"the real data"
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == [tmp_path / existing]


def test_pairs_files_that_could_not_hold_both_kinds_of_pair_are_refused_before_writing(tmp_path, capsys):
    assert write("faces", str(tmp_path / "faces"), "--num-pairs", "1")[0] == 2
    assert "--num-pairs (1)" in error_line(capsys)
    assert not (tmp_path / "faces").exists()


def error_line(capsys) -> str:
    """The one line fake_data.py wrote to stderr."""
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]
