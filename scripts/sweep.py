"""Run a grid of configs, one run after another or several at once, and compare them.

    python scripts/sweep.py --cfg CFG --grid KEY=V1,V2,... [--grid KEY2=...] [--folds K] [--name NAME]
                            [--devices cuda:0,cuda:1,...|auto] [--parallel N]
                            [--batch-size N] [--data-path P] [--output DIR] [--device D] [--opts KEY VALUE ...]

Every combination of the grids' values is one run of main.py, tagged by its values (e.g.
lr0.001), under OUTPUT/sweeps/NAME, in the W&B group NAME. `--folds K` trains the K folds of
K-fold cross-validation: it is `--grid DATA.FOLD=0,...,K-1` with `--opts DATA.FOLDS K` (runs
fold0 ... fold<K-1>, in a sweep named e.g. lenet_digits-folds5); scripts/folds.py then assembles
their out-of-fold predictions. Every combination is checked before the first run starts.

`--devices` runs up to one run per GPU at once, each seeing only its own GPU (CUDA_VISIBLE_DEVICES);
`--devices auto` takes every visible GPU (on a machine without one, --parallel processes).
`--parallel N` runs up to N at once on the device the config names (a CPU machine, or several runs
sharing one GPU). A finished run frees its slot for the next (studies/run_pool.py). With more than
one at once, each run's console goes to console.txt in its folder, and the sweep prints a line as
each starts and ends, under a bar over the runs.

Running the same command again skips the finished runs and resumes interrupted ones; a failing run
does not stop the sweep; Ctrl-C stops every run in flight, each saving last.pth first. Running it
twice at once shares the runs out: a run whose folder the other holds is left to it, then read (or
resumed, if it did not finish) once it ends. At the end, compare.png and compare.csv
(scripts/compare.py) are written into the sweep folder, and logged to a "comparison" run of the
W&B group (unless WANDB.MODE is disabled). Sweeps keep only best.pth (SAVE.CHECKPOINTS best) unless
the config or --opts choose otherwise.
"""
from __future__ import annotations

import argparse
import itertools
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from config import flatten, get_config, get_default_config, opts_from_flags, resolve_key_path  # noqa: E402
from engine.run_dir import experiment_dir, fold_label, tag_with_fold  # noqa: E402
from engine.wandb_run import log_comparison  # noqa: E402
from studies.compare import DEFAULT_METRICS, compare_runs, markdown_table  # noqa: E402
from studies.run_pool import RunPoint, RunPool, main_argv, parse_slots, run_opts  # noqa: E402
from utils.cli import OneLineErrorParser  # noqa: E402
from utils.grid_values import split_values  # noqa: E402
from utils.errors import UserError  # noqa: E402

# What a sweep keeps of each run unless told otherwise: its best.pth, not last.pth.
SWEEP_CHECKPOINTS = "best"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser("python scripts/sweep.py",
                                description="Train every combination of config values and compare the runs.")
    parser.add_argument("--cfg", required=True, help="the YAML config every run starts from")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                        help="a config key and its values; repeat for a Cartesian product")
    parser.add_argument("--folds", type=int, metavar="K",
                        help="train the K folds of K-fold cross-validation: --grid DATA.FOLD=0,...,K-1 with "
                             "--opts DATA.FOLDS K")
    parser.add_argument("--name", help="the sweep's folder under OUTPUT/sweeps and its W&B group "
                                       "(default: the model and data set the runs train, and the grid's keys, "
                                       "e.g. lenet_digits-lr)")
    parser.add_argument("--batch-size", type=int, help="passed to main.py --batch-size")
    for flag in ("--data-path", "--output", "--device"):
        parser.add_argument(flag, help=f"passed to main.py {flag}")
    parser.add_argument("--devices", metavar="cuda:0,cuda:1,...|auto",
                        help="run up to one run per GPU at once, each seeing only its own (CUDA_VISIBLE_DEVICES); "
                             "auto: every visible GPU, or --parallel processes on a machine without one")
    parser.add_argument("--parallel", type=int, metavar="N",
                        help="run up to N runs at once, each in its own process, on the device its config names")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE pairs for every run")
    args = parser.parse_args(argv)
    if not args.grid and args.folds is None:
        parser.error("give at least one --grid KEY=V1,V2,..., or --folds K")
    return args


def with_folds(args: argparse.Namespace) -> argparse.Namespace:
    """`args` with `--folds K` spelt out as --grid DATA.FOLD=0,...,K-1 and --opts DATA.FOLDS K."""
    if args.folds is None:
        return args
    if args.folds < 2:
        raise UserError(f"--folds must be 2 or more folds; got {args.folds}")
    grid = parse_grid(args.grid)
    if "DATA.FOLD" in [key for key, _ in grid]:
        raise UserError(f"--folds {args.folds} and --grid DATA.FOLD both choose the folds to train; give one")
    chosen = run_config(args, args.opts).DATA.FOLDS
    if chosen not in (0, args.folds):
        raise UserError(f"--folds {args.folds} and --opts DATA.FOLDS {chosen} disagree; give the number of folds "
                        f"once")
    folds = ",".join(str(fold) for fold in range(args.folds))
    return argparse.Namespace(**{**vars(args), "grid": [*args.grid, f"DATA.FOLD={folds}"],
                                 "opts": [*args.opts, "DATA.FOLDS", str(args.folds)]})


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """[(canonical KEY, [values])] from "KEY=V1,V2" items; keys match in any case."""
    defaults, grid = get_default_config(), []
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values.strip() or not key.strip():
            raise UserError(f"--grid {item!r} must look like KEY=V1,V2,..., e.g. TRAIN.LR=1e-3,3e-3")
        _, key, _ = resolve_key_path(defaults, key.strip())
        if key in [existing for existing, _ in grid]:
            raise UserError(f"--grid names {key} twice; give all its values in one --grid")
        grid.append((key, split_values(values)))
    return grid


def short_names(keys: list[str]) -> dict[str, str]:
    """The shortest dotted suffix of each key that no other key shares, lower-cased: TRAIN.LR -> lr,
    MODEL.NAME -> model (a bare "name" would say nothing)."""
    names = {}
    for key in keys:
        parts = key.lower().split(".")
        if parts[-1] == "name" and len(parts) > 1:
            parts = parts[:-1]
        for length in range(1, len(parts) + 1):
            name = "_".join(parts[-length:])
            if all(other.lower().split(".")[-length:] != key.lower().split(".")[-length:]
                   for other in keys if other != key):
                break
        names[key] = name
    return names


def run_tag(combination: dict[str, str], names: dict[str, str]) -> str:
    """lr1e-3-batch_size64-model_resnet18: the run's folder name, safe for any file system."""
    parts = []
    for key, value in combination.items():
        value = re.sub(r"[^A-Za-z0-9.+_-]+", "_", value).strip("_") or "none"
        parts.append(names[key] + ("" if re.match(r"[0-9.+-]", value) else "_") + value)
    return "-".join(parts)


def main_flags(args: argparse.Namespace) -> dict[str, object]:
    """The main.py flags every run of the sweep gets."""
    return {"--batch-size": args.batch_size, "--data-path": args.data_path, "--device": args.device}


def run_config(args: argparse.Namespace, opts: list[str], output: str | None = None):
    """The config main.py builds from this sweep's flags (and `output`) followed by `opts`."""
    flags = {"DATA.BATCH_SIZE": args.batch_size, "DATA.DATA_PATH": args.data_path, "OUTPUT": output,
             "DEVICE": args.device}
    return get_config(args.cfg, opts_from_flags(flags) + list(opts))


def default_sweep_name(base, names: dict[str, str]) -> str:
    """<model>_<dataset>-<grid keys> of what the runs train (the config after --opts), e.g.
    lenet_digits-lr; a part the grid varies is left to the keys (digits-model-lr). The folds of
    DATA.FOLDS K read folds<K> (lenet_digits-folds5)."""
    trained = "_".join(value for key, value in (("MODEL.NAME", base.MODEL.NAME), ("DATA.DATASET", base.DATA.DATASET))
                       if key not in names)
    keys = [f"folds{base.DATA.FOLDS}" if key == "DATA.FOLD" and base.DATA.FOLDS else name
            for key, name in names.items()]
    return "-".join(part for part in (trained, *keys) if part)


def plan(args: argparse.Namespace) -> tuple[str, list[tuple[str, list[str], dict]]]:
    """(sweep folder, [(run folder, main.py argv, flat config)]), every run's config checked."""
    args = with_folds(args)
    grid = parse_grid(args.grid)
    names = short_names([key for key, _ in grid])
    base = run_config(args, args.opts, output=args.output)
    name = args.name or default_sweep_name(base, names)
    sweep_dir = os.path.join(base.OUTPUT, "sweeps", name)
    chose_checkpoints = (base.SAVE.CHECKPOINTS != get_default_config().SAVE.CHECKPOINTS
                         or any(key == "SAVE.CHECKPOINTS" for key, _ in grid))
    checkpoints = [] if chose_checkpoints else ["SAVE.CHECKPOINTS", SWEEP_CHECKPOINTS]
    runs = []
    for values in itertools.product(*(values for _, values in grid)):
        combination = dict(zip((key for key, _ in grid), values))
        tag = run_tag(combination, names)
        opts = run_opts(name, [*checkpoints, *args.opts], combination, sweep_dir, tag)
        argv, cfg = main_argv(args.cfg, main_flags(args), opts), run_config(args, opts)
        # main.py names a fold run's folder for its fold, unless the tag already does (fold2).
        folder = tag_with_fold(tag, fold_label(cfg.DATA.FOLDS, cfg.DATA.FOLD))
        runs.append((os.path.join(experiment_dir(sweep_dir, cfg.MODEL.NAME, cfg.DATA.DATASET), folder), argv,
                     flatten(cfg)))
    folders = [folder for folder, _, _ in runs]
    if len(set(folders)) < len(folders):
        raise UserError("two grid values give the same run folder name; make the values differ in their text")
    return sweep_dir, runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        sweep_dir, runs = plan(args)
        slots = parse_slots(args.devices, args.parallel)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    points = [RunPoint(f"[{number}/{len(runs)}]", run_dir, run_argv, config)
              for number, (run_dir, run_argv, config) in enumerate(runs, start=1)]
    at_once = f", up to {len(slots)} at once ({', '.join(slot.name for slot in slots)})" if len(slots) > 1 else ""
    print(f"sweep {sweep_dir}: {len(runs)} runs{at_once}", flush=True)
    try:
        records = RunPool(slots).run(points)
    except KeyboardInterrupt:  # every run in flight saved its place first
        print("sweep interrupted; run the same command again to go on where it stopped", file=sys.stderr)
        return 130
    out = os.path.join(sweep_dir, "compare.png")
    table = compare_runs([records[index] for index in sorted(records)], DEFAULT_METRICS, out,
                         name=os.path.basename(sweep_dir))
    print(markdown_table(table))
    print(f"wrote {out} and {os.path.splitext(out)[0]}.csv")
    settings = runs[0][2]  # every run of the sweep shares its W&B settings, and its group is the sweep's
    log_comparison(settings["WANDB.MODE"], settings["WANDB.PROJECT"], settings["WANDB.ENTITY"],
                   settings["WANDB.GROUP"], {"compare": out}, table, sweep_dir)
    failed = [record for record in records.values() if record.status != "finished"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
