"""What `--resume` continues, and on what data: one test per row of the README's table (continue,
fork, fine-tune), a run found by its tag across the output root, and the class check before a
resumed or fine-tuned run trains."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import main
from tests.conftest import write_image_folder

REPO = Path(__file__).resolve().parent.parent.parent
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
FAST = ["DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled", "DATA.TRAIN_SUBSET", "128", "PRINT_FREQ", "5"]


def quickstart(output: Path, *opts: str, tag: str | None = "t", flags: tuple[str, ...] = (), cfg: str = QUICKSTART,
               epochs: int = 1) -> int:
    """main.py on the quickstart into `output`, with `opts` last."""
    tag_flag = ["--tag", tag] if tag else []
    return main.main(["--cfg", cfg, "--output", str(output), *tag_flag, "--device", "cpu", *flags,
                      "--opts", *FAST, "TRAIN.EPOCHS", str(epochs), *opts])


def epochs_logged(folder: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


def checksums(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def trained_output(tmp_path_factory) -> Path:
    """An output root with one finished one-epoch run: lenet5_digits/t (a model the quickstart
    config does not name), whose last.pth can go on to more epochs."""
    output = tmp_path_factory.mktemp("trained") / "out"
    assert quickstart(output, "MODEL.NAME", "lenet5") == 0
    return output


@pytest.fixture
def output(trained_output, tmp_path) -> Path:
    """This test's copy of `trained_output`."""
    shutil.copytree(trained_output, tmp_path / "out")
    return tmp_path / "out"


def experiment_folders(output: Path) -> dict[str, list[str]]:
    return {experiment: sorted(os.listdir(output / experiment)) for experiment in sorted(os.listdir(output))}


# --- the README's table: continue, fork, fine-tune (defect 14) ------------------------------------

def test_continue_with_tag_and_resume_auto_goes_on_in_the_runs_folder(output):
    run = output / "lenet5_digits" / "t"
    assert quickstart(output, "MODEL.NAME", "lenet5", flags=("--resume", "auto"), epochs=2) == 0
    assert epochs_logged(run) == [0, 1]
    assert "resumed from" in (run / "log.txt").read_text()
    assert experiment_folders(output) == {"lenet5_digits": ["t"]}


@pytest.mark.parametrize("tag", [None, "t", "other"], ids=["no-tag", "its-own-tag", "another-tag"])
def test_resume_of_a_runs_last_pth_continues_that_run_whatever_the_tag(output, tag):
    run = output / "lenet5_digits" / "t"
    wandb_id = torch.load(run / "last.pth", weights_only=True)["wandb_id"]
    assert quickstart(output, tag=tag, flags=("--resume", str(run / "last.pth")), epochs=2) == 0
    assert experiment_folders(output) == {"lenet5_digits": ["t"]}  # no fork, no lenet_digits folder
    assert epochs_logged(run) == [0, 1]
    log = (run / "log.txt").read_text()
    assert f"resumed from {run / 'last.pth'}" in log and "as a new run" not in log
    assert torch.load(run / "last.pth", weights_only=True)["wandb_id"] == wandb_id
    assert ("--tag other is not used" in log) == (tag == "other")
    config = (run / "config.yaml").read_text()
    assert "TAG: t\n" in config and f"OUTPUT: {output}\n" in config


def test_a_checkpoint_copied_out_of_its_run_folder_forks_into_a_new_run(output, tmp_path):
    run = output / "lenet5_digits" / "t"
    copied = tmp_path / "kept" / "last.pth"
    copied.parent.mkdir()
    shutil.copy(run / "last.pth", copied)
    before = checksums(run)
    assert quickstart(output, tag="fork", flags=("--resume", str(copied)), epochs=2) == 0
    fork = output / "lenet5_digits" / "fork"  # named for the checkpoint's model, not --cfg's lenet
    assert experiment_folders(output) == {"lenet5_digits": ["fork", "t"]}
    assert checksums(run) == before
    assert epochs_logged(fork) == [1]
    assert "as a new run (its own best.pth and W&B run): continuing with epoch 2" in (fork / "log.txt").read_text()
    assert (fork / "best.pth").exists()


def test_fine_tuning_from_a_runs_best_pth_is_a_new_run_from_epoch_one(output):
    run = output / "lenet5_digits" / "t"
    before = checksums(run)
    assert quickstart(output, "MODEL.NAME", "lenet5", "MODEL.PRETRAINED", str(run / "best.pth"), tag="ft") == 0
    assert epochs_logged(output / "lenet5_digits" / "ft") == [0]
    assert checksums(run) == before


# --- --resume auto finds the run by its tag (defect 3) --------------------------------------------

def test_resume_auto_finds_the_tag_under_another_experiment_folder_and_keeps_its_config(output):
    """The quickstart config names lenet; the run tagged t is lenet5's, and continues as lenet5."""
    run = output / "lenet5_digits" / "t"
    assert quickstart(output, flags=("--resume", "auto"), epochs=2) == 0
    assert experiment_folders(output) == {"lenet5_digits": ["t"]}
    assert epochs_logged(run) == [0, 1]
    log = (run / "log.txt").read_text()
    assert "resumed from" in log and "MODEL.NAME 'lenet' (the run has 'lenet5')" in log
    assert "NAME: lenet5\n" in (run / "config.yaml").read_text()


def test_a_tag_under_several_experiment_folders_is_refused_and_both_are_listed(output, capsys):
    assert quickstart(output) == 0  # lenet_digits/t
    before = checksums(output)
    capsys.readouterr()
    assert quickstart(output, flags=("--resume", "auto"), epochs=2) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert str(output / "lenet_digits" / "t") in err and str(output / "lenet5_digits" / "t") in err
    assert checksums(output) == before


def test_a_group_restarted_by_torchrun_before_its_first_checkpoint_starts_its_run(output, monkeypatch):
    """torchrun's restart resumes "auto" by itself, also for a run with nothing to continue yet."""
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert quickstart(output, tag="new") == 0
    assert epochs_logged(output / "lenet_digits" / "new") == [0]


# --- the classes of the data a run continues or fine-tunes on (defect 2) ---------------------------

def train_on_folder(output: Path, root: Path, *opts: str, tag: str = "t", flags: tuple[str, ...] = (),
                    epochs: int = 1) -> int:
    return main.main(["--cfg", QUICKSTART, "--output", str(output), "--tag", tag, "--device", "cpu", *flags,
                      "--opts", "WANDB.MODE", "disabled", "DATA.NUM_WORKERS", "0", "DATA.DATASET", "imagefolder",
                      "DATA.DATA_PATH", str(root), "DATA.IMG_SIZE", "16", "DATA.BATCH_SIZE", "8",
                      "TRAIN.EPOCHS", str(epochs), *opts])


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory) -> Path:
    """A workspace with data/ (classes cat, dog, zebra) and a one-epoch run on it, out/lenet_imagefolder/t."""
    workspace = tmp_path_factory.mktemp("folder_run")
    root = write_image_folder(workspace / "data", per_class=4, val_per_class=2, num_test=3)
    assert train_on_folder(workspace / "out", root) == 0
    return workspace


@pytest.fixture
def folders(folder_run, tmp_path) -> Path:
    """This test's copy of `folder_run`, with renamed/ (zebra renamed horse: as many classes, label 2
    another) and fewer/ (zebra left out) beside data/."""
    shutil.copytree(folder_run, tmp_path / "ws")
    workspace = tmp_path / "ws"
    shutil.copytree(workspace / "data", workspace / "renamed")
    shutil.copytree(workspace / "data", workspace / "fewer")
    for split in ("train", "val"):
        (workspace / "renamed" / split / "zebra").rename(workspace / "renamed" / split / "horse")
        shutil.rmtree(workspace / "fewer" / split / "zebra")
    return workspace


@pytest.mark.parametrize("how", ["auto", "path"])
def test_resuming_on_data_whose_classes_changed_is_refused_before_anything_is_written(folders, capsys, how):
    run = folders / "out" / "lenet_imagefolder" / "t"
    resume = "auto" if how == "auto" else str(run / "last.pth")
    before = checksums(folders)
    capsys.readouterr()
    assert train_on_folder(folders / "out", folders / "renamed", flags=("--resume", resume), epochs=2) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert str(run / "last.pth") in err and str(folders / "renamed") in err and "zebra" in err and "horse" in err
    assert checksums(folders) == before
    assert json.loads((run / "classes.json").read_text()) == ["cat", "dog", "zebra"]


def test_resuming_on_the_same_classes_moved_to_another_folder_goes_on(folders):
    shutil.copytree(folders / "data", folders / "moved")
    assert train_on_folder(folders / "out", folders / "moved", flags=("--resume", "auto"), epochs=2) == 0
    assert epochs_logged(folders / "out" / "lenet_imagefolder" / "t") == [0, 1]


def test_fine_tuning_onto_as_many_other_classes_is_refused(folders, capsys):
    best = folders / "out" / "lenet_imagefolder" / "t" / "best.pth"
    before = checksums(folders)
    capsys.readouterr()
    assert train_on_folder(folders / "out", folders / "renamed", "MODEL.PRETRAINED", str(best), tag="ft") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "MODEL.PRETRAINED" in err and str(best) in err and str(folders / "renamed") in err
    assert checksums(folders) == before


def test_fine_tuning_onto_another_number_of_classes_rebuilds_the_classifier_and_the_log_says_so(folders):
    best = folders / "out" / "lenet_imagefolder" / "t" / "best.pth"
    assert train_on_folder(folders / "out", folders / "fewer", "MODEL.PRETRAINED", str(best), tag="ft") == 0
    fine_tuned = folders / "out" / "lenet_imagefolder" / "ft"
    assert json.loads((fine_tuned / "classes.json").read_text()) == ["cat", "dog"]
    assert f"fine-tuning from {best}, trained on other classes (cat, dog, zebra): its classifier starts afresh " \
           f"for the 2 classes of {folders / 'fewer'}" in (fine_tuned / "log.txt").read_text()
