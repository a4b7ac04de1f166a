"""The study commands end to end: a run's pictures and summary, sweeps, comparisons, the
throughput scan, the LR range test, and evaluating or predicting from any checkpoint."""
import csv
import importlib.util
import json
import os
import re

import pandas as pd
import pytest
import torch

import engine.tracking
import evaluation.val_report
import main
import studies.compare
import studies.lr_finder
from evaluation.val_report import grid_indices

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "configs/quickstart.yaml")
FAST = ["DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled", "PRINT_FREQ", "5"]


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"script_{name}", os.path.join(REPO, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quickstart(tmp_path, *opts, tag="run", epochs=2, flags=()):
    return main.main(["--cfg", QUICKSTART, "--output", str(tmp_path), "--tag", tag, "--device", "cpu", *flags,
                      "--opts", *FAST, "TRAIN.EPOCHS", str(epochs), *opts])


def read_metrics(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def capture_figures(monkeypatch, module):
    """Record every figure `module` saves, by file name, and still write it."""
    figures = {}
    real_save = module.save_figure

    def save(figure, path, **kwargs):
        figures[os.path.basename(path)] = figure
        real_save(figure, path, **kwargs)

    monkeypatch.setattr(module, "save_figure", save)
    return figures


# --- a run's pictures, tables and summary ---------------------------------------------------------

def test_a_quickstart_run_writes_its_pictures_tables_and_a_summary_naming_the_best_epoch(tmp_path, monkeypatch):
    figures = capture_figures(monkeypatch, evaluation.val_report)
    assert quickstart(tmp_path, epochs=4) == 0
    folder = tmp_path / "lenet_digits" / "run"
    assert {"curves.png", "summary.json", "confusion.png", "per_class.csv", "predictions.png", "steps.csv",
            "val_predictions.csv"} <= set(os.listdir(folder))

    rows = read_metrics(folder)
    summary = json.loads((folder / "summary.json").read_text())
    best = max(range(len(rows)), key=lambda i: (rows[i]["val_acc1"], -i))
    assert summary["status"] == "finished" and summary["epochs_completed"] == 4
    assert summary["best_epoch"] == best + 1 and summary["best_val_acc1"] == rows[best]["val_acc1"]
    assert summary["last"]["epoch"] == 3 and summary["parameters"] == 62006 and summary["macs"] > 0
    assert summary["train_time_s"] == pytest.approx(sum(row["epoch_time"] for row in rows))
    assert summary["config"]["TRAIN.EPOCHS"] == 4 and "TRAIN.OPTIMIZER.NAME" not in summary["config"]
    assert summary["peak_rss_mb"] > 0 and "peak_memory_mb" not in summary

    # 20 panels, titled with the true and predicted class names of the fixed sample.
    grid = figures["predictions.png"]
    predictions = pd.read_csv(folder / "val_predictions.csv")
    sample = predictions.iloc[grid_indices(len(predictions))]
    assert len(grid.axes) == 20
    assert grid.get_suptitle() == "lenet_digits/run: lenet on digits | val predictions (red: wrong)"
    assert figures["confusion.png"].get_suptitle() == "lenet_digits/run: lenet on digits | val confusion matrix"
    assert [axis.get_title() for axis in grid.axes] == [
        f"true: {row.true}\npred: {row.predicted}" for row in sample.itertuples()]
    assert len(predictions) == 359 and set(predictions.columns) == {"id", "true", "predicted", "confidence"}

    per_class = pd.read_csv(folder / "per_class.csv")
    assert list(per_class["name"].astype(str)) == [str(d) for d in range(10)]
    assert per_class["images"].sum() == 359
    assert per_class["correct"].sum() == (predictions.true == predictions.predicted).sum()


def test_curves_are_redrawn_every_epoch_from_the_metrics(tmp_path, monkeypatch):
    import evaluation.plots
    drawn, titles = [], []
    real_curves = engine.tracking.curves_figure
    monkeypatch.setattr(engine.tracking, "curves_figure",
                        lambda rows, **labels: drawn.append(len(rows)) or titles.append(labels) or real_curves(rows, **labels))
    assert quickstart(tmp_path, epochs=3) == 0
    assert drawn == [1, 2, 3]
    # The run, its model and its data set; its train loss is the val loss; val acc@1 picks best.pth.
    assert titles == [dict(title="lenet_digits/run: lenet on digits", train_loss="", select_metric="val_acc1")] * 3
    figure = evaluation.plots.curves_figure(read_metrics(tmp_path / "lenet_digits" / "run"))
    curves = [line for line in figure.axes[0].get_lines() if not line.get_label().startswith("best")]
    assert [list(line.get_xdata()) for line in curves] == [[1, 2, 3], [1, 2, 3]]


def interrupt_at_epoch(monkeypatch, interrupted_epoch):
    """Make training raise KeyboardInterrupt (Ctrl-C) when it reaches `interrupted_epoch` (from 0)."""
    real_train_one_epoch = main.train_one_epoch

    def train_one_epoch(*args, **kwargs):
        if args[3] == interrupted_epoch:  # the epoch argument
            raise KeyboardInterrupt
        return real_train_one_epoch(*args, **kwargs)

    monkeypatch.setattr(main, "train_one_epoch", train_one_epoch)


def test_steps_csv_holds_every_iteration_and_a_resume_rewrites_its_epochs(tmp_path, monkeypatch):
    interrupt_at_epoch(monkeypatch, 2)
    assert quickstart(tmp_path, epochs=3) == 130
    folder = tmp_path / "lenet_digits" / "run"
    assert json.loads((folder / "summary.json").read_text())["status"] == "interrupted"
    assert "interrupted; continue with: python main.py --cfg ... --tag run --resume auto" in (
        folder / "log.txt").read_text()
    monkeypatch.undo()
    assert quickstart(tmp_path, epochs=3, flags=["--resume", "auto"]) == 0
    with open(folder / "steps.csv", newline="") as f:
        steps = list(csv.DictReader(f))
    # 1,438 training digits in batches of 64, the ragged last one dropped: 22 iterations an epoch.
    assert [int(row["global_step"]) for row in steps] == list(range(66))
    assert [int(row["epoch"]) for row in steps] == [0] * 22 + [1] * 22 + [2] * 22
    assert all(float(row["train_loss"]) > 0 and float(row["lr"]) > 0 for row in steps)


def test_a_failing_run_is_summarised_as_failed(tmp_path, monkeypatch):
    def broken_epoch(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(main, "train_one_epoch", broken_epoch)
    with pytest.raises(RuntimeError):
        quickstart(tmp_path)
    summary = json.loads((tmp_path / "lenet_digits" / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == "RuntimeError: boom"


# --- short runs and small disks --------------------------------------------------------------------

def test_train_subset_and_max_steps_shorten_every_epoch(tmp_path, capsys):
    assert quickstart(tmp_path, "DATA.TRAIN_SUBSET", "0.5", "TRAIN.MAX_STEPS_PER_EPOCH", "4",
                      "TRAIN.ACCUMULATION_STEPS", "2", epochs=1) == 0
    log = (tmp_path / "lenet_digits" / "run" / "log.txt").read_text()
    assert "719 train, 359 val" in log and "1 epoch of 4 steps" in log
    assert len((tmp_path / "lenet_digits" / "run" / "steps.csv").read_text().splitlines()) == 1 + 8
    assert quickstart(tmp_path, "DATA.TRAIN_SUBSET", "100", tag="count", epochs=1) == 0
    assert "100 train, 359 val" in (tmp_path / "lenet_digits" / "count" / "log.txt").read_text()


def test_a_train_subset_larger_than_the_split_is_one_line(tmp_path, capsys):
    assert quickstart(tmp_path, "DATA.TRAIN_SUBSET", "5000") == 2
    assert capsys.readouterr().err == ("error: DATA.TRAIN_SUBSET asks for 5000 images but the train split has "
                                       "1438; lower it, or give a fraction such as 0.1\n")


@pytest.mark.parametrize("policy, kept", [("best_and_last", {"best.pth", "last.pth"}), ("best", {"best.pth"}),
                                          ("last", {"last.pth"}), ("none", set())])
def test_save_checkpoints_keeps_what_it_says(tmp_path, policy, kept):
    assert quickstart(tmp_path, "SAVE.CHECKPOINTS", policy) == 0
    folder = tmp_path / "lenet_digits" / "run"
    assert {name for name in os.listdir(folder) if name.endswith(".pth")} == kept
    assert len((folder / "submission.csv").read_text().splitlines()) == 360
    log = (folder / "log.txt").read_text()
    weights = "the best checkpoint" if "best.pth" in kept else f"the final weights (SAVE.CHECKPOINTS {policy}"
    assert f"test predictions written with {weights}" in log


def test_resuming_a_finished_run_that_kept_no_last_checkpoint_is_refused(tmp_path, capsys):
    assert quickstart(tmp_path, "SAVE.CHECKPOINTS", "best") == 0
    before = (tmp_path / "lenet_digits" / "run" / "best.pth").read_bytes()
    assert quickstart(tmp_path, "SAVE.CHECKPOINTS", "best", flags=["--resume", "auto"]) == 2
    assert "has finished and kept no last.pth to continue from" in capsys.readouterr().err
    assert (tmp_path / "lenet_digits" / "run" / "best.pth").read_bytes() == before


def test_a_warmup_of_half_the_run_or_more_is_warned_about(tmp_path, capsys):
    assert quickstart(tmp_path, "TRAIN.WARMUP_EPOCHS", "1", epochs=2) == 0
    assert "warning: TRAIN.WARMUP_EPOCHS is 1 of 2 epochs" in capsys.readouterr().out
    assert quickstart(tmp_path, "TRAIN.WARMUP_EPOCHS", "1", tag="long", epochs=3) == 0
    assert "warning: TRAIN.WARMUP_EPOCHS" not in capsys.readouterr().out


# --- sweeps and comparisons ------------------------------------------------------------------------

@pytest.mark.parametrize("cfg, grid, opts, expected", [
    ("configs/alexnet_cifar10.yaml", ["TRAIN.LR=1e-3,3e-3"], ["DATA.DATASET", "digits"], "alexnet_digits-lr"),
    ("configs/quickstart.yaml", ["MODEL.NAME=lenet,resnet18", "TRAIN.LR=1e-3"], [], "digits-model-lr"),
    ("configs/quickstart.yaml", ["DATA.DATASET=digits,cifar10"], [], "lenet-dataset"),
], ids=["opts-change-the-data", "grid-over-models", "grid-over-data"])
def test_a_sweep_folder_is_named_for_what_its_runs_train(tmp_path, cfg, grid, opts, expected):
    sweep = load_script("sweep")
    argv = ["--cfg", os.path.join(REPO, cfg), *[item for pair in grid for item in ("--grid", pair)],
            "--output", str(tmp_path), "--opts", *opts]
    sweep_dir, runs = sweep.plan(sweep.parse_args(argv))
    assert sweep_dir == os.path.join(str(tmp_path), "sweeps", expected) and len(runs) == 2


def test_a_learning_rate_sweep_is_one_command_and_a_second_call_trains_nothing(tmp_path, monkeypatch, capsys):
    sweep = load_script("sweep")
    figures = capture_figures(monkeypatch, studies.compare)
    argv = ["--cfg", QUICKSTART, "--grid", "train.lr=1e-3,3e-3,1e-2,3e-2", "--output", str(tmp_path),
            "--device", "cpu", "--opts", *FAST, "TRAIN.EPOCHS", "1", "TRAIN.WARMUP_EPOCHS", "0"]
    assert sweep.main(argv) == 0
    sweep_dir = tmp_path / "sweeps" / "lenet_digits-lr"  # what the runs train, not the config file's name
    runs = sweep_dir / "lenet_digits"
    assert sorted(os.listdir(runs)) == ["lr1e-2", "lr1e-3", "lr3e-2", "lr3e-3"]
    # Sweeps keep only best.pth.
    assert {name for run in os.listdir(runs) for name in os.listdir(runs / run) if name.endswith(".pth")} == {"best.pth"}
    first_figure = figures["compare.png"]
    assert [len(axis.get_lines()) for axis in first_figure.axes] == [4, 4, 4]
    assert [text.get_text() for text in first_figure.legends[0].get_texts()] == [
        "lr 1e-3", "lr 3e-3", "lr 0.01", "lr 0.03"]  # in the grid's order
    assert first_figure.get_suptitle() == "lenet_digits-lr: lenet on digits"
    table = pd.read_csv(sweep_dir / "compare.csv")
    assert len(table) == 4 and sorted(table["TRAIN.LR"]) == [0.001, 0.003, 0.01, 0.03]
    assert set(table["status"]) == {"finished"}
    group = {json.loads((runs / run / "summary.json").read_text())["config"]["WANDB.GROUP"] for run in os.listdir(runs)}
    assert group == {"lenet_digits-lr"}

    written = {run: (runs / run / "metrics.jsonl").stat().st_mtime for run in os.listdir(runs)}
    capsys.readouterr()
    assert sweep.main(argv) == 0
    assert capsys.readouterr().out.count("finished before, skipped") == 4
    assert {run: (runs / run / "metrics.jsonl").stat().st_mtime for run in os.listdir(runs)} == written
    assert [len(axis.get_lines()) for axis in figures["compare.png"].axes] == [4, 4, 4]


def test_a_sweep_resumes_an_interrupted_run_goes_on_after_a_failure_and_keeps_no_checkpoint(
        tmp_path, monkeypatch, capsys):
    sweep = load_script("sweep")
    argv = ["--cfg", QUICKSTART, "--grid", "MODEL.NAME=lenet,alexnet", "--name", "models", "--output", str(tmp_path),
            "--device", "cpu", "--opts", *FAST, "TRAIN.EPOCHS", "2", "SAVE.CHECKPOINTS", "none"]
    _, runs = sweep.plan(sweep.parse_args(argv))
    (lenet_dir, lenet_argv, _), (alexnet_dir, _, _) = runs
    assert os.path.basename(lenet_dir) == "model_lenet"
    interrupt_at_epoch(monkeypatch, 1)
    assert main.main(lenet_argv) == 130
    monkeypatch.undo()
    capsys.readouterr()

    assert sweep.main(argv) == 1  # alexnet cannot take 32 px images
    out = capsys.readouterr().out
    assert f"{lenet_dir}: resuming" in out and f"{alexnet_dir}: failed with exit code 2" in out
    assert "resumed from" in open(os.path.join(lenet_dir, "log.txt")).read()
    assert [row["epoch"] for row in read_metrics(tmp_path / lenet_dir)] == [0, 1]
    pth = [name for folder, _, files in os.walk(tmp_path) for name in files if name.endswith(".pth")]
    assert pth == []
    table = pd.read_csv(tmp_path / "sweeps" / "models" / "compare.csv")
    assert list(table["MODEL.NAME"]) == ["lenet", "alexnet"]
    assert list(table["status"]) == ["finished", "failed (exit 2)"]
    assert table["best_val_acc1"].iloc[0] > 0 and table["epochs"].iloc[0] == 2


@pytest.mark.parametrize("grid, message", [
    ("TRAIN.LRR=1,2", "error: unknown config key TRAIN.LRR; did you mean TRAIN.LR?"),
    ("TRAIN.EPOCHS=2,two", "error: TRAIN.EPOCHS expects an integer"),
    ("MODEL.NAME=lenet,AlexNet,resnet19", "error: unknown MODEL.NAME 'resnet19'; did you mean resnet18?"),
    ("TRAIN.LR", "error: --grid 'TRAIN.LR' must look like KEY=V1,V2,..."),
])
def test_a_bad_grid_is_one_line_and_exit_2_before_any_run(tmp_path, capsys, grid, message):
    sweep = load_script("sweep")
    assert sweep.main(["--cfg", QUICKSTART, "--grid", grid, "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not any(os.scandir(tmp_path))


def test_compare_overlays_runs_from_several_folders_and_lists_a_run_without_metrics(tmp_path, capsys, monkeypatch):
    assert quickstart(tmp_path / "a", "TRAIN.LR", "0.01", epochs=1) == 0
    assert quickstart(tmp_path / "b", "TRAIN.LR", "0.02", "DATA.BATCH_SIZE", "32", epochs=2) == 0
    empty = tmp_path / "c" / "lenet_digits" / "empty"
    empty.mkdir(parents=True)
    (empty / "config.yaml").write_text((tmp_path / "a" / "lenet_digits" / "run" / "config.yaml").read_text())
    compare = load_script("compare")
    out = tmp_path / "cmp.png"
    capsys.readouterr()
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c"), str(tmp_path / "none"),
                         "--metric", "val_loss", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"{tmp_path / 'none'}: no such folder" in captured.err
    table = pd.read_csv(tmp_path / "cmp.csv")
    assert list(table["TRAIN.LR"]) == [0.01, 0.02, 0.01]
    assert list(table["DATA.BATCH_SIZE"]) == [64, 32, 64]
    assert list(table["status"]) == ["finished", "finished", "no metrics yet"]
    assert list(table["epochs"]) == [1, 2, 0]
    header, _, *rows, written = captured.out.splitlines()
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "run", "label", "DATA.BATCH_SIZE", "TRAIN.EPOCHS", "TRAIN.LR", "status",  # what changed, in config order
        "best_val_acc1", "best_epoch", "last_val_acc1", "best_train_acc1", "last_train_acc1", "epochs",  # how well
        "train_time_s", "images_per_sec", "parameters", "peak_tensor_mb", "peak_rss_mb"]  # how long, and what it cost
    assert len(rows) == 3 and written.endswith("cmp.csv (3 runs)")
    assert out.exists()
    assert list(table["label"]) == [f"bs 64, epochs 1, lr 0.01 ({os.path.join('a', 'lenet_digits', 'run')})",
                                    "bs 32, epochs 2, lr 0.02",
                                    f"bs 64, epochs 1, lr 0.01 ({os.path.join('c', 'lenet_digits', 'empty')})"]
    for row, run in zip(table.to_dict("records"), (tmp_path / "a", tmp_path / "b")):
        folder = run / "lenet_digits" / "run"
        summary = json.loads((folder / "summary.json").read_text())
        metrics = read_metrics(folder)
        assert row["best_val_acc1"] == pytest.approx(summary["best_val_acc1"], rel=1e-3)
        assert row["best_epoch"] == summary["best_epoch"]
        assert row["last_val_acc1"] == pytest.approx(summary["last"]["val_acc1"], rel=1e-3)
        assert row["best_train_acc1"] == pytest.approx(max(m["train_acc1"] for m in metrics), rel=1e-3)
        assert row["last_train_acc1"] == pytest.approx(summary["last"]["train_acc1"], rel=1e-3)
        assert row["train_time_s"] == pytest.approx(summary["train_time_s"], rel=1e-3)
        assert row["images_per_sec"] == pytest.approx(summary["median_images_per_sec"], rel=1e-3)
        assert row["parameters"] == summary["parameters"]
        for memory in ("peak_tensor_mb", "peak_rss_mb"):
            assert row[memory] == pytest.approx(summary[memory], rel=1e-3)

    figures = capture_figures(monkeypatch, studies.compare)
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b"), "--x", "step", "--out", str(tmp_path / "steps.png")]) == 0
    axis, = figures["steps.png"].axes
    assert axis.get_xlabel() == "step"
    steps_b = pd.read_csv(tmp_path / "b" / "lenet_digits" / "run" / "steps.csv")
    raw = [line for line in axis.get_lines() if line.get_alpha() is not None]
    assert list(raw[1].get_ydata()) == pytest.approx(list(steps_b["train_loss"]))
    assert list(raw[1].get_xdata()) == list(steps_b["global_step"])
    assert [text.get_text() for text in figures["steps.png"].legends[0].get_texts()] == [
        "bs 64, epochs 1, lr 0.01", "bs 32, epochs 2, lr 0.02"]


# --- throughput -------------------------------------------------------------------------------------

def throughput_csv(tmp_path):
    (folder,) = [name for name in os.listdir(tmp_path / "lenet_digits") if name.startswith("throughput-")]
    return pd.read_csv(tmp_path / "lenet_digits" / folder / "throughput.csv"), tmp_path / "lenet_digits" / folder


def test_throughput_on_cpu_writes_increasing_batch_sizes_with_and_without_the_loader(tmp_path, capsys, monkeypatch):
    import studies.throughput
    titles, real_figure = [], studies.throughput.throughput_figure
    monkeypatch.setattr(studies.throughput, "throughput_figure",
                        lambda rows, title: titles.append(title) or real_figure(rows, title))
    assert main.main(["--cfg", QUICKSTART, "--output", str(tmp_path), "--device", "cpu", "--throughput",
                      "--batch-sizes", "4,1,2", "--opts", *FAST]) == 0
    table, folder = throughput_csv(tmp_path)
    assert list(table["batch_size"]) == [1, 2, 4]
    assert (table["loader_images_per_sec"] > 0).all() and (table["model_images_per_sec"] > 0).all()
    assert {"model_ms_per_step", "loader_ms_per_step", "peak_rss_mb"} <= set(table.columns)
    # On CPU the memory column is the step's tensors (what a GPU's max_memory_allocated counts),
    # growing with the batch; the whole process's RSS follows it as a second column.
    assert list(table.columns).index("peak_tensor_mb") == list(table.columns).index("peak_rss_mb") - 1
    assert (table["peak_tensor_mb"] > 0).all() and table["peak_tensor_mb"].is_monotonic_increasing
    assert table["peak_tensor_mb"].iloc[-1] > table["peak_tensor_mb"].iloc[0]
    assert (table["peak_rss_mb"] > table["peak_tensor_mb"]).all()
    assert sorted(os.listdir(folder)) == ["throughput.csv", "throughput.png"]
    assert "largest batch that fits: 4 (no out-of-memory" in capsys.readouterr().out
    assert titles == ["lenet on digits, 32 px | cpu, fp32"]  # the model, data, device and precision


def test_throughput_stops_at_the_first_out_of_memory_and_names_the_largest_batch_that_fits(
        tmp_path, monkeypatch, capsys):
    import studies.throughput
    real_step = studies.throughput.train_step

    def step(model, normalize, images, *args):
        if images.shape[0] >= 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real_step(model, normalize, images, *args)

    monkeypatch.setattr(studies.throughput, "train_step", step)
    assert main.main(["--cfg", QUICKSTART, "--output", str(tmp_path), "--device", "cpu", "--throughput",
                      "--opts", *FAST]) == 0
    table, _ = throughput_csv(tmp_path)
    assert list(table["batch_size"]) == [1, 2, 4, 8, 16, 32]
    assert "largest batch that fits: 32 (64 runs out of memory)" in capsys.readouterr().out


def test_max_batch_ends_the_default_scan(tmp_path):
    assert main.main(["--cfg", QUICKSTART, "--output", str(tmp_path), "--device", "cpu", "--throughput",
                      "--max-batch", "6", "--opts", *FAST]) == 0
    table, _ = throughput_csv(tmp_path)
    assert list(table["batch_size"]) == [1, 2, 4]


def test_throughput_flags_without_throughput_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--batch-sizes", "1,2"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("error: --batch-sizes and --max-batch belong to --throughput; add it, or "
                                       "leave them out; see python main.py --help\n")


@pytest.mark.parametrize("flag, value", [("--batch-sizes", "1,two,4"), ("--batch-sizes", "0,2"),
                                         ("--max-batch", "-3")])
def test_throughput_batch_sizes_must_be_positive_integers(capsys, flag, value):
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--throughput", flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: argument {flag}: ") and err.count("\n") == 1


# --- LR range test ---------------------------------------------------------------------------------

def test_lr_find_suggests_a_learning_rate_that_trains_the_quickstart_to_95_percent(tmp_path, capsys, monkeypatch):
    import studies.lr_finder
    figures = capture_figures(monkeypatch, studies.lr_finder)
    assert main.main(["--cfg", QUICKSTART, "--output", str(tmp_path), "--device", "cpu", "--lr-find",
                      "--opts", *FAST]) == 0
    out = capsys.readouterr().out
    suggestion = float(re.search(r"suggested LR: (\S+)", out).group(1))
    assert 1e-7 <= suggestion <= 10
    (folder,) = os.listdir(tmp_path / "lenet_digits")
    assert folder.startswith("lr-find-")
    assert sorted(os.listdir(tmp_path / "lenet_digits" / folder)) == ["lr_find.csv", "lr_find.png"]
    assert figures["lr_find.png"].axes[0].get_title() == f"lenet_digits/{folder}: lenet on digits | LR range test"

    assert main.main(["--cfg", QUICKSTART, "--output", str(tmp_path), "--tag", "found", "--device", "cpu",
                      "--opts", *FAST, "TRAIN.LR", str(suggestion)]) == 0
    assert max(row["val_acc1"] for row in read_metrics(tmp_path / "lenet_digits" / "found")) >= 95


def test_lr_find_that_diverges_at_once_says_it_has_no_suggestion(tmp_path, capsys, monkeypatch):
    from studies.lr_finder import LrFindResult
    monkeypatch.setattr(studies.lr_finder, "lr_range_test", lambda *args, **kwargs: LrFindResult([1e-7, 1e-6], [2.3, 9.9],
                                                                                      [2.3, 5.0], None))
    assert main.main(["--cfg", QUICKSTART, "--output", str(tmp_path), "--device", "cpu", "--lr-find",
                      "--opts", *FAST]) == 0
    assert "no suggestion: the loss diverged after only 2 steps" in capsys.readouterr().out


# --- evaluate and predict from any checkpoint ------------------------------------------------------

def train_cifar(tmp_path, cifar10_root):
    argv = ["--cfg", os.path.join(REPO, "configs/lenet_cifar10.yaml"), "--data-path", str(cifar10_root),
            "--output", str(tmp_path / "out"), "--tag", "run", "--device", "cpu",
            "--opts", "TRAIN.EPOCHS", "2", "DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled", "DATA.BATCH_SIZE", "8"]
    assert main.main(argv) == 0
    return tmp_path / "out" / "lenet_cifar10" / "run"


def test_eval_and_predict_without_cfg_use_the_checkpoints_own_data_set(tmp_path, cifar10_root, capsys):
    folder = train_cifar(tmp_path, cifar10_root)
    capsys.readouterr()
    assert main.main(["--resume", str(folder / "best.pth"), "--eval", "--predict", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "on cifar10 val (10 images)" in out
    best_val = max(row["val_acc1"] for row in read_metrics(folder))
    assert f"acc@1 {best_val:.2f}%" in out
    (eval_dir,) = [name for name in os.listdir(folder) if name.startswith("eval-")]
    files = sorted(os.listdir(folder / eval_dir))
    assert files == ["calibration.png", "confusion.png", "per_class.csv", "predictions.png", "probs.json",
                     "submission.csv", "test_probs.csv", "val_predictions.csv", "val_probs.csv"]
    assert (folder / eval_dir / "submission.csv").read_text() == (folder / "submission.csv").read_text()
    names = pd.read_csv(folder / eval_dir / "per_class.csv")["name"].tolist()
    assert names[:3] == ["airplane", "automobile", "bird"]  # from the data set's meta file


def test_a_shuffled_val_loader_still_reports_predictions_in_split_order(tmp_path):
    assert quickstart(tmp_path, "TEST.SHUFFLE", "True", epochs=1) == 0
    predictions = pd.read_csv(tmp_path / "lenet_digits" / "run" / "val_predictions.csv")
    from config import get_config
    from data import build_loader
    labels = build_loader(get_config(QUICKSTART)).val_dataset.labels
    assert list(predictions["id"]) == list(range(359)) and list(predictions["true"]) == list(labels)


def test_predict_alone_writes_only_the_submission_and_its_probabilities(tmp_path, cifar10_root, capsys):
    folder = train_cifar(tmp_path, cifar10_root)
    assert main.main(["--resume", str(folder / "last.pth"), "--predict", "--device", "cpu"]) == 0
    (eval_dir,) = [name for name in os.listdir(folder) if name.startswith("eval-")]
    assert sorted(os.listdir(folder / eval_dir)) == ["probs.json", "submission.csv", "test_probs.csv"]
    assert len((folder / eval_dir / "submission.csv").read_text().splitlines()) == 11


def test_a_cfg_that_differs_from_the_checkpoint_in_model_or_data_is_one_line(tmp_path, cifar10_root, capsys):
    folder = train_cifar(tmp_path, cifar10_root)
    files_before = sorted(os.listdir(folder))
    capsys.readouterr()
    assert main.main(["--cfg", QUICKSTART, "--resume", str(folder / "best.pth"), "--eval"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the config given differs from the one checkpoint") and err.count("\n") == 1
    assert "DATA.DATASET ('digits'; the checkpoint has 'cifar10')" in err
    assert main.main(["--resume", str(folder / "best.pth"), "--eval", "--opts", "MODEL.NAME", "alexnet"]) == 2
    assert "MODEL.NAME ('alexnet'; the checkpoint has 'lenet')" in capsys.readouterr().err
    assert sorted(os.listdir(folder)) == files_before
