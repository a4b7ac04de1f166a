"""Comparing runs: finding run folders, telling runs apart by the config keys that differ, the
overlaid curves and the table; and scripts/compare.py, the command line around them."""
import importlib.util
import json
import os

import pandas as pd
import pytest
import yaml

import studies.compare
from engine.summary import summarize, write_summary
from studies.compare import RunRecord, compare_runs, differing_keys, find_runs, load_run, markdown_table, run_label

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def metrics_rows(epochs, val_acc1=None):
    """Rows as main.py writes them to metrics.jsonl (epoch counted from 0)."""
    val_acc1 = val_acc1 or [20.0 + 10 * epoch for epoch in range(epochs)]
    return [{"epoch": epoch, "train_loss": 2.0 - 0.3 * epoch, "val_loss": 2.1 - 0.2 * epoch, "val_acc1": acc,
             "epoch_time": 10.0 + epoch, "images_per_sec": 100.0 * (epoch + 1), "peak_rss_mb": 500.0 + epoch}
            for epoch, acc in enumerate(val_acc1)]


def write_run(folder, lr=0.001, epochs=3, tag="a", rows=None, summary=True, **config):
    """A run folder as main.py leaves it: config.yaml, metrics.jsonl and summary.json."""
    folder.mkdir(parents=True)
    tree = {"TAG": tag, "OUTPUT": str(folder.parent), "SEED": 0, "DATA": {"BATCH_SIZE": 32, "NUM_WORKERS": 2},
            "MODEL": {"NAME": "lenet"}, "TRAIN": {"LR": lr, "EPOCHS": epochs}, **config}
    (folder / "config.yaml").write_text(yaml.safe_dump(tree))
    rows = metrics_rows(epochs) if rows is None else rows
    if rows:
        (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    if summary:
        write_summary(str(folder), summarize(rows, "finished", epochs, 1000, None, {"TRAIN.LR": lr}))
    return folder


def run_dirs(records):
    return [os.path.basename(record.run_dir) for record in records]


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"script_{name}", os.path.join(REPO, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compare_script():
    return load_script("compare")


# --- finding and reading runs ---------------------------------------------------------------------

def test_find_runs_finds_run_folders_at_any_depth_in_order(tmp_path):
    write_run(tmp_path / "sweep" / "lr_b")
    write_run(tmp_path / "sweep" / "lr_a")
    write_run(tmp_path / "deep" / "er" / "still" / "run")
    records, problems = find_runs([str(tmp_path)])
    assert problems == []
    assert [os.path.relpath(record.run_dir, tmp_path) for record in records] == [
        os.path.join("deep", "er", "still", "run"), os.path.join("sweep", "lr_a"), os.path.join("sweep", "lr_b")]


def test_find_runs_takes_a_run_folder_itself_and_not_the_runs_inside_its_subfolders(tmp_path):
    run = write_run(tmp_path / "run")
    write_run(run / "eval-best")  # e.g. an evaluation that wrote its own config.yaml
    records, problems = find_runs([str(run)])
    assert problems == []
    assert [record.run_dir for record in records] == [str(run)]


def test_find_runs_reports_a_folder_without_runs_and_a_missing_path_as_problems(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    write_run(tmp_path / "good")
    records, problems = find_runs([str(tmp_path / "empty"), str(tmp_path / "nowhere"), str(tmp_path / "good")])
    assert run_dirs(records) == ["good"]
    assert problems == [f"{tmp_path / 'empty'}: no runs (no folder with a config.yaml)",
                        f"{tmp_path / 'nowhere'}: no such folder"]


def test_load_run_flattens_the_config_and_reads_metrics_and_summary(tmp_path):
    record = load_run(str(write_run(tmp_path / "run", lr=0.01, epochs=2)))
    assert record.config["TRAIN.LR"] == 0.01
    assert record.config["DATA.BATCH_SIZE"] == 32
    assert "TRAIN" not in record.config
    assert [row["epoch"] for row in record.rows] == [0, 1]
    assert record.summary["best_epoch"] == 2
    assert record.status == "finished"


def test_load_run_of_a_folder_with_a_broken_config_gives_an_empty_config(tmp_path):
    folder = write_run(tmp_path / "run")
    (folder / "config.yaml").write_text("TRAIN: [unclosed\n")
    assert load_run(str(folder)).config == {}


# --- a run's status -------------------------------------------------------------------------------

def test_a_run_with_a_config_but_no_metrics_yet_says_so(tmp_path):
    record = load_run(str(write_run(tmp_path / "run", rows=[], summary=False)))
    assert record.status == "no metrics yet"


def test_a_run_with_metrics_and_no_summary_says_so(tmp_path):
    assert load_run(str(write_run(tmp_path / "run", summary=False))).status == "no summary"


def test_a_missing_run_folder_is_missing_and_a_status_override_wins(tmp_path):
    assert load_run(str(tmp_path / "gone")).status == "missing"
    assert RunRecord(str(tmp_path / "gone"), status_override="failed (exit 2)").status == "failed (exit 2)"


# --- telling runs apart ---------------------------------------------------------------------------

def test_differing_keys_lists_the_config_keys_that_differ_without_bookkeeping_keys(tmp_path):
    records = [load_run(str(write_run(tmp_path / "a", lr=0.001, tag="a", OUTPUT="/out/a", DEVICE="cpu"))),
               load_run(str(write_run(tmp_path / "b", lr=0.01, tag="b", OUTPUT="/out/b", DEVICE="cuda")))]
    assert differing_keys(records) == ["TRAIN.LR"]


def test_differing_keys_keeps_config_order_and_counts_a_key_missing_from_one_run(tmp_path):
    records = [load_run(str(write_run(tmp_path / "a", lr=0.001, epochs=2))),
               load_run(str(write_run(tmp_path / "b", lr=0.01, epochs=3, AUG={"MIXUP": 0.2})))]
    assert differing_keys(records) == ["TRAIN.EPOCHS", "TRAIN.LR", "AUG.MIXUP"]


def test_differing_keys_of_identical_runs_is_empty(tmp_path):
    records = [load_run(str(write_run(tmp_path / name))) for name in ("a", "b")]
    assert differing_keys(records) == []


def test_run_label_names_the_differing_keys_and_their_values(tmp_path):
    record = load_run(str(write_run(tmp_path / "run", lr=0.001)))
    assert run_label(record, ["TRAIN.LR"]) == "lr 1e-3"
    assert run_label(record, ["TRAIN.LR", "DATA.BATCH_SIZE", "MODEL.NAME"]) == "lenet, lr 1e-3, bs 32"


def test_run_label_shows_a_blank_value_as_none():
    record = RunRecord("run", config={"AUG.RAND_AUGMENT": "", "TRAIN.LR": 0.001})
    assert run_label(record, ["AUG.RAND_AUGMENT", "TRAIN.LR"]) == "randaug none, lr 1e-3"


def test_run_label_is_the_folder_name_when_no_key_tells_runs_apart(tmp_path):
    record = load_run(str(write_run(tmp_path / "my_run")))
    assert run_label(record, []) == "my_run"


# --- compare_runs ---------------------------------------------------------------------------------

def test_compare_runs_writes_the_picture_and_a_csv_beside_it_with_one_row_per_run(tmp_path):
    write_run(tmp_path / "runs" / "fast", lr=0.1, epochs=3)
    write_run(tmp_path / "runs" / "slow", lr=0.001, epochs=2, rows=metrics_rows(2, val_acc1=[40.0, 30.0]))
    records, _ = find_runs([str(tmp_path / "runs")])
    out = tmp_path / "out" / "picture.png"
    out.parent.mkdir()
    table = compare_runs(records, ["val_loss", "val_acc1"], str(out))
    assert out.read_bytes()[:8] == PNG_MAGIC
    written = pd.read_csv(tmp_path / "out" / "picture.csv")
    assert written["run"].tolist() == ["fast", "slow"]
    assert written["TRAIN.LR"].tolist() == [0.1, 0.001]
    assert written["status"].tolist() == ["finished", "finished"]
    assert written["best_val_acc1"].tolist() == [40.0, 40.0]
    assert written["best_epoch"].tolist() == [3, 1]
    assert written["epochs"].tolist() == [3, 2]
    assert written["label"].tolist() == ["epochs 3, lr 0.1", "epochs 2, lr 1e-3"]
    assert written["train_time_s"].tolist() == [33.0, 21.0]
    assert written["images_per_sec"].tolist() == [200.0, 150.0]
    assert written["parameters"].tolist() == [1000, 1000]
    assert written["peak_rss_mb"].tolist() == [502.0, 501.0]
    assert "peak_memory_mb" not in written
    assert list(table.columns) == list(written.columns)


def test_compare_runs_draws_one_curve_per_run_labelled_by_the_differing_keys(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(studies.compare, "save_figure", lambda figure, path: figures.append(figure))
    write_run(tmp_path / "a", lr=0.001)
    write_run(tmp_path / "b", lr=0.01)
    records, _ = find_runs([str(tmp_path)])
    compare_runs(records, ["val_acc1"], str(tmp_path / "compare.png"))
    assert [text.get_text() for text in figures[0].legends[0].get_texts()] == ["lr 1e-3", "lr 0.01"]


def test_compare_runs_tells_runs_with_the_same_label_apart_by_their_folders(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(studies.compare, "save_figure", lambda figure, path: figures.append(figure))
    for name, lr in (("first", 0.001), ("second", 0.001), ("third", 0.01)):
        write_run(tmp_path / name, lr=lr)
    records, _ = find_runs([str(tmp_path)])
    compare_runs(records, ["val_acc1"], str(tmp_path / "compare.png"))
    labels = [text.get_text() for text in figures[0].legends[0].get_texts()]
    assert labels == ["lr 1e-3 (first)", "lr 1e-3 (second)", "lr 0.01"]


def test_compare_runs_draws_every_run_even_when_two_share_their_label_and_folder_name(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(studies.compare, "save_figure", lambda figure, path: figures.append(figure))
    write_run(tmp_path / "machine_a" / "lenet_digits" / "run")  # the same config run twice
    write_run(tmp_path / "machine_b" / "lenet_digits" / "run")
    records, _ = find_runs([str(tmp_path)])
    table = compare_runs(records, ["val_acc1"], str(tmp_path / "compare.png"))
    assert len(table) == 2
    assert len(figures[0].axes[0].get_lines()) == 2
    labels = [text.get_text() for text in figures[0].legends[0].get_texts()]
    assert labels == ["run (machine_a/lenet_digits/run)", "run (machine_b/lenet_digits/run)"]


def test_a_run_without_metrics_yet_gets_a_table_row_and_no_curve(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(studies.compare, "save_figure", lambda figure, path: figures.append(figure))
    write_run(tmp_path / "done", lr=0.1)
    write_run(tmp_path / "starting", lr=0.01, rows=[], summary=False)
    records, _ = find_runs([str(tmp_path)])
    table = compare_runs(records, ["val_loss"], str(tmp_path / "compare.png"))
    assert table["status"].tolist() == ["finished", "no metrics yet"]
    assert table["epochs"].tolist() == [3, 0]
    assert pd.isna(table["best_val_acc1"].iloc[1]) and pd.isna(table["images_per_sec"].iloc[1])
    assert [text.get_text() for text in figures[0].legends[0].get_texts()] == ["lr 0.1"]


def test_compare_runs_of_runs_that_all_lack_metrics_does_not_crash(tmp_path):
    write_run(tmp_path / "a", lr=0.1, rows=[], summary=False)
    write_run(tmp_path / "b", lr=0.01, rows=[], summary=False)
    records, _ = find_runs([str(tmp_path)])
    table = compare_runs(records, ["val_loss"], str(tmp_path / "compare.png"))
    assert table["status"].tolist() == ["no metrics yet", "no metrics yet"]
    assert "peak_rss_mb" not in table


def test_the_table_names_runs_by_their_path_below_the_common_parent(tmp_path):
    write_run(tmp_path / "exp1" / "lenet" / "run")
    write_run(tmp_path / "exp2" / "lenet" / "run", lr=0.01)
    records, _ = find_runs([str(tmp_path / "exp1"), str(tmp_path / "exp2")])
    table = compare_runs(records, ["val_loss"], str(tmp_path / "compare.png"))
    assert table["run"].tolist() == [os.path.join("exp1", "lenet", "run"), os.path.join("exp2", "lenet", "run")]


# --- markdown_table -------------------------------------------------------------------------------

def markdown_cells(text):
    """The cells of each row of a markdown table, header first, the separator line left out."""
    lines = text.splitlines()
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[:1] + lines[2:]]


def test_markdown_table_writes_whole_floats_as_integers_and_missing_values_as_blanks():
    frame = pd.DataFrame({"run": ["a", "b", "c"], "epochs": [3.0, 12.0, None], "acc": [71.23456, None, 50.0],
                          "status": ["finished", None, "running"]})
    assert markdown_cells(markdown_table(frame)) == [
        ["run", "epochs", "acc", "status"],
        ["a", "3", "71.23", "finished"],
        ["b", "12", "", ""],
        ["c", "", "50", "running"],
    ]


# --- scripts/compare.py ---------------------------------------------------------------------------

def test_compare_script_prints_a_markdown_table_and_writes_compare_png_and_csv_into_the_one_dir(
        tmp_path, capsys, compare_script):
    write_run(tmp_path / "sweep" / "lr_a", lr=0.001)
    write_run(tmp_path / "sweep" / "lr_b", lr=0.01)
    assert compare_script.main([str(tmp_path / "sweep")]) == 0
    out = capsys.readouterr().out
    cells = markdown_cells(out.split("\nwrote ")[0])
    assert cells[0][:4] == ["run", "label", "TRAIN.LR", "status"]
    assert [row[:4] for row in cells[1:]] == [["lr_a", "lr 1e-3", "0.001", "finished"],
                                              ["lr_b", "lr 0.01", "0.01", "finished"]]
    assert out.splitlines()[-1] == (f"wrote {tmp_path / 'sweep' / 'compare.png'} and "
                                    f"{tmp_path / 'sweep' / 'compare'}.csv (2 runs)")
    assert (tmp_path / "sweep" / "compare.png").read_bytes()[:8] == PNG_MAGIC
    assert len(pd.read_csv(tmp_path / "sweep" / "compare.csv")) == 2


def test_compare_script_writes_where_out_says(tmp_path, capsys, compare_script):
    write_run(tmp_path / "run")
    assert compare_script.main([str(tmp_path / "run"), "--out", str(tmp_path / "mine.png")]) == 0
    assert (tmp_path / "mine.png").is_file() and (tmp_path / "mine.csv").is_file()
    assert not (tmp_path / "run" / "compare.png").exists()


def test_compare_script_on_a_folder_without_runs_exits_2_with_one_error_line(tmp_path, capsys, compare_script):
    (tmp_path / "empty").mkdir()
    assert compare_script.main([str(tmp_path / "empty")]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: no runs found in {tmp_path / 'empty'}")
    assert captured.err.count("\n") == 1
    assert captured.out == ""
    assert not (tmp_path / "empty" / "compare.png").exists()


def test_compare_script_with_an_unknown_metric_exits_2_with_one_line_that_suggests_the_closest(
        tmp_path, capsys, compare_script):
    write_run(tmp_path / "run")
    assert compare_script.main([str(tmp_path / "run"), "--metric", "val_acc"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("error: unknown --metric 'val_acc'; did you mean val_acc1?")
    assert not (tmp_path / "run" / "compare.png").exists()


@pytest.mark.parametrize("config_text", [
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + level)}: &{chr(98 + level)} [{', '.join([f'*{chr(97 + level)}'] * 10)}]\n" for level in range(8)),
    "- just\n- a list\n",
    b"TRAIN:\n  LR: \xff\n",
], ids=["alias-bomb", "not-a-mapping", "not-utf8"])
def test_a_run_whose_config_yaml_is_damaged_is_listed_without_its_keys(tmp_path, config_text):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_bytes(config_text if isinstance(config_text, bytes) else config_text.encode())
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "val_acc1": 50.0}) + "\n")
    record = load_run(str(run))
    assert record.config == {} and [row["val_acc1"] for row in record.rows] == [50.0]


# --- the figure's title ---------------------------------------------------------------------------

def test_the_comparison_is_titled_with_its_name_models_data_and_subsets(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(studies.compare, "save_figure", lambda figure, path: figures.append(figure))
    write_run(tmp_path / "a", MODEL={"NAME": "lenet"}, DATA={"DATASET": "digits"})
    write_run(tmp_path / "b", MODEL={"NAME": "alexnet"}, DATA={"DATASET": "digits"})
    records, _ = find_runs([str(tmp_path)])
    compare_runs(records, ["val_acc1"], str(tmp_path / "compare.png"), name="models")
    assert figures[-1].get_suptitle() == "models: lenet vs alexnet on digits"
    for record in records:
        record.summary["subsets"] = {"val": [200, 1000]}
    compare_runs(records, ["val_acc1"], str(tmp_path / "compare.png"), name="models")
    assert figures[-1].get_suptitle() == "models: lenet vs alexnet on digits (val subset 200/1,000)"


def test_a_run_whose_loss_blew_up_is_diverged_in_the_table_and_the_legend(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(studies.compare, "save_figure", lambda figure, path: figures.append(figure))
    write_run(tmp_path / "calm", lr=1e-3)
    rows = metrics_rows(3)
    for row, loss in zip(rows, (2.2, 9.5, 33.8)):
        row["train_loss"] = loss
    write_run(tmp_path / "wild", lr=3e-3, rows=rows)
    nan_rows = metrics_rows(2)
    nan_rows[1]["train_loss"] = float("nan")
    write_run(tmp_path / "wild_nan", lr=1e-2, rows=nan_rows)
    stuck = [dict(row, train_loss=2.31) for row in metrics_rows(3)]  # at guessing, ln 10 = 2.30: not learning
    write_run(tmp_path / "x_stuck", lr=0.3, rows=stuck)
    relapsed = [dict(row, train_loss=loss) for row, loss in zip(metrics_rows(3), (2.0, 0.4, 2.5))]
    write_run(tmp_path / "y_relapsed", lr=0.1, rows=relapsed)
    for run in ("calm", "wild", "x_stuck", "y_relapsed"):
        (tmp_path / run / "classes.json").write_text(json.dumps([str(digit) for digit in range(10)]))
    records, _ = find_runs([str(tmp_path)])
    table = compare_runs(records, ["train_loss"], str(tmp_path / "compare.png"))
    assert table["status"].tolist() == ["finished", "diverged", "diverged", "finished", "diverged"]
    assert [text.get_text() for text in figures[0].legends[0].get_texts()] == [
        "lr 1e-3", "lr 3e-3 (diverged)", "lr 0.01 (diverged)", "lr 0.3", "lr 0.1 (diverged)"]
    assert figures[0].axes[0].get_ylim()[1] < 2.5  # from the runs that did not diverge: 1.4 .. 2.31


def test_a_metric_loss_is_not_judged_against_guessing(tmp_path):
    rows = [dict(row, train_loss=loss) for row, loss in zip(metrics_rows(3), (37.0, 20.0, 2.0))]
    run = write_run(tmp_path / "arcface", rows=rows, TRAIN={"LR": 1e-3, "EPOCHS": 3, "LOSS": "arcface"})
    (run / "classes.json").write_text(json.dumps(["a", "b", "c"]))
    records, _ = find_runs([str(tmp_path)])
    assert records[0].num_classes == 3 and studies.compare.table_status(records[0]) == "finished"


def test_a_run_the_nan_guard_stopped_is_diverged_not_failed(tmp_path):
    run = write_run(tmp_path / "run", summary=False)
    write_summary(str(run), summarize(metrics_rows(3), "failed", 3, 1000, None, {}, error=(
        "UserError: the loss was NaN or Inf for 10 updates in a row (epoch 3, batch 5 of 6), so the run stopped")))
    records, _ = find_runs([str(tmp_path)])
    assert studies.compare.table_status(records[0]) == "diverged"
