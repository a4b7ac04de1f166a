"""W&B end to end: an offline run writes its files; a missing wandb or login never stops training."""
import glob
import os
import sys

import main
from tests.engine.test_tracking import REPO


def quick_run(tmp_path, mode):
    return main.main(["--cfg", os.path.join(REPO, "configs/quickstart.yaml"), "--output", str(tmp_path),
                      "--tag", "run", "--device", "cpu", "--opts", "DATA.NUM_WORKERS", "0", "TRAIN.EPOCHS", "1",
                      "WANDB.MODE", mode])


def test_offline_wandb_run_writes_its_files_and_says_how_to_sync(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert quick_run(tmp_path, "offline") == 0
    run_dir = tmp_path / "lenet_digits" / "run"
    (offline_dir,) = glob.glob(str(run_dir / "wandb" / "offline-run-*"))
    assert glob.glob(os.path.join(offline_dir, "run-*.wandb"))
    assert f"wandb sync {offline_dir}" in capsys.readouterr().out


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
