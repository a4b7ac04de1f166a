"""Search hyperparameters with Optuna: each trial an ordinary run of main.py.

    python scripts/search.py --cfg CFG --space KEY=DIST [--space ...] --trials N [--metric val_acc1]
                             [--direction maximize|minimize] [--sampler tpe|random|grid]
                             [--pruner median|hyperband|none] [--storage URL] [--name NAME] [--seed S]
                             [--devices cuda:0,...|auto] [--parallel N] [--report]
                             [--batch-size N] [--data-path P] [--output DIR] [--device D] [--opts KEY VALUE ...]

DIST is loguniform:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH or choice:V1,V2,... (studies/
search_space.py); every key and value is checked before the first trial. Trials are run folders
OUTPUT/searches/NAME/<model>_<data>/trial<N>, in the W&B group NAME, keeping best.pth. The study
lives in OUTPUT/searches/NAME/study.db (SQLite), or in --storage (any URL of Optuna's RDB storage,
e.g. postgresql://..., for workers on several machines: scripts/slurm_search.sh). A second call
continues the study up to --trials, resuming the trials Ctrl-C stopped. The pruner stops a trial
after an epoch whose val metric is hopeless next to the other trials' at that epoch; the trial
is PRUNED in the study and "pruned" in its summary.json. At the end (or alone, with --report):
best_config.yaml, compare.png/.csv, Optuna's optimization_history.png, param_importances.png and
parallel_coordinate.png, and top_trials.md (studies/search_report.py).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from config import get_config, get_default_config, opts_from_flags  # noqa: E402
from evaluation.selection import LOWER_IS_BETTER, SELECT_METRICS  # noqa: E402
from studies.compare import markdown_table  # noqa: E402
from studies.run_pool import parse_slots  # noqa: E402
from studies.search import PRUNERS, SAMPLERS, Search, SearchPlan, build_pruner, build_sampler, open_study  # noqa: E402
from studies.search_report import write_search_report  # noqa: E402
from studies.search_space import parse_space  # noqa: E402
from utils.cli import OneLineErrorParser, positive_int  # noqa: E402
from utils.errors import UserError, user_error_line  # noqa: E402
from utils.logger import create_logger  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser("python scripts/search.py",
                                description="Search config values with Optuna, each trial a run of main.py.")
    parser.add_argument("--cfg", required=True, help="the YAML config every trial starts from")
    parser.add_argument("--space", action="append", default=[], metavar="KEY=DIST",
                        help="a key and its distribution: loguniform:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH or "
                             "choice:V1,V2,...; repeat for more keys")
    parser.add_argument("--trials", type=positive_int, required=True,
                        help="trials the study holds when the search ends (a second call continues up to it)")
    parser.add_argument("--metric", default="val_acc1", choices=SELECT_METRICS,
                        help="what a trial scores: its best epoch's value (default val_acc1)")
    parser.add_argument("--direction", choices=("maximize", "minimize"),
                        help="default: minimize for val_log_loss, val_ece and verify_eer, else maximize")
    parser.add_argument("--sampler", default="tpe", choices=SAMPLERS, help="how trials are drawn (default tpe)")
    parser.add_argument("--pruner", default="median", choices=PRUNERS,
                        help="what stops hopeless trials after an epoch (default median)")
    parser.add_argument("--storage", help="the study's database URL (default: sqlite:///<search folder>/study.db)")
    parser.add_argument("--name", help="the search's folder under OUTPUT/searches, its study and W&B group "
                                       "(default: <model>_<data>-search)")
    parser.add_argument("--seed", type=int, help="the sampler's seed (default: the config's SEED)")
    parser.add_argument("--devices", metavar="cuda:0,cuda:1,...|auto", help="one trial per GPU at once, as sweep.py")
    parser.add_argument("--parallel", type=int, metavar="N", help="up to N trials at once, as sweep.py")
    parser.add_argument("--report", action="store_true", help="write the report of the study as it stands; train nothing")
    parser.add_argument("--batch-size", type=int, help="passed to main.py --batch-size")
    for flag in ("--data-path", "--output", "--device"):
        parser.add_argument(flag, help=f"passed to main.py {flag}")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE pairs for every trial")
    return parser.parse_args(argv)


def plan_search(args: argparse.Namespace) -> tuple[SearchPlan, object]:
    """(the plan every trial shares, the base config), every key of --space and --metric checked."""
    flags = {"DATA.BATCH_SIZE": args.batch_size, "DATA.DATA_PATH": args.data_path, "OUTPUT": args.output,
             "DEVICE": args.device}
    base_opts = opts_from_flags(flags) + list(args.opts)
    base = get_config(args.cfg, base_opts)
    dimensions = parse_space(args.space, lambda extra: get_config(args.cfg, base_opts + extra))
    get_config(args.cfg, base_opts + ["TEST.SELECT_METRIC", args.metric])  # a metric the runs do not score
    direction = args.direction or ("minimize" if args.metric in LOWER_IS_BETTER else "maximize")
    name = args.name or f"{base.MODEL.NAME}_{base.DATA.DATASET}-search"
    search_dir = os.path.join(base.OUTPUT, "searches", name)
    keys = [dimension.key for dimension in dimensions]
    chose_checkpoints = base.SAVE.CHECKPOINTS != get_default_config().SAVE.CHECKPOINTS or "SAVE.CHECKPOINTS" in keys
    opts = [*([] if chose_checkpoints else ["SAVE.CHECKPOINTS", "best"]), *args.opts]
    plan = SearchPlan(args.cfg, {"--batch-size": args.batch_size, "--data-path": args.data_path,
                                 "--device": args.device}, opts, name, search_dir, base.MODEL.NAME,
                      base.DATA.DATASET, args.metric, direction, dimensions)
    return plan, base


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    create_logger(None)
    try:
        plan, base = plan_search(args)
        slots = parse_slots(args.devices, args.parallel)
        sampler = build_sampler(args.sampler, plan.dimensions, args.seed if args.seed is not None else base.SEED)
        pruner = build_pruner(args.pruner, base.TRAIN.EPOCHS)
        os.makedirs(plan.search_dir, exist_ok=True)
        storage = args.storage or f"sqlite:///{os.path.abspath(os.path.join(plan.search_dir, 'study.db'))}"
        study = open_study(plan, storage, sampler, pruner, args.space)
    except UserError as e:
        print(f"error: {user_error_line(e)}", file=sys.stderr)
        return 2
    if not args.report:
        print(f"search {plan.search_dir}: {len(study.trials)} of {args.trials} trials in {storage}", flush=True)
        try:
            Search(study, plan, args.trials, slots).run()
        except KeyboardInterrupt:
            print("search interrupted; run the same command again to go on where it stopped", file=sys.stderr)
            return 130
    table, written, skipped = write_search_report(study, plan)
    print(markdown_table(table.head(10)))
    for line in skipped:
        print(line)
    print(f"wrote {', '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
