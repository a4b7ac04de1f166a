"""A run's records: metrics.jsonl and steps.csv, and the train loss its curves name."""
import os

import pytest

from config import get_config
from engine.build import train_loss_name
from engine.tracking import MetricsFile, read_steps

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




@pytest.mark.parametrize("opts, name", [
    ([], ""),  # plain cross-entropy: the same loss as val, drawn on one axis
    (["TRAIN.LOSS", "arcface"], "arcface"),
    (["TRAIN.LOSS", "ce+triplet", "DATA.SAMPLER", "pk"], "ce+triplet"),
    (["TRAIN.LABEL_SMOOTHING", "0.1"], "cross-entropy, label smoothing 0.1"),
    (["AUG.MIXUP", "0.2", "AUG.CUTMIX", "1.0"], "cross-entropy, on mixup/cutmix targets"),
])
def test_the_curves_name_a_train_loss_that_is_not_the_val_loss(opts, name):
    assert train_loss_name(get_config(None, opts)) == name


def test_read_steps_returns_every_step_and_skips_a_torn_row(tmp_path):
    (tmp_path / "steps.csv").write_text("global_step,epoch,lr,train_loss\n0,0,0.1,2.5\n1,0,0.1,2.25\n2,0,0.1\n3,0,0.1,x\n")
    assert read_steps(str(tmp_path)) == ([0, 1], [2.5, 2.25])
    assert read_steps(str(tmp_path / "missing")) == ([], [])
