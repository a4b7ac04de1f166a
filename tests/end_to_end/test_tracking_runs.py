"""W&B end to end: a run without a login logs offline (WANDB.MODE auto), with its pictures and its
summary table; a missing wandb or login never stops training."""
import glob
import json
import os
import sys
from pathlib import Path

import main
from tests.engine.test_tracking import REPO


def quick_run(tmp_path, mode=None):
    """A 1-epoch LeNet run on digits; `mode` None keeps the default WANDB.MODE."""
    return main.main(["--cfg", os.path.join(REPO, "configs/quickstart.yaml"), "--output", str(tmp_path),
                      "--tag", "run", "--device", "cpu", "--opts", "DATA.NUM_WORKERS", "0", "TRAIN.EPOCHS", "1",
                      *(["WANDB.MODE", mode] if mode else [])])


def test_a_default_run_without_a_login_logs_offline_with_its_pictures_and_summary_table(tmp_path, monkeypatch,
                                                                                        capsys):
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert quick_run(tmp_path) == 0  # WANDB.MODE auto; tests/conftest.py hides any W&B login
    run_dir = tmp_path / "lenet_digits" / "run"
    out = capsys.readouterr().out
    (choice,) = [line for line in out.splitlines() if "WANDB.MODE auto" in line]
    assert "offline" in choice and "wandb login" in choice
    (offline_dir,) = glob.glob(str(run_dir / "wandb" / "offline-run-*"))
    assert glob.glob(os.path.join(offline_dir, "run-*.wandb"))
    assert f"wandb sync {offline_dir}" in out
    # W&B keeps each logged picture as files/media/images/<name>_<step>_<hash>.png.
    media = Path(offline_dir) / "files" / "media"
    assert {name.split("_")[0] for name in os.listdir(media / "images")} == {"curves", "predictions", "confusion",
                                                                            "calibration"}
    (table_file,) = (media / "table").glob("run_summary_*.table.json")
    table = json.loads(table_file.read_text())
    (row,) = [dict(zip(table["columns"], cells)) for cells in table["data"]]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert row["status"] == "finished"
    for key in ("epochs_completed", "best_val_acc1", "best_epoch", "train_time_s", "parameters"):
        assert row[key] == summary[key]
    assert row["last_train_acc1"] == summary["last"]["train_acc1"]


def test_training_goes_on_when_wandb_is_not_installed(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` raise ImportError
    assert quick_run(tmp_path, "offline") == 0
    assert "W&B: wandb is not installed" in capsys.readouterr().out
    assert (tmp_path / "lenet_digits" / "run" / "submission.csv").exists()


def test_disabled_mode_does_not_import_wandb(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    assert quick_run(tmp_path, "disabled") == 0
    assert "wandb" not in sys.modules
    assert not (tmp_path / "lenet_digits" / "run" / "wandb").exists()


def test_online_mode_without_a_login_falls_back_to_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc, so no stored login
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / ".config" / "wandb"))
    assert quick_run(tmp_path, "online") == 0
    out = capsys.readouterr().out
    assert "W&B: could not start in online mode" in out and "W&B: logging offline; sync later with: wandb sync" in out
    assert glob.glob(str(tmp_path / "lenet_digits" / "run" / "wandb" / "offline-run-*" / "run-*.wandb"))
