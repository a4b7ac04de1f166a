"""Short studies through main.py: a run that scores part of val (DATA.VAL_SUBSET) and predicts part
of test (DATA.TEST_SUBSET) says so in its log, summary.json and curves.png title, writes no
submission.csv from a subset, and --predict refuses one; --eval on a subset says it is one."""
import json
import os

import pytest

import engine.tracking
import main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "configs/quickstart.yaml")
FAST = ["DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled", "PRINT_FREQ", "5", "TRAIN.EPOCHS", "1",
        "DATA.TRAIN_SUBSET", "128"]
DIGITS_TEST = 359  # the digits' test split, which validates when DATA.VAL_SPLIT is 0


def quickstart(output, tag, *opts):
    return main.main(["--cfg", QUICKSTART, "--output", str(output), "--tag", tag, "--device", "cpu",
                      "--opts", *FAST, *opts])


@pytest.fixture(scope="module")
def subset_run(tmp_path_factory):
    """(a finished run scoring 100 val images and predicting a tenth of test, curves.png's titles)."""
    output = tmp_path_factory.mktemp("subsets")
    titles = []
    real_curves = engine.tracking.curves_figure

    def recording_curves(rows, *args, **kwargs):
        titles.append(kwargs.get("title", args[0] if args else ""))
        return real_curves(rows, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.tracking, "curves_figure", recording_curves)
        assert quickstart(output, "short", "DATA.VAL_SUBSET", "100", "DATA.TEST_SUBSET", "0.1") == 0
    return output / "lenet_digits" / "short", titles


def test_a_subset_run_says_so_once_in_its_log_and_in_summary_json(subset_run):
    folder, _ = subset_run
    log = (folder / "log.txt").read_text()
    val_lines = [line for line in log.splitlines() if "DATA.VAL_SUBSET" in line and "100 of 359" in line]
    test_lines = [line for line in log.splitlines() if "DATA.TEST_SUBSET" in line and "36 of 359" in line]
    assert len(val_lines) == 1 and len(test_lines) == 1
    assert "128 train, 100 val, 36 test images" in log
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["subsets"] == {"val": [100, DIGITS_TEST], "test": [36, DIGITS_TEST]}


def test_a_subset_runs_curves_are_titled_with_its_subsets(subset_run):
    _, titles = subset_run
    assert titles and all(title.startswith("lenet_digits/short: lenet on digits") for title in titles)
    assert all("val subset 100/359" in title and "test subset 36/359" in title for title in titles)


def test_a_run_predicting_a_test_subset_writes_no_submission(subset_run):
    folder, _ = subset_run
    assert not (folder / "submission.csv").exists()
    log = (folder / "log.txt").read_text()
    assert "no submission.csv" in log and "DATA.TEST_SUBSET" in log
    assert (folder / "val_predictions.csv").read_text().count("\n") == 1 + 100


def test_a_val_subset_alone_leaves_test_whole_and_the_submission_written(tmp_path):
    assert quickstart(tmp_path, "val-only", "DATA.VAL_SUBSET", "0.5") == 0
    folder = tmp_path / "lenet_digits" / "val-only"
    assert json.loads((folder / "summary.json").read_text())["subsets"] == {"val": [180, DIGITS_TEST]}
    assert (folder / "submission.csv").read_text().count("\n") == 1 + DIGITS_TEST


def test_a_run_without_subsets_has_no_subsets_in_its_summary(tmp_path):
    assert quickstart(tmp_path, "whole") == 0
    folder = tmp_path / "lenet_digits" / "whole"
    assert "subsets" not in json.loads((folder / "summary.json").read_text())
    assert "from a subset" not in (folder / "log.txt").read_text()


def test_eval_on_a_val_subset_says_it_scores_a_subset(subset_run, capsys):
    folder, _ = subset_run
    capsys.readouterr()
    assert main.main(["--resume", str(folder / "best.pth"), "--eval", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if "on digits val" in line]
    assert "100 of 359" in line and "DATA.VAL_SUBSET" in line


def test_predict_refuses_a_test_subset_in_one_line_and_writes_nothing(subset_run, capsys):
    folder, _ = subset_run
    before = sorted(os.listdir(folder))
    capsys.readouterr()
    assert main.main(["--resume", str(folder / "best.pth"), "--predict", "--device", "cpu"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "DATA.TEST_SUBSET" in lines[0]
    assert sorted(os.listdir(folder)) == before
    # Set to 0, the same checkpoint predicts every test row.
    assert main.main(["--resume", str(folder / "best.pth"), "--predict", "--device", "cpu",
                      "--opts", "DATA.TEST_SUBSET", "0"]) == 0
    (eval_dir,) = set(os.listdir(folder)) - set(before)
    assert (folder / eval_dir / "submission.csv").read_text().count("\n") == 1 + DIGITS_TEST
