"""What a search shows, in its folder: the best trial's config as a YAML file that trains on its own
(best_config.yaml), the trials side by side (compare.png, compare.csv), Optuna's pictures through
its matplotlib backend (optimization_history.png, param_importances.png,
parallel_coordinate.png), and a markdown table of the trials, best first (top_trials.md).
"""
from __future__ import annotations

import os
import warnings

import matplotlib
import optuna
import pandas as pd
import yaml

from config import get_default_config
from engine.wandb_run import log_comparison
from studies.compare import DEFAULT_METRICS, compare_runs, load_run, markdown_table
from studies.search import SearchPlan

# Keys of the best trial's config.yaml that said where and how it ran as a trial, set back to their
# defaults so that the file trains as a run of its own, on any machine.
PLACEMENT_KEYS = ("OUTPUT", "TAG", "MODEL.RESUME", "WANDB.GROUP", "DEVICE", "SAVE.CHECKPOINTS")
OPTUNA_PLOTS = ("optimization_history", "param_importances", "parallel_coordinate")
TOP_TRIALS = 10


def trials_table(study: optuna.Study, plan: SearchPlan) -> pd.DataFrame:
    """One row per trial, best first (finished ones by value, then pruned ones by value, then the
    rest by number): trial number, state, value, its parameters, epochs run and run folder."""
    rows = []
    for trial in study.trials:
        rows.append({"trial": trial.number, "state": trial.state.name.lower(),
                     plan.metric: trial.value, **trial.params, "epochs": len(trial.intermediate_values),
                     "run": os.path.relpath(plan.run_dir(trial.number, trial.params), plan.search_dir)})
    table = pd.DataFrame(rows, columns=["trial", "state", plan.metric, *[d.key for d in plan.dimensions], "epochs",
                                        "run"])
    # Finished trials first, then the pruned (their value is their last epoch's), then the rest.
    parts = [table[table["state"] == state].sort_values(plan.metric, ascending=plan.direction == "minimize",
                                                        kind="stable") for state in ("complete", "pruned")]
    rest = table[~table["state"].isin(("complete", "pruned"))]
    return pd.concat([part for part in (*parts, rest) if len(part)]).reset_index(drop=True)


def write_best_config(study: optuna.Study, plan: SearchPlan, path: str) -> str | None:
    """The best trial's config.yaml, placement keys set back to their defaults, to `path`; None
    when no trial finished."""
    try:
        best = study.best_trial
    except ValueError:  # no finished trial yet
        return None
    with open(os.path.join(plan.run_dir(best.number, best.params), "config.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    defaults = get_default_config()
    for key in PLACEMENT_KEYS:
        section, default = config, defaults
        *parents, leaf = key.split(".")
        for part in parents:
            section, default = section[part], default[part]
        section[leaf] = default[leaf]
    params = ", ".join(f"{key} {value!r}" for key, value in best.params.items())
    header = (f"# The best trial of search {plan.name}: trial {best.number}, {plan.metric} {best.value:.6g}, with "
              f"{params}.\n# Train it: python main.py --cfg {path}\n")
    tmp_path = f"{path}.tmp-{os.getpid()}"
    with open(tmp_path, "w", encoding="utf-8") as f:
        f.write(header + yaml.safe_dump(config, sort_keys=False))
    os.replace(tmp_path, path)
    return path


def write_optuna_plots(study: optuna.Study, out_dir: str, metric: str) -> tuple[list[str], list[str]]:
    """(the PNGs written, a line per picture Optuna could not draw yet, e.g. importances of one trial)."""
    import matplotlib.pyplot as plt  # Optuna's matplotlib backend draws with pyplot
    from optuna.visualization import matplotlib as optuna_plots

    written, skipped = [], []
    # Optuna sets its own style sheet globally; rc_context gives the process its style back after.
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)  # e.g. equal importances of too few trials
        for name in OPTUNA_PLOTS:
            try:
                axes = getattr(optuna_plots, f"plot_{name}")(study)
            except (ValueError, RuntimeError, ZeroDivisionError) as e:
                skipped.append(f"{name}.png not drawn: {e}")
                continue
            axis = axes.flat[0] if hasattr(axes, "flat") else axes
            if name == "optimization_history":
                axis.set_ylabel(metric)
            path = os.path.join(out_dir, f"{name}.png")
            axis.figure.savefig(path, dpi=120, bbox_inches="tight")
            plt.close(axis.figure)
            written.append(path)
    return written, skipped


def write_search_report(study: optuna.Study, plan: SearchPlan) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Write the report into the search folder; returns (the trials table, the files written, the
    lines saying what could not be drawn)."""
    out_dir = plan.search_dir
    table = trials_table(study, plan)
    written = [os.path.join(out_dir, "top_trials.md")]
    with open(written[0], "w", encoding="utf-8") as f:
        f.write(f"# {plan.name}: {len(table)} trials, {plan.metric} ({plan.direction})\n\n")
        f.write(markdown_table(table.head(TOP_TRIALS)) + "\n")
    best = write_best_config(study, plan, os.path.join(out_dir, "best_config.yaml"))
    written += [best] if best else []
    folders = [plan.run_dir(trial.number, trial.params) for trial in study.trials]
    records = [load_run(folder) for folder in folders if os.path.isdir(folder)]
    if records:
        compare_png = os.path.join(out_dir, "compare.png")
        compared = compare_runs(records, DEFAULT_METRICS, compare_png, name=plan.name)
        written += [compare_png, os.path.join(out_dir, "compare.csv")]
        # As a sweep does: the comparison, in a run of the search's W&B group (nothing when disabled).
        settings = records[0].config
        log_comparison(settings.get("WANDB.MODE", "disabled"), settings.get("WANDB.PROJECT", ""),
                       settings.get("WANDB.ENTITY", ""), plan.name, {"compare": compare_png}, compared, out_dir)
    plots, skipped = write_optuna_plots(study, out_dir, plan.metric)
    return table, written + plots, skipped
