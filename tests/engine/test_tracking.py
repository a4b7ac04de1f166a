"""W&B logging: an offline run writes its files; a missing wandb never stops training."""
import os

from engine.tracking import MetricsFile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_metrics_file_appends_one_json_object_per_call(tmp_path):
    metrics = MetricsFile(str(tmp_path))
    metrics.log({"epoch": 0, "val_acc1": 50.0})
    metrics.log({"epoch": 1, "val_acc1": 60.0})
    assert (tmp_path / "metrics.jsonl").read_text() == '{"epoch": 0, "val_acc1": 50.0}\n{"epoch": 1, "val_acc1": 60.0}\n'


def test_resuming_drops_metric_lines_logged_after_the_checkpoint(tmp_path):
    metrics = MetricsFile(str(tmp_path))
    for epoch in range(4):
        metrics.log({"epoch": epoch})
    metrics.drop_epochs_from(2)
    metrics.log({"epoch": 2})
    assert (tmp_path / "metrics.jsonl").read_text() == '{"epoch": 0}\n{"epoch": 1}\n{"epoch": 2}\n'


