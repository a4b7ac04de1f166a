"""A hyperparameter search with Optuna: each trial an ordinary run of main.py, drawn by a sampler
(TPE, random, grid), pruned after an epoch when a pruner (median, Hyperband) finds it hopeless, and
kept in a study that a database stores (SQLite in the search folder by default; any URL of
Optuna's RDB storage, e.g. PostgreSQL, for workers on several machines).

The runs know nothing of Optuna. The search reads each run's metrics.jsonl as it grows, reports
every epoch's val metric to the trial, and stops a pruned run with SIGTERM (it saves and exits, as
for a preemption); the trial is then PRUNED in the study, and the run's summary.json says
"pruned". A search stopped by Ctrl-C leaves its trials in flight RUNNING, with their last.pth: the
next call resumes them (a run folder whose holder is alive is another worker's, and left to it),
then asks for new trials until the study holds `trials` of them.

scripts/search.py is the command line; studies/search_report.py writes what a search shows.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import optuna
import sqlalchemy.exc

from engine.run_dir import LAST_CHECKPOINT, experiment_dir
from engine.run_lock import live_holder
from engine.summary import read_summary, write_summary
from studies.compare import RunRecord
from studies.run_pool import RunPoint, RunPool, Slot, main_argv, run_opts
from studies.search_space import Dimension, value_text
from utils.errors import UserError

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
# The median pruner's patience: no trial is pruned before 2 trials have finished, nor before its
# own second epoch (its first val score is noise).
MEDIAN_STARTUP_TRIALS = 2
MEDIAN_WARMUP_EPOCHS = 1
TRIAL_PREFIX = "trial"


@dataclass
class SearchPlan:
    """What every trial shares: the config file, main.py's flags, the --opts before the trial's
    own values, where the trials live, their model and data set (for the folder), and the metric
    the study optimises, in which direction."""
    cfg_file: str
    flags: dict[str, object]
    opts: list[str]
    name: str
    search_dir: str
    model: str
    dataset: str
    metric: str
    direction: str
    dimensions: list[Dimension]

    def run_dir(self, number: int, params: dict) -> str:
        """Trial `number`'s folder, where main.py puts it: under its model (drawn, when MODEL.NAME is)."""
        model = params.get("MODEL.NAME", self.model)
        return os.path.join(experiment_dir(self.search_dir, model, self.dataset), f"{TRIAL_PREFIX}{number}")

    def point(self, number: int, params: dict, total: int) -> RunPoint:
        """Trial `number` as a run of the pool, with the drawn `params` (config key: value)."""
        kinds = {dimension.key: dimension.kind for dimension in self.dimensions}
        values = {key: value_text(value, kinds[key]) for key, value in params.items()}
        opts = run_opts(self.name, self.opts, values, self.search_dir, f"{TRIAL_PREFIX}{number}")
        return RunPoint(f"[trial {number + 1}/{total}]", self.run_dir(number, params),
                        main_argv(self.cfg_file, self.flags, opts), values)


def build_sampler(name: str, dimensions: Sequence[Dimension], seed: int) -> optuna.samplers.BaseSampler:
    """The sampler `name` (SAMPLERS), seeded; grid needs every dimension to be a choice or int."""
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        continuous = [dimension.key for dimension in dimensions if dimension.kind not in ("choice", "int")]
        if continuous:
            raise UserError(f"--sampler grid takes choice and int dimensions only; {continuous[0]} is continuous: "
                            f"give it as choice:V1,V2,... or use --sampler tpe")
        space = {dimension.key: list(dimension.choices) if dimension.kind == "choice"
                 else list(range(int(dimension.low), int(dimension.high) + 1)) for dimension in dimensions}
        return optuna.samplers.GridSampler(space, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def build_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """The pruner `name` (PRUNERS) for runs of `epochs` epochs."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=MEDIAN_WARMUP_EPOCHS)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    return optuna.pruners.NopPruner()


def open_study(plan: SearchPlan, storage: str, sampler: optuna.samplers.BaseSampler,
               pruner: optuna.pruners.BasePruner, space: Sequence[str]) -> optuna.Study:
    """The study `plan.name` in `storage`, created or continued; UserError when the stored one was
    made for another direction or space."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the search prints its own lines
    try:
        study = optuna.create_study(study_name=plan.name, storage=storage, sampler=sampler, pruner=pruner,
                                    direction=plan.direction, load_if_exists=True)
    except ValueError as e:  # e.g. a stored study of another direction
        raise UserError(f"study {plan.name} in {storage} cannot be continued: {e}") from None
    except (ImportError, sqlalchemy.exc.SQLAlchemyError) as e:  # an unknown database, driver or host
        reason = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise UserError(f"--storage {storage} cannot be opened ({reason}); give a database URL Optuna's RDB "
                        f"storage takes, e.g. sqlite:///study.db or postgresql://USER:PASS@HOST/DB") from None
    stored = study.user_attrs.get("space")
    if stored is None:
        study.set_user_attr("space", list(space))
        study.set_user_attr("metric", plan.metric)
    elif stored != list(space) or study.user_attrs.get("metric") != plan.metric:
        raise UserError(f"study {plan.name} in {storage} searched --space {' '.join(stored)} for "
                        f"{study.user_attrs.get('metric')}; continue it with the same --space and --metric, or "
                        f"start another with --name")
    if study.direction.name.lower() != plan.direction:
        raise UserError(f"study {plan.name} in {storage} {study.direction.name.lower()}s its metric; "
                        f"continue it with --direction {study.direction.name.lower()}")
    return study


class Search:
    """Runs the trials of `study` in `slots` until it holds `trials` of them."""

    def __init__(self, study: optuna.Study, plan: SearchPlan, trials: int, slots: Sequence[Slot]):
        self.study, self.plan, self.trials, self.slots = study, plan, trials, list(slots)
        self.in_flight: dict[str, optuna.trial.Trial] = {}  # by run folder
        self.reported: dict[str, int] = {}  # epochs reported so far, by run folder
        self.distributions = {dimension.key: dimension.distribution() for dimension in plan.dimensions}

    def run(self) -> dict[int, RunRecord]:
        return RunPool(self.slots).run(self.points(), total=self.trials, watch=self.should_prune,
                                       on_end=self.tell)

    def points(self) -> Iterator[RunPoint]:
        """The trials left RUNNING by an earlier call (unless their holder is alive), then new ones."""
        for frozen in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            run_dir = self.plan.run_dir(frozen.number, frozen.params)
            if live_holder(run_dir) is not None or run_dir in self.in_flight:
                continue  # another worker's trial in flight
            trial = optuna.trial.Trial(self.study, frozen._trial_id)
            summary = read_summary(run_dir)
            if summary is not None and summary.get("status") == "finished":  # ended before it was told
                self.in_flight[run_dir] = trial
                self.tell(-1, self.plan.point(frozen.number, frozen.params, self.trials),
                          RunRecord(run_dir, summary=summary), stopped=False)
                continue
            self.reported[run_dir] = len(frozen.intermediate_values)
            yield self.start(trial, frozen.number, frozen.params)
        while len(self.study.trials) < self.trials:
            trial = self.study.ask(self.distributions)
            yield self.start(trial, trial.number, trial.params)

    def start(self, trial: optuna.trial.Trial, number: int, params: dict) -> RunPoint:
        point = self.plan.point(number, params, self.trials)
        self.in_flight[point.run_dir] = trial
        return point

    def should_prune(self, index: int, point: RunPoint) -> bool:
        """Report the run's new epochs to its trial; whether the pruner stops it."""
        trial = self.in_flight[point.run_dir]
        rows = read_metric_rows(point.run_dir)
        for row in rows[self.reported.get(point.run_dir, 0):]:
            value = row.get(self.plan.metric)
            if isinstance(value, (int, float)) and value == value:  # NaN is no report
                trial.report(float(value), step=int(row["epoch"]))
        self.reported[point.run_dir] = len(rows)
        return len(rows) > 0 and trial.should_prune()

    def tell(self, index: int, point: RunPoint, record: RunRecord, stopped: bool) -> None:
        """Tell the study how the trial of `point` ended: pruned (stopped by the pruner), its best
        metric (finished), or failed."""
        trial = self.in_flight.pop(point.run_dir)
        if stopped:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            mark_pruned(point.run_dir)
            return
        value = best_value(record.summary, self.plan.metric)
        if record.status == "finished" and value is not None:
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)


def read_metric_rows(run_dir: str) -> list[dict]:
    """The complete lines of the run's metrics.jsonl (one it is writing may end mid-line)."""
    try:
        with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as f:
            lines = f.read().split("\n")[:-1]
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
            break
    return rows


def best_value(summary: dict | None, metric: str) -> float | None:
    """The run's best `metric` over its epochs and weights, as summary.json keeps it."""
    if not summary:
        return None
    value = summary.get(f"best_{metric}")
    return float(value) if isinstance(value, (int, float)) else None


def mark_pruned(run_dir: str) -> None:
    """summary.json says "pruned", and the run's last.pth, which only a resume would read, goes."""
    summary = read_summary(run_dir)
    if summary is not None:
        summary["status"] = "pruned"
        write_summary(run_dir, summary)
    last = os.path.join(run_dir, LAST_CHECKPOINT)
    if os.path.isfile(last):
        os.remove(last)
