"""Bad-input rows: resume (what --resume continues, and on what classes)."""
import shutil
from pathlib import Path

import torch

from tests.bad_inputs.row import FAST_OPTS, QUICKSTART, BadInput, quickstart_argv


def with_other_class_names(source: Path, target: Path) -> Path:
    """A copy of checkpoint `source` at `target` that says it was trained on ten other classes."""
    checkpoint = torch.load(source, weights_only=True)
    checkpoint["class_names"] = [f"class_{i}" for i in range(10)]
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, target)
    return target


def unknown_tag(workspace: Path, finished_run: Path) -> list[str]:
    return quickstart_argv(workspace, "TRAIN.EPOCHS", "2", tag="nosuch", flags=("--resume", "auto"))


def tag_in_two_experiments(workspace: Path, finished_run: Path) -> list[str]:
    shutil.copytree(finished_run, workspace / "out" / "lenet5_digits" / "done")
    return quickstart_argv(workspace, "TRAIN.EPOCHS", "2", tag="done", flags=("--resume", "auto"))


def no_tag_and_no_run_of_this_model(workspace: Path, finished_run: Path) -> list[str]:
    return ["--cfg", QUICKSTART, "--output", str(workspace / "out"), "--device", "cpu", "--resume", "auto",
            "--opts", *FAST_OPTS, "MODEL.NAME", "lenet5", "TRAIN.EPOCHS", "2"]


def best_pth_inside_its_run(workspace: Path, finished_run: Path) -> list[str]:
    return quickstart_argv(workspace, "TRAIN.EPOCHS", "2", tag="fork",
                           flags=("--resume", str(finished_run / "best.pth")))


def missing_checkpoint_inside_a_run(workspace: Path, finished_run: Path) -> list[str]:
    return quickstart_argv(workspace, "TRAIN.EPOCHS", "2", tag="done",
                           flags=("--resume", str(finished_run / "lastt.pth")))


def run_trained_on_other_classes(workspace: Path, finished_run: Path) -> list[str]:
    with_other_class_names(finished_run / "last.pth", finished_run / "last.pth")
    return quickstart_argv(workspace, "TRAIN.EPOCHS", "2", tag="done", flags=("--resume", "auto"))


def fork_trained_on_other_classes(workspace: Path, finished_run: Path) -> list[str]:
    copied = with_other_class_names(finished_run / "last.pth", workspace / "kept" / "last.pth")
    return quickstart_argv(workspace, "TRAIN.EPOCHS", "2", tag="fork", flags=("--resume", str(copied)))


def fine_tune_onto_as_many_other_classes(workspace: Path, finished_run: Path) -> list[str]:
    copied = with_other_class_names(finished_run / "best.pth", workspace / "kept" / "best.pth")
    return quickstart_argv(workspace, "MODEL.PRETRAINED", str(copied), tag="ft")


ROWS: list[BadInput] = [
    BadInput("resume-auto-unknown-tag", unknown_tag, names=("nosuch", "lenet_digits/done")),
    BadInput("resume-auto-tag-in-two-experiments", tag_in_two_experiments,
             names=("lenet_digits/done", "lenet5_digits/done")),
    BadInput("resume-auto-no-tag-no-run-of-this-model", no_tag_and_no_run_of_this_model,
             names=("lenet5_digits", "lenet_digits/done")),
    BadInput("resume-best-pth-inside-its-run", best_pth_inside_its_run, names=("done/best.pth", "done/last.pth")),
    BadInput("resume-missing-checkpoint-inside-a-run", missing_checkpoint_inside_a_run, names=("done/lastt.pth",)),
    BadInput("resume-run-trained-on-other-classes", run_trained_on_other_classes,
             names=("done/last.pth", "class_0")),
    BadInput("resume-fork-trained-on-other-classes", fork_trained_on_other_classes,
             names=("kept/last.pth", "class_0")),
    BadInput("fine-tune-onto-as-many-other-classes", fine_tune_onto_as_many_other_classes,
             names=("MODEL.PRETRAINED", "kept/best.pth", "class_0")),
]
