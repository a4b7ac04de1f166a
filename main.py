"""Train, validate and predict: `python main.py --cfg configs/X.yaml [flags] [--opts KEY VALUE ...]`.

The recipe, top to bottom (`train`): build the parts, restore or start, then every epoch train,
score on val, checkpoint and track; finish with the val report and the test predictions of the
best checkpoint. The machinery lives in engine/ (the run), evaluation/ (scores and reports) and
studies/ (what probes a model); README's "Code map" draws the path of one step through them.

Other modes: `--eval` / `--predict` / `--export-embeddings` from any checkpoint, `--throughput`
(images/s against batch size until out of memory), `--lr-find` (LR range test) and `--list-models`.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass

import torch
from yacs.config import CfgNode

from config import get_config, opts_from_flags
from engine.build import (build_training_parts, build_weight_averages, describe_run, loop_settings, seed_everything,
                          start_tracking)
from engine.checkpoint import RunCheckpoints, load_model_weights, remove_resume_checkpoint
from engine.epoch_scores import epoch_line, score_epoch, score_metrics, write_roc
from engine.finish import finish_run
from engine.from_checkpoint import EXPORT_SPLITS, run_from_checkpoint
from engine.launch import World, close_world, device_for_rank, init_world, launched_by_torchrun
from engine.loop import LoopSettings, begin_epoch, train_one_epoch
from engine.parts import TrainingParts
from engine.preemption import Preempted, StopRequest, signal_name
from engine.resume import RunPlan, StartingPoint, plan_run, restore_training_state
from engine.run_dir import BEST_CHECKPOINT, LAST_CHECKPOINT, log_outputs, open_run_dir, record_data
from engine.run_lock import claimed_by_main
from engine.tracking import RunTracker
from engine.wandb_run import WandbRun
from engine.weight_averaging import StochasticWeightAveraging
from evaluation.submission import SampleSubmission, read_sample_submission
from optimizer import build_scheduler
from studies.lr_finder import run_lr_find
from studies.model_table import DEFAULT_IMG_SIZE, print_model_table
from studies.throughput import CPU_MAX_BATCH, CUDA_MAX_BATCH, run_throughput_scan
from utils.cli import OneLineErrorParser, positive_int
from utils.device import peak_memory, resolve_device
from utils.distributed import is_main_process
from utils.errors import UserError, user_error_line
from utils.logger import create_logger


def batch_size_list(text: str) -> list[int]:
    """"1,2,4,8" -> [1, 2, 4, 8] (sorted, without repeats); every item a positive integer."""
    items = [item.strip() for item in text.split(",")]
    bad = [item for item in items if not item.isdigit() or int(item) < 1]
    if bad:
        raise argparse.ArgumentTypeError(f"takes positive whole numbers separated by commas, e.g. 1,2,4,8; "
                                         f"{bad[0]!r} is not one")
    return sorted({int(item) for item in items})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineErrorParser("python main.py", description="Train an image classifier from a YAML config.")
    parser.add_argument("--cfg", help="YAML config file (defaults only when omitted; --eval and --predict "
                                      "take the checkpoint's own config when omitted)")
    parser.add_argument("--batch-size", type=int, help="DATA.BATCH_SIZE")
    parser.add_argument("--data-path", help="DATA.DATA_PATH")
    parser.add_argument("--output", help="OUTPUT: root folder for runs")
    parser.add_argument("--tag", help="TAG: name of the run folder")
    parser.add_argument("--resume", help="MODEL.RESUME: 'auto' continues the run tagged --tag; a run's last.pth continues "
                                         "that run; a file outside every run folder forks a new one")
    parser.add_argument("--eval", action="store_true",
                        help="EVAL_MODE: evaluate the --resume checkpoint on the val split; writes a report "
                             "and val_probs.csv into an eval-<time> folder beside it")
    parser.add_argument("--predict", action="store_true",
                        help="write submission.csv and test_probs.csv from the --resume checkpoint into an "
                             "eval-<time> folder beside it")
    parser.add_argument("--sample-submission", metavar="FILE",
                        help="the competition's sample_submission.csv: submission.csv (of --predict, or of the run "
                             "trained) must match its header, ids and order; one that does not is kept as "
                             "submission.csv.rejected, and the command fails naming the first difference")
    parser.add_argument("--export-embeddings", metavar="SPLIT", choices=EXPORT_SPLITS,
                        help="write the L2-normalised embeddings of the --resume checkpoint for a split "
                             f"({', '.join(EXPORT_SPLITS)}), with their ids and labels, to embeddings_SPLIT.h5 in an "
                             "eval-<time> folder beside it")
    parser.add_argument("--device", help="DEVICE: auto, cpu, cuda or cuda:N")
    parser.add_argument("--throughput", action="store_true",
                        help="time training steps at growing batch sizes until out of memory; writes "
                             "throughput.csv and throughput.png")
    parser.add_argument("--batch-sizes", type=batch_size_list,
                        help="batch sizes for --throughput, e.g. 1,2,4 (default: 1, 2, 4, ... until out of memory)")
    parser.add_argument("--max-batch", type=positive_int,
                        help=f"largest batch of the default --throughput scan (default {CPU_MAX_BATCH} on CPU, "
                             f"{CUDA_MAX_BATCH} on CUDA)")
    parser.add_argument("--lr-find", action="store_true",
                        help="LR range test: writes lr_find.png and prints the suggested TRAIN.LR")
    parser.add_argument("--list-models", action="store_true",
                        help="print every model with its parameters and MACs, then exit: built as --cfg and --opts "
                             "build the model (their classes, image size, stem and width), or without them at "
                             "--img-size and 1000 classes")
    parser.add_argument("--img-size", type=positive_int,
                        help=f"input size for --list-models (default {DEFAULT_IMG_SIZE}, or with --cfg/--opts "
                             f"the config's DATA.IMG_SIZE)")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="KEY VALUE pairs applied last, e.g. --opts TRAIN.LR 1e-3 TRAIN.EPOCHS 10")
    args = parser.parse_args(argv)
    modes = [name for name, chosen in (("--eval/--predict/--export-embeddings",
                                        args.eval or args.predict or args.export_embeddings),
                                       ("--throughput", args.throughput), ("--lr-find", args.lr_find)) if chosen]
    if len(modes) > 1:
        parser.error(f"{' and '.join(modes)} cannot be combined; run them one at a time")
    if args.sample_submission and not args.predict and (modes or args.list_models):
        parser.error("--sample-submission checks the submission.csv of --predict or of a training run; add --predict, "
                     "or leave it out")
    if not args.throughput and (args.batch_sizes or args.max_batch):
        parser.error("--batch-sizes and --max-batch belong to --throughput; add it, or leave them out")
    return args


def command_line_opts(args: argparse.Namespace, over_checkpoint: bool = False) -> list[str]:
    """The flags as KEY VALUE pairs, then the user's --opts, which so win. Laid `over_checkpoint`
    (a checkpoint's stored config), DEVICE is auto unless --device says otherwise, since the
    machine that wrote it may have had other devices."""
    misplaced = [item for item in args.opts[0::2] if item.startswith("--")]
    if misplaced:
        raise UserError(f"{misplaced[0]} comes after --opts, which reads everything after it as KEY VALUE "
                        f"pairs; put flags before --opts")
    flags = {"DATA.BATCH_SIZE": args.batch_size, "DATA.DATA_PATH": args.data_path, "OUTPUT": args.output,
             "TAG": args.tag, "MODEL.RESUME": args.resume,
             "DEVICE": args.device or ("auto" if over_checkpoint else None), "EVAL_MODE": True if args.eval else None}
    return opts_from_flags(flags) + list(args.opts)


def config_from_args(args: argparse.Namespace):
    """The run's config: defaults < --cfg's file (and its BASE chain) < flags < --opts."""
    return get_config(args.cfg, command_line_opts(args))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.list_models:
            size_opts = ["DATA.IMG_SIZE", str(args.img_size)] if args.img_size else []
            from_config = args.cfg is not None or bool(args.opts)
            print_model_table(get_config(args.cfg, size_opts + command_line_opts(args)) if from_config else None,
                              args.img_size)
            return 0
        cfg = config_from_args(args)
        # Read first, so that a missing or unreadable file stops the command before it trains.
        sample = read_sample_submission(args.sample_submission) if args.sample_submission else None
        if cfg.EVAL_MODE or args.predict or args.export_embeddings:
            run_from_checkpoint(cfg, args.cfg, command_line_opts(args, over_checkpoint=True),
                                evaluate_val=cfg.EVAL_MODE, write_predictions=args.predict,
                                export_split=args.export_embeddings, sample=sample)
        elif args.throughput:
            run_throughput_scan(cfg, resolve_device(cfg.DEVICE), args.batch_sizes, args.max_batch)
        elif args.lr_find:
            run_lr_find(cfg, resolve_device(cfg.DEVICE))
        else:
            run_training(args, cfg, sample)
    except UserError as e:
        if is_main_process():
            print(f"error: {user_error_line(e)}", file=sys.stderr)
        return 2
    except Preempted as e:
        if is_main_process():
            print(e, file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    finally:
        close_world()
    return 0


def run_training(args: argparse.Namespace, cfg, sample: SampleSubmission | None = None) -> str:
    """Training, alone or as one rank of a torchrun group."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0")) if launched_by_torchrun() else 0
    device = resolve_device(device_for_rank(cfg.DEVICE, local_rank) if launched_by_torchrun() else cfg.DEVICE)
    world = init_world(device)
    plan = plan_run(cfg, args.cfg, command_line_opts(args, over_checkpoint=True))
    if plan.cfg.DEVICE != cfg.DEVICE:  # resuming on another device (DEVICE may change on resume)
        device = resolve_device(device_for_rank(plan.cfg.DEVICE, local_rank) if world.distributed
                                else plan.cfg.DEVICE)
    return train(plan, device, world, sample)


@dataclass
class Run:
    """What every epoch of a training run works with."""
    cfg: CfgNode
    parts: TrainingParts
    scheduler: object  # optimizer.build_scheduler's
    swa: StochasticWeightAveraging | None
    loop: LoopSettings
    tracker: RunTracker
    wandb_run: WandbRun
    checkpoints: RunCheckpoints
    logger: logging.Logger
    resume_hint: str  # the command that continues the run, for the line a stop prints


def train(plan: RunPlan, device: torch.device, world: World = World(), sample: SampleSubmission | None = None) -> str:
    """The full run; returns its folder. Under torchrun every rank trains, rank 0 writes, and rank 0
    holds the folder's claim (engine/run_lock.py) from before its first file to after its last.
    submission.csv is checked against `sample` (--sample-submission) when given."""
    with claimed_by_main(plan.run_dir, world.is_main) as claim_notes:
        return train_in_claimed_folder(plan, device, world, claim_notes, sample)


def train_in_claimed_folder(plan: RunPlan, device: torch.device, world: World, claim_notes: list[str],
                            sample: SampleSubmission | None = None) -> str:
    """train()'s recipe, once the run folder is this run's alone."""
    cfg, run_dir = plan.cfg, plan.run_dir
    seed_everything(cfg.SEED)
    parts = build_training_parts(cfg, device, world)
    if plan.checkpoint is not None:
        load_model_weights(parts.model, plan.checkpoint, plan.resume_path, cfg,
                           class_names=parts.loaders.class_names)
    logger = open_run_dir(cfg, run_dir, device) if world.is_main else create_logger(None, quiet=True)
    record_data(logger, run_dir if world.is_main else None, parts.loaders)
    for note in [*claim_notes, *plan.notes]:
        logger.info(note)
    loop, steps_per_epoch = loop_settings(cfg, len(parts.loaders.train_loader))
    scheduler = build_scheduler(cfg, parts.optimizer, steps_per_epoch)
    start = restore_training_state(plan, parts, scheduler, steps_per_epoch, logger)
    swa = build_weight_averages(cfg, parts, plan.checkpoint)
    logger.info(describe_run(cfg, parts, steps_per_epoch, device, world))
    wandb_run, tracker = start_tracking(cfg, run_dir, parts, start, loop, world)
    checkpoints = RunCheckpoints(cfg, run_dir if world.is_main else None, parts, scheduler, swa, start.best,
                                 wandb_run.run_id)
    run = Run(cfg, parts, scheduler, swa, loop, tracker, wandb_run, checkpoints, logger,
              f"python main.py --cfg ... --tag {os.path.basename(run_dir)} --resume auto")
    with tracker.recording_interruptions(run.resume_hint), StopRequest() as stop:
        for epoch in range(start.epoch, cfg.TRAIN.EPOCHS):
            if not train_and_score_epoch(run, epoch, start, stop):
                break
        best = start.best
        averages = {"model": None, "ema": parts.ema, "swa": swa.average if swa is not None else None}
        finish_run(cfg, parts, run_dir if world.is_main else None, wandb_run, best, logger,
                   (best.last_epoch_weights, averages[best.last_epoch_weights]), sample)
    tracker.set_status("finished")
    if world.is_main:
        remove_resume_checkpoint(run_dir, cfg.SAVE.CHECKPOINTS)
        log_outputs(logger, run_dir)
    return run_dir


def train_and_score_epoch(run: Run, epoch: int, start: StartingPoint, stop: StopRequest) -> bool:
    """One epoch: train, score on val, track, checkpoint. Returns whether training goes on (False
    after an early stop). A stop request (SIGTERM, SIGINT, SIGUSR1) saves last.pth where the
    epoch stands and raises Preempted. `start.progress` says where the epoch begins."""
    cfg, parts, swa, best = run.cfg, run.parts, run.swa, start.best
    swa_epoch = begin_epoch(parts, swa, epoch, start.progress.batches_done * cfg.DATA.BATCH_SIZE)
    lr = start.progress.lr if start.progress.lr is not None else parts.optimizer.param_groups[0]["lr"]
    train_stats, start.progress = train_one_epoch(parts, None if swa_epoch else run.scheduler,
                                                  parts.loaders.train_loader, epoch, run.loop, run.logger,
                                                  run.tracker.log_steps, stop, start.progress)
    if train_stats is None:
        start.progress.lr = lr
        run.checkpoints.save(LAST_CHECKPOINT, epoch - 1, start.progress)
        raise Preempted(stop.signum, f"stopped by {signal_name(stop.signum)} after batch "
                        f"{start.progress.batches_done} of {run.loop.num_batches} in epoch {epoch + 1}; last.pth "
                        f"holds that point; continue with: {run.resume_hint}")
    if swa_epoch:
        swa.end_epoch(epoch, parts.model)
    patience = cfg.TRAIN.EARLY_STOP_PATIENCE
    val_tta = parts.tta if cfg.TEST.TTA_VAL else "none"
    scores = score_epoch(parts, swa, run.loop, epoch, val_tta, epoch + 1 == cfg.TRAIN.EPOCHS, best, patience)
    is_best = best.record(scores)
    if hasattr(run.scheduler, "step_epoch") and not swa_epoch:  # plateau: the val metrics decide
        run.scheduler.step_epoch({"val_loss": scores["model"]["loss"], "val_acc1": scores["model"]["acc1"]})
    run.tracker.log_epoch({"epoch": epoch, "lr": lr, **train_stats, **score_metrics(scores),
                           **peak_memory(parts.setup.device)})
    if run.checkpoints.run_dir:
        run.wandb_run.log_images({"roc": write_roc(run.checkpoints.run_dir, scores, run.tracker.title)}, epoch)
    run.logger.info(epoch_line(epoch, cfg.TRAIN.EPOCHS, train_stats, scores, best, parts.mix is not None))
    if is_best and cfg.SAVE.CHECKPOINTS in ("best_and_last", "best"):
        run.checkpoints.save(BEST_CHECKPOINT, epoch)
    stop_early = 0 < patience <= best.epochs_since
    if (epoch + 1) % cfg.SAVE_FREQ == 0 or epoch + 1 == cfg.TRAIN.EPOCHS or stop_early:
        run.checkpoints.save(LAST_CHECKPOINT, epoch)
    if stop_early:
        run.logger.info("early stop: %s has not improved for %d epochs (TRAIN.EARLY_STOP_PATIENCE)",
                        best.label, best.epochs_since)
    return not stop_early


if __name__ == "__main__":
    sys.exit(main())
