"""A Weights & Biases run that never costs the training run.

wandb is imported only when WANDB.MODE is not "disabled", and a missing package or an
unreachable server costs a warning, never the run. WANDB.MODE auto goes online only where
wandb would find a login (`resolve_wandb_mode`).
"""
from __future__ import annotations

import configparser
import json
import logging
import math
import netrc
import os
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

# WANDB_MODE values wandb accepts, as the mode each one means.
WANDB_MODE_VALUES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline",
                     "disabled": "disabled"}
# Where wandb 0.31 looks for a login (wandb/sdk/lib/wbauth), first to last: these variables,
# then a netrc entry for the server's host. `wandb login` to the W&B cloud writes an entry for
# api.wandb.ai, which wandb also reads for its default server, api.forge.coreweave.com.
LOGIN_VARIABLES = ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE")
CLOUD_HOSTS = ("api.wandb.ai", "api.forge.coreweave.com")


def resolve_wandb_mode(mode: str, environ: Mapping[str, str], home: str | Path) -> tuple[str, str]:
    """(online, offline or disabled; why) for WANDB.MODE `mode`, given the environment variables
    and the home folder: a mode other than auto stands; auto follows a WANDB_MODE variable, else
    goes online when wandb would find a login and offline when not. Reads only local files.

    wandb's own lookup (wandb.sdk.lib.wbauth) is internal, reads os.environ and can prompt; this
    one is a function of its arguments, so that it can be tested without touching a real login.
    """
    if mode != "auto":
        return mode, f"WANDB.MODE {mode}"
    variable = environ.get("WANDB_MODE", "").strip().lower()
    if variable in WANDB_MODE_VALUES:
        return WANDB_MODE_VALUES[variable], f"WANDB_MODE is {variable}"
    for name in LOGIN_VARIABLES:
        if environ.get(name):
            return "online", f"{name} is set"
    home = Path(home)
    hosts = _login_hosts(environ, home)
    path = _netrc_path(environ, home)
    try:
        entries = netrc.netrc(str(path)) if path is not None else None
    except FileNotFoundError:  # $NETRC names a file not written yet: no login, as wandb reads it
        entries = None
    except (OSError, netrc.NetrcParseError) as e:
        return "offline", f"{path} could not be read ({e}); fix it or run `wandb login`, or set WANDB.MODE online"
    if entries is not None:
        for host in hosts:
            login = entries.authenticators(host)
            if login and login[2]:
                return "online", f"a W&B login for {host} is in {path}"
    where = path or home / ".netrc"
    return "offline", (f"no W&B login found: no WANDB_API_KEY and no {' or '.join(hosts)} entry in {where}; "
                       f"run `wandb login`, or set WANDB.MODE online")


def _login_hosts(environ: Mapping[str, str], home: Path) -> list[str]:
    """The netrc machine names a login for this user's W&B server is stored under: WANDB_BASE_URL's
    host, else that of `wandb login --host` (base_url in wandb's settings file), else the cloud's."""
    base_url = environ.get("WANDB_BASE_URL", "")
    if not base_url:
        settings = configparser.ConfigParser()
        config_dir = Path(environ.get("WANDB_CONFIG_DIR") or home / ".config" / "wandb").expanduser()
        try:
            settings.read(config_dir / "settings", encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            pass  # wandb warns about its own settings file; the login lookup goes on with the cloud's
        base_url = settings.get("default", "base_url", fallback="")
    host = urlsplit(base_url.strip()).netloc
    return list(CLOUD_HOSTS) if not host or host in CLOUD_HOSTS else [host]


def _netrc_path(environ: Mapping[str, str], home: Path) -> Path | None:
    """The netrc file wandb reads: $NETRC, else ~/.netrc or ~/_netrc, whichever exists (None: neither)."""
    if environ.get("NETRC"):
        named = environ["NETRC"]
        return home / named[2:] if named.startswith("~/") else Path(named)
    for name in (".netrc", "_netrc"):
        if (home / name).is_file():
            return home / name
    return None


class WandbRun:
    """A W&B run logging the config once, then metrics and pictures, or nothing at all.

    `mode` is auto, online, offline or disabled; auto is resolved from the environment
    (`resolve_wandb_mode`) with one log line that says which and why. Online falls back to offline
    when the server can't be reached; offline runs print how to sync them later. Epoch metrics are
    plotted against `epoch`, per-step ones (`step/...`) against `global_step`. `job_type` tells a
    training run from, e.g., a sweep's comparison in the W&B group.
    """

    def __init__(self, mode: str, project: str, entity: str, name: str, run_dir: str, config: dict,
                 resume_id: str | None = None, group: str = "", job_type: str | None = None):
        self.run = None
        if mode == "auto":
            mode, reason = resolve_wandb_mode(mode, os.environ, Path.home())
            logger.info("W&B: WANDB.MODE auto chose %s (%s)", mode, reason)
        if mode == "disabled":
            return
        try:
            import wandb
        except ImportError:
            logger.warning("W&B: wandb is not installed, so nothing is logged there; pip install wandb, "
                           "or set WANDB.MODE disabled to silence this")
            return
        self._wandb = wandb
        for attempt_mode in ([mode, "offline"] if mode == "online" else [mode]):
            try:
                self.run = wandb.init(project=project, entity=entity or None, name=name, dir=run_dir,
                                      group=group or None, job_type=job_type, config=config, mode=attempt_mode,
                                      id=resume_id, resume="allow",
                                      settings=wandb.Settings(init_timeout=60, console="off", silent=True))
                break
            except Exception as e:  # network, auth, or service start-up failure: train anyway
                logger.warning("W&B: could not start in %s mode (%s)", attempt_mode, str(e).splitlines()[0][:200])
        if self.run is None:
            return
        if attempt_mode == "offline":
            logger.info("W&B: logging offline; sync later with: wandb sync %s", os.path.dirname(self.run.dir))
        self.run.define_metric("epoch")
        self.run.define_metric("global_step")
        self.run.define_metric("step/*", step_metric="global_step")
        self._epoch_keys: set[str] = set()

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run is not None else None

    def log_epoch(self, metrics: dict[str, Any]) -> None:
        """One epoch's metrics (holding `epoch`), plotted against the epoch."""
        if self.run is None:
            return
        for key in metrics.keys() - self._epoch_keys - {"epoch"}:
            self.run.define_metric(key, step_metric="epoch")
            self._epoch_keys.add(key)
        self.run.log(metrics)

    def log_steps(self, rows: Sequence[dict[str, Any]]) -> None:
        """Per-iteration rows as StepsFile writes them, plotted against the global step."""
        if self.run is None:
            return
        for row in rows:
            self.run.log({"global_step": row["global_step"], "step/train_loss": row["train_loss"],
                          "step/lr": row["lr"]})

    def log_val_report(self, image_paths: dict[str, str | None], targets: Sequence[int], predicted: Sequence[int],
                       class_names: Sequence[str]) -> None:
        """The end of a run's pictures (e.g. {"predictions": path}; a None or missing path is skipped)
        and W&B's own confusion matrix."""
        if self.run is None:
            return
        wandb = self._wandb
        self.run.log({**self._images(image_paths),
                      "confusion_matrix": wandb.plot.confusion_matrix(y_true=list(targets), preds=list(predicted),
                                                                      class_names=list(class_names))})

    def log_images(self, image_paths: dict[str, str | None], epoch: int) -> None:
        """Pictures by name (e.g. {"roc": path}) at `epoch`; a None or missing path is skipped."""
        if self.run is None:
            return
        images = self._images(image_paths)
        if images:
            self.run.log({"epoch": epoch, **images})

    def _images(self, image_paths: dict[str, str | None]) -> dict[str, Any]:
        """{name: wandb.Image} of the pictures that exist."""
        return {name: self._wandb.Image(path) for name, path in image_paths.items() if path and os.path.isfile(path)}

    def log_figures_and_table(self, image_paths: dict[str, str | None], table_name: str, columns: Sequence[str],
                              rows: Sequence[Sequence[Any]]) -> None:
        """Pictures by name (e.g. {"curves": path}; a None or missing path is skipped) beside W&B's own
        charts, and a wandb.Table `table_name` of `rows` under `columns` (NaN shows as an empty cell)."""
        if self.run is None:
            return
        cells = [[_table_cell(value) for value in row] for row in rows]
        try:
            # A comparison's config columns may hold numbers for one run and text for another.
            table = self._wandb.Table(columns=[str(column) for column in columns], data=cells, allow_mixed_types=True)
            self.run.log({**self._images(image_paths), table_name: table})
        except Exception as e:  # the last thing a run logs, often while it stops: never worth its exit code
            logger.warning("W&B: could not log %s (%s: %s)", table_name, e.__class__.__name__, str(e)[:200])

    def log_run_summary(self, summary: dict[str, Any], image_paths: dict[str, str | None]) -> None:
        """The end of a run: its figures (e.g. {"curves": path}) and summary.json's numbers as the
        one-row table "run_summary"."""
        row = summary_row(summary)
        self.log_figures_and_table(image_paths, "run_summary", list(row), [list(row.values())])

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


def summary_row(summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json as one table row: its plain fields as they are, a dict's fields as
    <dict>_<field> (the last epoch's metrics as last_<metric>), a list as its JSON text. Left out:
    the changed config (already the W&B run's config), the time stamp, and the last epoch's
    0-based number (epochs_completed counts it)."""
    row = {}
    for key, value in summary.items():
        if key in ("config", "updated"):
            continue
        if isinstance(value, dict):
            row.update({f"{key}_{name}": _plain(item) for name, item in value.items()
                        if (key, name) != ("last", "epoch")})
        else:
            row[key] = _plain(value)
    return row


def log_comparison(mode: str, project: str, entity: str, group: str, figure_paths: dict[str, str],
                   table, out_dir: str) -> None:
    """A small W&B run of job type "comparison" in `group` (named <group>-comparison) holding a
    comparison's pictures (e.g. {"compare": compare.png}) and its table (a pandas DataFrame, as
    compare.csv) as the wandb.Table "comparison"; its files go under `out_dir`/wandb. Nothing when
    `mode` is disabled."""
    run = WandbRun(mode, project, entity, f"{group}-comparison" if group else "comparison", out_dir, config={},
                   group=group, job_type="comparison")
    run.log_figures_and_table(figure_paths, "comparison", list(table.columns),
                              [list(row) for row in table.itertuples(index=False)])
    run.finish()


def _plain(value: Any) -> Any:
    """A table cell for a summary value: numbers, text and None as they are, anything else as JSON."""
    return value if value is None or isinstance(value, (str, int, float, bool)) else json.dumps(value, default=str)


def _table_cell(value: Any) -> Any:
    """A plain Python value for a wandb.Table: numpy scalars unwrapped, NaN as None (an empty cell)."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value
