"""Where a run's files go, which run `--resume auto` or `--resume PATH` continues (or forks), and
the files every run folder starts with (config.yaml, log.txt, classes.json)."""
from __future__ import annotations

import json
import logging
import os
import time

import torch

from data import Loaders
from engine.run_lock import live_holder
from engine.summary import SUMMARY_FILE, read_summary
from utils.errors import UserError
from utils.logger import create_logger

LAST_CHECKPOINT = "last.pth"
BEST_CHECKPOINT = "best.pth"
# Files that mark a folder as a run's.
RUN_FOLDER_FILES = ("config.yaml", SUMMARY_FILE)


def experiment_dir(output: str, model_name: str, dataset: str) -> str:
    """OUTPUT/<model>_<dataset>: the parent of every run of one model on one data set."""
    return os.path.join(output, f"{model_name}_{dataset}")


def is_run_folder(folder: str) -> bool:
    """Whether `folder` holds a run: every run writes its config.yaml when it opens its folder (a
    checkpoint alone, copied somewhere, does not make a run folder)."""
    return any(os.path.isfile(os.path.join(folder, name)) for name in RUN_FOLDER_FILES)


def latest_run_with_checkpoint(parent: str, fold: str = "") -> str | None:
    """The most recently written run folder under `parent` that holds a last.pth; with `fold`
    ("fold2"), only the folders whose name carries that fold (tag_with_fold)."""
    if not os.path.isdir(parent):
        return None
    candidates = [os.path.join(parent, name) for name in os.listdir(parent)
                  if os.path.isfile(os.path.join(parent, name, LAST_CHECKPOINT))
                  and tag_with_fold(name, fold) == name]
    if not candidates:
        return None
    return max(candidates, key=lambda run: os.path.getmtime(os.path.join(run, LAST_CHECKPOINT)))


def runs_under(output: str) -> list[str]:
    """Every run folder under the output root, as <model>_<dataset>/<run>, sorted."""
    if not os.path.isdir(output):
        return []
    return sorted(os.path.join(experiment, run) for experiment in os.listdir(output)
                  if os.path.isdir(os.path.join(output, experiment))
                  for run in os.listdir(os.path.join(output, experiment))
                  if is_run_folder(os.path.join(output, experiment, run)))


def describe_runs(output: str, limit: int = 8) -> str:
    """The runs under `output` for an error line: "a/b, c/d, ... (12 in all)", or "none"."""
    runs = runs_under(output)
    listed = ", ".join(runs[:limit]) + (f", ... ({len(runs)} in all)" if len(runs) > limit else "")
    return listed or "none"


def fold_label(folds: int, fold: int) -> str:
    """"fold2" for fold 2 of DATA.FOLDS folds; "" for a run that trains on no folds."""
    return f"fold{fold}" if folds else ""


def tag_with_fold(tag: str, fold: str) -> str:
    """The folder name of the run tagged `tag` in fold `fold` ("fold2"): tag-fold2, unless the tag
    already names the fold as one of its dash-separated parts (a sweep's fold2 or lr0.01-fold2),
    so that giving the folder's own name as --tag names the same folder. `tag` itself when `fold`
    or `tag` is ""."""
    if not fold or not tag or fold in tag.split("-"):
        return tag
    return f"{tag}-{fold}"


def plan_run_dir(output: str, parent: str, tag: str, resume: str, restarted: bool = False,
                 fold: str = "") -> tuple[str, str]:
    """Choose the run folder (without creating it) and return (run_dir, checkpoint to start from or "").

    `parent` is this command's experiment folder, OUTPUT/<model>_<dataset>; a fold run's folder
    (`fold`, e.g. "fold2", from fold_label) is named for its fold (tag_with_fold).
    - resume "auto": continue the run tagged `tag` (run_to_continue).
    - resume PATH: continue the run folder PATH lies in, or fork (continue_or_fork); a fork's
      run_dir is "", since its folder is named for the model and data of the checkpoint's config.
    - otherwise a new folder (new_run_dir).
    `restarted` says that torchrun restarted the group, which resumes "auto" by itself.
    """
    tag = tag_with_fold(tag, fold)
    if resume == "auto":
        return run_to_continue(output, parent, tag, restarted, fold)
    if resume:
        return continue_or_fork(resume)
    return new_run_dir(parent, tag, fold), ""


def run_to_continue(output: str, parent: str, tag: str, restarted: bool, fold: str = "") -> tuple[str, str]:
    """(run folder, its last.pth or "") for `--resume auto`.

    With a tag, the one run of that tag in any experiment folder under `output`, whatever model
    and data this command's config names (the run keeps its own): several are refused, and none
    is an error rather than a new run. Without a tag, the newest run with a last.pth in `parent`
    (of fold `fold`, when given).
    A run with no checkpoint yet starts again from scratch in its folder, unless it finished (its
    SAVE.CHECKPOINTS kept no last.pth), which is refused. A group restarted by torchrun
    (`restarted`) repeats its first command, so it looks in `parent` only, and starts there when
    its first attempt stopped before the folder was made.
    """
    if restarted:
        run_dir = (os.path.join(parent, tag) if tag
                   else latest_run_with_checkpoint(parent, fold) or new_timestamped_dir(parent, suffix=fold))
    elif tag:
        run_dir = the_run_tagged(output, tag)
    else:
        run_dir = latest_run_with_checkpoint(parent, fold)
        if run_dir is None:
            raise UserError(f"--resume auto found no run with a {LAST_CHECKPOINT} under {parent}; runs under "
                            f"{output}: {describe_runs(output)}. Name the run with --tag, or pass --resume "
                            f"RUN/{LAST_CHECKPOINT}")
    last = os.path.join(run_dir, LAST_CHECKPOINT)
    if os.path.isfile(last):
        return run_dir, last
    if (read_summary(run_dir) or {}).get("status") == "finished":
        raise UserError(f"run {run_dir} has finished and kept no {LAST_CHECKPOINT} to continue from; start "
                        f"another with a different --tag")
    if os.path.abspath(os.path.dirname(run_dir)) != os.path.abspath(parent):
        # Starting it again needs its model and data, which only its own command line gives.
        raise UserError(f"run {run_dir} stopped before its first {LAST_CHECKPOINT}, so there is nothing to "
                        f"continue; start it again with --resume auto and the --cfg and --opts it was started "
                        f"with (its config.yaml)")
    return run_dir, ""


def the_run_tagged(output: str, tag: str) -> str:
    """The run folder OUTPUT/<model>_<dataset>/`tag`, which must exist in exactly one experiment folder."""
    matches = [os.path.join(output, run) for run in runs_under(output) if os.path.basename(run) == tag]
    if not matches:
        raise UserError(f"no run tagged {tag} under {output}; runs there: {describe_runs(output)}. Check --tag "
                        f"and --output, or start a new run without --resume")
    if len(matches) > 1:
        raise UserError(f"runs tagged {tag} are under several experiment folders: {', '.join(matches)}; "
                        f"continue one with --resume FOLDER/{LAST_CHECKPOINT}")
    return matches[0]


def continue_or_fork(path: str) -> tuple[str, str]:
    """(run folder, `path`) for `--resume PATH`: the last.pth of a run folder continues that run,
    whatever --tag says; a checkpoint outside any run folder (a copied file) starts a new run,
    whose folder is "" here. Another checkpoint inside a run folder (best.pth) is refused:
    continuing from it would overwrite the epochs the run trained after it."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint not found: {path}; pass a {LAST_CHECKPOINT} or {BEST_CHECKPOINT} written "
                        f"by main.py")
    folder = os.path.dirname(os.path.abspath(path))
    if not is_run_folder(folder):
        return "", path
    if os.path.basename(path) != LAST_CHECKPOINT:
        last = os.path.join(os.path.dirname(path), LAST_CHECKPOINT)
        raise UserError(f"{path} lies in run folder {folder}, and only its {LAST_CHECKPOINT} continues that run "
                        f"(continuing from {os.path.basename(path)} would overwrite the epochs after it); "
                        f"continue with --resume {last}, fork by copying {path} out of the run folder and "
                        f"resuming the copy, or fine-tune with --opts MODEL.PRETRAINED {path}")
    return folder, path


def new_run_dir(parent: str, tag: str, fold: str = "") -> str:
    """parent/`tag`, or a timestamped folder without a tag, either named for fold `fold` when
    given (tag_with_fold; a timestamp gets -fold2). A `tag` folder that already holds a run
    (checkpoints or a summary.json) is refused, so that re-running never overwrites a previous run."""
    if not tag:
        return new_timestamped_dir(parent, suffix=fold)
    run_dir = os.path.join(parent, tag_with_fold(tag, fold))
    holder = live_holder(run_dir)
    if holder is not None:
        raise UserError(f"run folder {run_dir} is in use by {holder}; wait for that run to end, "
                        f"or start another with a different --tag")
    if any(os.path.isfile(os.path.join(run_dir, name)) for name in (LAST_CHECKPOINT, BEST_CHECKPOINT, SUMMARY_FILE)):
        raise UserError(f"run folder {run_dir} already holds a run; continue it with --resume auto "
                        f"or start another with a different --tag")
    return run_dir


def new_timestamped_dir(parent: str, prefix: str = "", suffix: str = "") -> str:
    """parent/<prefix>YYYYmmdd-HHMMSS[-<suffix>] (not created), with a -2, -3 ... after the time
    if that name is taken (the suffix stays last)."""
    stamp, end = prefix + time.strftime("%Y%m%d-%H%M%S"), f"-{suffix}" if suffix else ""
    run_dir, count = os.path.join(parent, stamp + end), 1
    while os.path.exists(run_dir):
        count += 1
        run_dir = os.path.join(parent, f"{stamp}-{count}{end}")
    return run_dir


def open_run_dir(cfg, run_dir: str, device: torch.device) -> logging.Logger:
    """Create the run folder with its config.yaml and log.txt; returns the logger, which has said
    where the run lives and what of the config it cannot honour."""
    os.makedirs(run_dir, exist_ok=True)
    logger = create_logger(run_dir)
    with open(os.path.join(run_dir, "config.yaml"), "w", encoding="utf-8") as f:
        f.write(cfg.dump())
    logger.info("run folder: %s", run_dir)
    if device.type != "cuda":
        logger.info("running on %s: TRAIN.MIXED_PRECISION, CHANNELS_LAST, COMPILE and CUDNN_BENCHMARK "
                    "apply on CUDA only, so this run is plain fp32", device)
    if cfg.TRAIN.WARMUP_EPOCHS and 2 * cfg.TRAIN.WARMUP_EPOCHS >= cfg.TRAIN.EPOCHS:
        logger.warning("warning: TRAIN.WARMUP_EPOCHS is %d of %d epochs, so the LR schedule barely starts before "
                       "the run ends; lower TRAIN.WARMUP_EPOCHS for short runs", cfg.TRAIN.WARMUP_EPOCHS,
                       cfg.TRAIN.EPOCHS)
    return logger


def record_data(logger, run_dir: str | None, loaders: Loaders) -> None:
    """Log what opening the data noted (images left out, the cache), and write classes.json into
    `run_dir` (None on torchrun's ranks other than 0): the class names in label order, so that a
    label index can be read back."""
    for note in loaders.notes:
        logger.info(note)
    if run_dir is None:
        return
    tmp_path = os.path.join(run_dir, f"classes.json.tmp-{os.getpid()}")
    with open(tmp_path, "w", encoding="utf-8") as f:
        json.dump(loaders.class_names, f, ensure_ascii=False, indent=0)
    os.replace(tmp_path, os.path.join(run_dir, "classes.json"))


def study_dir(cfg, kind: str) -> str:
    """A fresh OUTPUT/<model>_<dataset>/<kind>-<time> folder for a study that is not a run."""
    folder = new_timestamped_dir(experiment_dir(cfg.OUTPUT, cfg.MODEL.NAME, cfg.DATA.DATASET), prefix=f"{kind}-")
    os.makedirs(folder)
    return folder


def log_outputs(logger, folder: str) -> None:
    """The last line of every mode: where its files are (hidden files and W&B's folder left out)."""
    names = sorted(name for name in os.listdir(folder) if not name.startswith(".") and name != "wandb")
    logger.info("outputs in %s: %s", folder, ", ".join(names))
