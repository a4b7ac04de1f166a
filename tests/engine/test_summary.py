"""summary.json: what summarize makes of a run's metrics rows, and a file that reads back as written."""
import json
import os

import pytest

from engine.summary import SUMMARY_FILE, read_summary, summarize, write_summary


def row(epoch, val_acc1, epoch_time=10.0, images_per_sec=100.0, **extra):
    return {"epoch": epoch, "train_loss": 1.0, "val_loss": 1.1, "val_acc1": val_acc1, "epoch_time": epoch_time,
            "images_per_sec": images_per_sec, **extra}


def summary_of(rows, status="finished", **options):
    return summarize(rows, status, epochs_planned=5, parameters=1234, macs=5678, changed_config={"TRAIN.LR": 0.1},
                     **options)


# --- summarize ------------------------------------------------------------------------------------

def test_summarize_names_the_best_val_accuracy_and_its_epoch_counted_from_1():
    summary = summary_of([row(0, 30.0), row(1, 55.0), row(2, 50.0)])
    assert (summary["best_val_acc1"], summary["best_epoch"]) == (55.0, 2)


def test_summarize_takes_the_first_epoch_that_reached_the_best_accuracy():
    summary = summary_of([row(0, 30.0), row(1, 60.0), row(2, 60.0), row(3, 45.0)])
    assert summary["best_epoch"] == 2


def test_summarize_sums_the_train_time_and_takes_the_median_images_per_second():
    rows = [row(0, 1.0, epoch_time=12.5, images_per_sec=90.0), row(1, 2.0, epoch_time=10.0, images_per_sec=400.0),
            row(2, 3.0, epoch_time=11.0, images_per_sec=100.0)]
    summary = summary_of(rows)
    assert summary["train_time_s"] == pytest.approx(33.5)
    assert summary["median_images_per_sec"] == 100.0


def test_summarize_keeps_the_peak_of_each_memory_measure_present():
    cpu = summary_of([row(0, 1.0, peak_rss_mb=900.0), row(1, 2.0, peak_rss_mb=950.0), row(2, 3.0, peak_rss_mb=920.0)])
    assert cpu["peak_rss_mb"] == 950.0
    assert "peak_memory_mb" not in cpu
    gpu = summary_of([row(0, 1.0, peak_memory_mb=300.0), row(1, 2.0, peak_memory_mb=250.0)])
    assert gpu["peak_memory_mb"] == 300.0
    assert "peak_rss_mb" not in gpu


def test_summarize_records_the_run_as_it_stands():
    rows = [row(0, 30.0), row(1, 40.0)]
    summary = summary_of(rows, status="running")
    assert summary["status"] == "running"
    assert (summary["epochs_completed"], summary["epochs_planned"]) == (2, 5)
    assert summary["last"] == rows[-1]
    assert (summary["parameters"], summary["macs"]) == (1234, 5678)
    assert summary["config"] == {"TRAIN.LR": 0.1}
    assert "error" not in summary
    assert summary["updated"]


def test_summarize_keeps_the_error_of_a_failed_run():
    summary = summary_of([row(0, 10.0)], status="failed", error="RuntimeError: boom")
    assert (summary["status"], summary["error"]) == ("failed", "RuntimeError: boom")


def test_summarize_of_a_run_without_rows_has_no_best_epoch_and_no_speed():
    summary = summary_of([], status="interrupted")
    assert summary["epochs_completed"] == 0
    assert summary["status"] == "interrupted"
    for key in ("best_val_acc1", "best_epoch", "last", "train_time_s", "median_images_per_sec", "peak_rss_mb"):
        assert key not in summary
    assert summary["parameters"] == 1234


def test_summarize_rejects_an_unknown_status():
    with pytest.raises(ValueError, match="status must be one of"):
        summary_of([row(0, 1.0)], status="done")


def test_summarize_does_not_keep_a_reference_to_the_last_row():
    rows = [row(0, 1.0)]
    summary = summary_of(rows)
    rows[-1]["val_acc1"] = 99.0
    assert summary["last"]["val_acc1"] == 1.0


# --- write_summary and read_summary ---------------------------------------------------------------

def test_write_summary_then_read_summary_gives_the_same_summary(tmp_path):
    summary = summary_of([row(0, 30.0, peak_rss_mb=800.0), row(1, 40.0, peak_rss_mb=810.0)])
    write_summary(str(tmp_path), summary)
    assert read_summary(str(tmp_path)) == summary
    assert os.listdir(tmp_path) == [SUMMARY_FILE]


def test_write_summary_replaces_the_previous_summary(tmp_path):
    write_summary(str(tmp_path), summary_of([row(0, 30.0)], status="running"))
    write_summary(str(tmp_path), summary_of([row(0, 30.0), row(1, 35.0)], status="finished"))
    summary = read_summary(str(tmp_path))
    assert (summary["status"], summary["epochs_completed"]) == ("finished", 2)


def test_write_summary_writes_values_json_cannot_hold_as_text(tmp_path):
    write_summary(str(tmp_path), {"status": "running", "config": {"DATA.DATA_PATH": tmp_path}})
    assert read_summary(str(tmp_path))["config"] == {"DATA.DATA_PATH": str(tmp_path)}


def test_read_summary_of_a_folder_without_one_is_none(tmp_path):
    assert read_summary(str(tmp_path)) is None
    assert read_summary(str(tmp_path / "no_such_run")) is None


@pytest.mark.parametrize("content", ['{"status": "runn', "", "not json", "[1, 2]"])
def test_read_summary_of_a_corrupt_file_is_none(tmp_path, content):
    (tmp_path / SUMMARY_FILE).write_text(content)
    assert read_summary(str(tmp_path)) is None


def test_read_summary_of_a_file_with_undecodable_bytes_is_none(tmp_path):
    (tmp_path / SUMMARY_FILE).write_bytes(b'{"status": "\xff\xfe"}')
    assert read_summary(str(tmp_path)) is None


def test_the_summary_file_is_indented_json_ending_with_a_newline(tmp_path):
    write_summary(str(tmp_path), {"status": "finished"})
    text = (tmp_path / SUMMARY_FILE).read_text()
    assert text.endswith("}\n")
    assert json.loads(text) == {"status": "finished"}
    assert '\n  "status"' in text
