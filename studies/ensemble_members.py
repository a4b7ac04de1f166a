"""The members of an ensemble, and where each one's class probabilities come from.

A member is a run folder (its best.pth), a checkpoint file, or the K fold runs of one K-fold sweep
(their out-of-fold rows as val and their mean test probabilities: studies.folds.assemble_oof). Its
val and test probabilities are the saved ones when they match: a run's own val_probs.csv and
test_probs.csv, or those of an eval-<time> folder beside the checkpoint, whose probs.json names
that checkpoint and, when a TTA is asked for, that TTA. Otherwise the checkpoint predicts them now,
with its own config (`main.py --eval --predict`: engine.from_checkpoint.predict_with_checkpoint),
into a new eval-<time> folder, which the next ensemble of it then reads.
"""
from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass, replace
from typing import Any, Sequence

import yaml

from config import flatten, get_config
from engine.from_checkpoint import predict_with_checkpoint
from engine.run_dir import BEST_CHECKPOINT, is_run_folder
from evaluation.probabilities import ProbTable, read_probs
from evaluation.probs_record import read_probs_record
from studies.compare import find_runs
from studies.folds import assemble_oof
from utils.bounded_yaml import load_yaml
from utils.checkpoint_io import load_checkpoint
from utils.errors import UserError

logger = logging.getLogger(__name__)
PREDICTED = "probabilities predicted now"  # how a member's report line begins when they were


@dataclass
class Member:
    """One member of the ensemble: its val rows (with true classes) and its test rows."""
    name: str  # as the table and the picture show it
    folder: str  # the run folder, the checkpoint's folder, or the folder holding the fold runs
    config: dict[str, Any]  # flat; its SUBMISSION keys shape the ensemble's submission.csv
    val: ProbTable
    test: ProbTable
    source: str  # where the probabilities came from, for the report


@dataclass(frozen=True)
class Prediction:
    """What the members' probabilities must have been predicted with, and how to predict those not
    saved: `tta` (None: as saved, or as each member's TEST.TTA), on `device`, reading `data_path`
    (None: each member's DATA.DATA_PATH)."""
    tta: str | None = None
    device: str = "auto"
    data_path: str | None = None


@dataclass(frozen=True)
class MemberSpec:
    """A member as found on disk, before its probabilities are read."""
    path: str  # as given, or the fold runs' folder
    checkpoint: str | None  # a checkpoint member's file; None for a run folder or fold runs
    run_dirs: tuple[str, ...]  # a run member's folder, or the fold runs; empty for a checkpoint
    given: str = ""  # the path given for it, when it is the only member there (a sweep's folds): its name

    @property
    def identity(self) -> str:
        """The same for two specs that are one member: a run folder and its best.pth are."""
        if self.checkpoint is not None:
            return os.path.realpath(self.checkpoint)
        if len(self.run_dirs) == 1 and self.run_dirs[0] == self.path:
            return os.path.realpath(os.path.join(self.path, BEST_CHECKPOINT))
        return os.path.realpath(self.path)


def find_members(paths: Sequence[str], prediction: Prediction = Prediction()) -> list[Member]:
    """The members in `paths` (find_member_specs), with their probabilities: read_members."""
    return read_members(find_member_specs(paths), prediction)


def find_member_specs(paths: Sequence[str]) -> list[MemberSpec]:
    """The members in `paths`, found but not yet read: a run folder or a checkpoint file is one
    member; a folder of runs gives one member per ordinary run and one per group of fold runs
    (DATA.FOLDS > 0) sharing a folder, as a sweep's --folds runs do. UserError for a path that
    holds no run, or a member given twice."""
    if not paths:
        raise UserError("no members given; pass run folders, checkpoints or sweep folders")
    specs = []
    for path in paths:
        found = member_specs(path)
        specs += [replace(found[0], given=os.path.normpath(path))] if len(found) == 1 else found
    identities = [spec.identity for spec in specs]
    for index, identity in enumerate(identities):
        if identity in identities[:index]:
            raise UserError(f"{specs[index].path} is given twice as a member; pass each member once (--weights "
                            f"gives one member more say)")
    return specs


def read_members(specs: Sequence[MemberSpec], prediction: Prediction = Prediction()) -> list[Member]:
    """The members of `specs` with their probabilities: saved ones that match `prediction`, else
    predicted now. UserError for a member with neither matching probabilities nor a checkpoint."""
    names = member_names([spec.given or spec.checkpoint or spec.path for spec in specs])
    return [read_member(name, spec, prediction) for name, spec in zip(names, specs)]


def member_specs(path: str) -> list[MemberSpec]:
    """The members `path` holds: itself (a checkpoint file or a run folder), or the runs under it."""
    path = os.path.normpath(path)
    if os.path.isfile(path):
        return [MemberSpec(path, path, ())]
    if not os.path.isdir(path):
        raise UserError(f"{path} does not exist; pass run folders (they hold config.yaml), checkpoints (.pth) or "
                        f"folders of runs")
    if is_run_folder(path):
        return [MemberSpec(path, None, (path,))]
    records, _ = find_runs([path])
    if not records:
        raise UserError(f"{path} holds no runs (no folder with a config.yaml); pass run folders, checkpoints or "
                        f"sweep folders")
    specs: list[MemberSpec] = []
    fold_groups: dict[str, list[str]] = {}  # a group's list, filled in place, holds its first run's place
    for record in records:
        if not record.config.get("DATA.FOLDS"):
            specs.append(MemberSpec(record.run_dir, None, (record.run_dir,)))
            continue
        parent = os.path.dirname(record.run_dir)
        if parent not in fold_groups:
            fold_groups[parent] = []
            specs.append(MemberSpec(parent, None, ()))
        fold_groups[parent].append(record.run_dir)
    return [MemberSpec(spec.path, None, tuple(fold_groups[spec.path])) if spec.path in fold_groups else spec
            for spec in specs]


def member_names(paths: Sequence[str]) -> list[str]:
    """Each path relative to the folder they all sit in (its own name when it is alone)."""
    absolute = [os.path.abspath(path) for path in paths]
    root = os.path.commonpath(absolute)
    if len(absolute) == 1 or os.path.isfile(root):
        root = os.path.dirname(root)
    return [os.path.relpath(path, root) for path in absolute]


def read_member(name: str, spec: MemberSpec, prediction: Prediction) -> Member:
    if spec.checkpoint is not None:
        return read_checkpoint_member(name, spec.checkpoint, prediction)
    if spec.run_dirs == (spec.path,):
        return read_run_member(name, spec.path, prediction)
    return read_fold_member(name, spec.path, spec.run_dirs, prediction)


def same_file(first: str | None, second: str) -> bool:
    return first is not None and os.path.realpath(first) == os.path.realpath(second)


def saved_probability_files(checkpoint: str, run_dir: str | None, tta: str | None) -> tuple[str, str, str] | None:
    """(val_probs.csv, test_probs.csv, whose they are) predicted by `checkpoint` (with `tta`,
    unless None), as probs.json records: those of the folder the checkpoint is in (a run's end),
    else those of the newest eval-<time> folder beside it; None when none match. The run folder
    `run_dir` of a run member (`checkpoint` is its best.pth) offers its own files whatever weights
    made them: its final predictions."""
    beside = os.path.dirname(checkpoint)
    folders = [beside, *sorted(glob.glob(os.path.join(glob.escape(beside), "eval-*")), reverse=True)]
    for folder in folders:
        val, test = os.path.join(folder, "val_probs.csv"), os.path.join(folder, "test_probs.csv")
        if not (os.path.isfile(val) and os.path.isfile(test)):
            continue
        record = read_probs_record(folder)
        if folder == run_dir:
            # A run's own files without a record were written before records were: of its best.pth.
            matches = record is None or record.checkpoint is None or same_file(record.checkpoint, checkpoint)
            matches = matches and (tta is None or (record is not None and record.tta == tta))
        else:
            matches = (record is not None and same_file(record.checkpoint, checkpoint)
                       and (tta is None or record.tta == tta))
        if matches:
            return val, test, "its run's" if folder == beside else os.path.basename(folder)
    return None


def probability_files(name: str, checkpoint: str, run_dir: str | None, prediction: Prediction
                      ) -> tuple[str, str, str]:
    """(val_probs.csv, test_probs.csv, where they come from) of `checkpoint`: saved ones that match
    `prediction` (saved_probability_files), else predicted now into an eval-<time> folder."""
    saved = saved_probability_files(checkpoint, run_dir, prediction.tta)
    if saved is not None:
        return saved[0], saved[1], f"probabilities of {saved[2]} val_probs.csv and test_probs.csv"
    with_tta = f" with TTA {prediction.tta}" if prediction.tta else ""
    if not os.path.isfile(checkpoint):
        raise UserError(f"{run_dir} has no val_probs.csv and test_probs.csv{with_tta} and no {BEST_CHECKPOINT} to "
                        f"predict them with; finish the run (running its command again resumes it), or pass one "
                        f"of its checkpoints")
    logger.info("%s: no saved probabilities of %s%s; predicting them with its own config", name, checkpoint, with_tta)
    out_dir = predict_with_checkpoint(checkpoint, prediction.tta, prediction.device, prediction.data_path)
    return (os.path.join(out_dir, "val_probs.csv"), os.path.join(out_dir, "test_probs.csv"),
            f"{PREDICTED}{with_tta} into {out_dir}")


def read_run_member(name: str, run_dir: str, prediction: Prediction) -> Member:
    """The run in `run_dir` as a member: the probabilities of its best.pth."""
    val_path, test_path, source = probability_files(name, os.path.join(run_dir, BEST_CHECKPOINT), run_dir,
                                                    prediction)
    val, test = read_probability_pair(val_path, test_path)
    return Member(name, run_dir, read_flat_config(run_dir), val, test, f"{name}: {source}")


def read_checkpoint_member(name: str, checkpoint: str, prediction: Prediction) -> Member:
    """The checkpoint file `checkpoint` as a member, with the config stored in it."""
    config = flatten(get_config(base_yaml=load_checkpoint(checkpoint)["config"]))
    val_path, test_path, source = probability_files(name, checkpoint, None, prediction)
    val, test = read_probability_pair(val_path, test_path)
    return Member(name, os.path.dirname(os.path.abspath(checkpoint)), config, val, test, f"{name}: {source}")


def read_probability_pair(val_path: str, test_path: str) -> tuple[ProbTable, ProbTable]:
    val = read_probs(val_path)
    if val.targets is None:
        raise UserError(f"{val_path} has no 'true' column, so its rows cannot be scored; it is not a run's "
                        f"val_probs.csv")
    return val, read_probs(test_path, val.class_names)


def read_flat_config(run_dir: str) -> dict[str, Any]:
    """The run's config.yaml, flat; empty when it cannot be read (the default submission keys apply)."""
    try:
        with open(os.path.join(run_dir, "config.yaml"), encoding="utf-8") as f:
            stored = load_yaml(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return flatten(stored) if isinstance(stored, dict) else {}


def read_fold_member(name: str, folder: str, fold_run_dirs: Sequence[str], prediction: Prediction) -> Member:
    """The fold runs in `folder` as one member: their out-of-fold rows and mean test probabilities,
    each fold's those of its best.pth."""
    files = [probability_files(f"{name}/{os.path.basename(run_dir)}", os.path.join(run_dir, BEST_CHECKPOINT),
                               run_dir, prediction) for run_dir in fold_run_dirs]
    result, _ = assemble_oof(fold_run_dirs, [(val, test) for val, test, _ in files])
    predicted = sum(source.startswith(PREDICTED) for _, _, source in files)
    how = (f"{predicted} of them predicted now into an eval-<time> folder beside their best.pth" if predicted
           else "as saved")
    return Member(f"{name} ({len(result.folds)} folds)", folder, result.folds[0].config, result.oof, result.test,
                  f"{name}: out-of-fold rows of {len(result.folds)} folds and their mean test probabilities ({how})")
