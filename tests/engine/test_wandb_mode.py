"""W&B: WANDB.MODE auto (online where wandb would find a login, offline elsewhere), decided from the
environment alone; the pictures and tables a run and a sweep's comparison log there. No test
reaches W&B: logins are fake files and variables, and wandb is a stand-in module that records calls."""
import importlib.util
import logging
import os
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from config import get_config, get_default_config
from engine.wandb_run import WandbRun, log_comparison, resolve_wandb_mode, summary_row
from studies.compare import RunRecord

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
NETRC_LOGIN = "machine {host}\n  login user\n  password {key}\n"


class FakeWandb:
    """Stands in for the wandb module: every wandb.init makes a FakeRun, kept in `runs`."""

    class Image:
        def __init__(self, path):
            self.path = path

    class Table:
        def __init__(self, columns, data, allow_mixed_types=False):
            self.columns, self.data = columns, data

    class Settings:
        def __init__(self, **settings):
            self.settings = settings

    class plot:  # noqa: N801 (wandb.plot is a module)
        @staticmethod
        def confusion_matrix(**kwargs):
            return ("confusion_matrix", kwargs)

    def __init__(self):
        self.runs = []

    def init(self, **kwargs):
        self.runs.append(FakeRun(kwargs))
        return self.runs[-1]


class FakeRun:
    def __init__(self, init_kwargs):
        self.init_kwargs, self.logged, self.finished = init_kwargs, [], False
        self.id, self.dir = "fake-id", os.path.join(init_kwargs["dir"], "wandb", "offline-run-fake", "files")

    def define_metric(self, *args, **kwargs):
        pass

    def log(self, values):
        self.logged.append(values)

    def finish(self):
        self.finished = True

    def values_of(self, key):
        """Every value logged under `key`, in order."""
        return [values[key] for values in self.logged if key in values]


def install_fake_wandb(monkeypatch) -> FakeWandb:
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    return fake


def write_png(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(path)
    return str(path)


# --- WANDB.MODE auto: the decision ----------------------------------------------------------------

def test_auto_is_the_default_mode_and_a_valid_choice():
    assert get_default_config().WANDB.MODE == "auto"
    assert get_config(None, ["WANDB.MODE", "auto"]).WANDB.MODE == "auto"


def test_auto_goes_online_when_a_wandb_api_key_is_set(tmp_path):
    mode, reason = resolve_wandb_mode("auto", {"WANDB_API_KEY": "fake-key-0000"}, tmp_path)
    assert mode == "online" and "WANDB_API_KEY" in reason


@pytest.mark.parametrize("host", ["api.wandb.ai", "api.forge.coreweave.com"])
def test_auto_goes_online_with_the_netrc_login_that_wandb_login_writes(tmp_path, host):
    (tmp_path / ".netrc").write_text(NETRC_LOGIN.format(host=host, key="a" * 40))
    mode, reason = resolve_wandb_mode("auto", {}, tmp_path)
    assert mode == "online" and str(tmp_path / ".netrc") in reason and host in reason


def test_auto_reads_the_netrc_file_named_by_the_netrc_variable(tmp_path):
    netrc_file = tmp_path / "elsewhere" / "netrc"
    netrc_file.parent.mkdir()
    netrc_file.write_text(NETRC_LOGIN.format(host="api.wandb.ai", key="a" * 40))
    (tmp_path / ".netrc").write_text("machine example.com login me password secret\n")  # not the one read
    assert resolve_wandb_mode("auto", {"NETRC": str(netrc_file)}, tmp_path)[0] == "online"
    mode, reason = resolve_wandb_mode("auto", {"NETRC": str(tmp_path / "missing")}, tmp_path)
    assert mode == "offline" and str(tmp_path / "missing") in reason


def test_auto_stays_offline_without_a_login_and_says_how_to_log_in(tmp_path):
    (tmp_path / ".netrc").write_text("machine github.com login me password secret\n")  # no W&B entry
    mode, reason = resolve_wandb_mode("auto", {}, tmp_path)
    assert mode == "offline"
    assert "wandb login" in reason and "WANDB.MODE online" in reason and str(tmp_path / ".netrc") in reason
    assert resolve_wandb_mode("auto", {}, tmp_path / "empty-home")[0] == "offline"


def test_a_self_hosted_server_needs_a_login_for_its_own_host(tmp_path):
    (tmp_path / ".netrc").write_text(NETRC_LOGIN.format(host="api.wandb.ai", key="a" * 40))
    environ = {"WANDB_BASE_URL": "https://wandb.example.org"}
    mode, reason = resolve_wandb_mode("auto", environ, tmp_path)
    assert mode == "offline" and "wandb.example.org" in reason
    (tmp_path / ".netrc").write_text(NETRC_LOGIN.format(host="wandb.example.org", key="b" * 40))
    assert resolve_wandb_mode("auto", environ, tmp_path)[0] == "online"
    # `wandb login --host` keeps the server in wandb's settings file instead of a variable.
    settings = tmp_path / ".config" / "wandb" / "settings"
    settings.parent.mkdir(parents=True)
    settings.write_text("[default]\nbase_url = https://wandb.example.org\n")
    assert resolve_wandb_mode("auto", {}, tmp_path)[0] == "online"


def test_a_damaged_netrc_means_offline_and_names_the_file(tmp_path):
    (tmp_path / ".netrc").write_text("api.wandb.ai user fake-key\n")  # no "machine" token
    mode, reason = resolve_wandb_mode("auto", {}, tmp_path)
    assert mode == "offline" and str(tmp_path / ".netrc") in reason


@pytest.mark.parametrize("variable, expected", [("offline", "offline"), ("disabled", "disabled"),
                                                ("online", "online"), ("dryrun", "offline")])
def test_auto_follows_the_wandb_mode_variable_as_wandb_does(tmp_path, variable, expected):
    mode, reason = resolve_wandb_mode("auto", {"WANDB_MODE": variable, "WANDB_API_KEY": "fake-key"}, tmp_path)
    assert mode == expected and "WANDB_MODE" in reason


@pytest.mark.parametrize("mode", ["online", "offline", "disabled"])
def test_a_mode_chosen_in_the_config_stands_whatever_the_environment(tmp_path, mode):
    (tmp_path / ".netrc").write_text(NETRC_LOGIN.format(host="api.wandb.ai", key="a" * 40))
    assert resolve_wandb_mode(mode, {"WANDB_API_KEY": "fake-key", "WANDB_MODE": "offline"}, tmp_path)[0] == mode


@pytest.mark.parametrize("logged_in, expected", [(True, "online"), (False, "offline")])
def test_a_run_in_auto_mode_starts_wandb_in_the_mode_chosen_and_logs_why(tmp_path, monkeypatch, caplog, logged_in,
                                                                         expected):
    fake = install_fake_wandb(monkeypatch)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if logged_in:
        monkeypatch.setenv("WANDB_API_KEY", "fake-key-0000")
    with caplog.at_level(logging.INFO, logger="engine.wandb_run"):
        WandbRun("auto", "vision-zoo", "", "run", str(tmp_path), config={})
    (run,) = fake.runs
    assert run.init_kwargs["mode"] == expected
    (line,) = [record.getMessage() for record in caplog.records if "WANDB.MODE auto" in record.getMessage()]
    assert expected in line and ("WANDB_API_KEY" in line if logged_in else "wandb login" in line)


# --- pictures and tables --------------------------------------------------------------------------

def test_the_summary_table_row_holds_summary_json_numbers_and_the_last_epoch():
    summary = {"status": "finished", "epochs_completed": 2, "best_val_acc1": 71.5, "best_epoch": 2,
               "last": {"epoch": 1, "val_acc1": 71.5, "train_acc1": 60.0}, "subsets": {"val": [100, 359]},
               "parameters": 62006, "macs": None, "config": {"TRAIN.LR": 0.01}, "updated": "2026-01-01T00:00:00"}
    assert summary_row(summary) == {"status": "finished", "epochs_completed": 2, "best_val_acc1": 71.5,
                                    "best_epoch": 2, "last_val_acc1": 71.5, "last_train_acc1": 60.0,
                                    "subsets_val": "[100, 359]", "parameters": 62006, "macs": None}


def test_a_comparison_goes_to_a_comparison_run_of_the_group_as_a_picture_and_a_table(tmp_path, monkeypatch):
    fake = install_fake_wandb(monkeypatch)
    png = write_png(tmp_path / "compare.png")
    table = pd.DataFrame({"run": ["lr1e-3", "lr3e-3"], "TRAIN.LR": [0.001, 0.003],
                          "best_val_acc1": [55.5, float("nan")], "status": ["finished", "failed (exit 2)"]})
    log_comparison("offline", "proj", "team", "lenet_digits-lr", {"compare": png}, table, str(tmp_path))
    (run,) = fake.runs
    assert {key: run.init_kwargs[key] for key in ("mode", "project", "entity", "group", "job_type", "name", "dir")} == {
        "mode": "offline", "project": "proj", "entity": "team", "group": "lenet_digits-lr",
        "job_type": "comparison", "name": "lenet_digits-lr-comparison", "dir": str(tmp_path)}
    (picture,), (logged_table,) = run.values_of("compare"), run.values_of("comparison")
    assert picture.path == png
    assert logged_table.columns == ["run", "TRAIN.LR", "best_val_acc1", "status"]
    assert logged_table.data == [["lr1e-3", 0.001, 55.5, "finished"], ["lr3e-3", 0.003, None, "failed (exit 2)"]]
    assert run.finished


def test_a_disabled_comparison_does_not_import_wandb(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    log_comparison("disabled", "proj", "", "group", {"compare": write_png(tmp_path / "compare.png")},
                   pd.DataFrame({"run": ["a"]}), str(tmp_path))
    assert "wandb" not in sys.modules and not (tmp_path / "wandb").exists()


def load_sweep_script():
    spec = importlib.util.spec_from_file_location("script_sweep", REPO / "scripts" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mode", ["offline", "disabled"])
def test_a_sweep_logs_its_comparison_to_its_wandb_group_unless_wandb_is_disabled(tmp_path, monkeypatch, mode):
    """The sweep's own runs are stubbed out: what is pinned is where the comparison goes."""
    sweep = load_sweep_script()
    fake = install_fake_wandb(monkeypatch)
    class StubPool:  # the runs, as if they had finished
        def __init__(self, slots):
            pass

        def run(self, points):
            return {index: RunRecord(point.run_dir, config=point.config) for index, point in enumerate(points)}
    monkeypatch.setattr(sweep, "RunPool", StubPool)
    frame = pd.DataFrame({"run": ["lr1e-3", "lr3e-3"], "TRAIN.LR": [0.001, 0.003]})

    def compare_runs(records, metrics, out_png, **options):
        write_png(Path(out_png))
        return frame
    monkeypatch.setattr(sweep, "compare_runs", compare_runs)
    sweep.main(["--cfg", QUICKSTART, "--grid", "TRAIN.LR=1e-3,3e-3", "--output", str(tmp_path),
                "--opts", "WANDB.MODE", mode, "WANDB.PROJECT", "homework"])
    sweep_dir = tmp_path / "sweeps" / "lenet_digits-lr"
    if mode == "disabled":
        assert fake.runs == []
        return
    (run,) = fake.runs
    assert (run.init_kwargs["group"], run.init_kwargs["job_type"], run.init_kwargs["project"]) == (
        "lenet_digits-lr", "comparison", "homework")
    assert run.init_kwargs["dir"] == str(sweep_dir)
    assert run.values_of("compare")[0].path == str(sweep_dir / "compare.png")
    assert run.values_of("comparison")[0].data == [["lr1e-3", 0.001], ["lr3e-3", 0.003]]


def test_a_failure_to_log_the_end_of_a_run_is_a_warning_not_an_error(tmp_path, monkeypatch, caplog):
    fake = install_fake_wandb(monkeypatch)
    wandb_run = WandbRun("offline", "vision-zoo", "", "run", str(tmp_path), config={})

    def broken_log(values):
        raise RuntimeError("the W&B service has stopped")
    monkeypatch.setattr(fake.runs[0], "log", broken_log)
    wandb_run.log_run_summary({"status": "interrupted", "epochs_completed": 1}, {"curves": None})
    assert "the W&B service has stopped" in caplog.text and "run_summary" in caplog.text
