"""TEST.METRICS and TEST.SELECT_METRIC end to end: the competition metrics scored every epoch
(metrics.jsonl, the log, summary.json), best.pth chosen by the lowest log-loss, and calibration.png."""
import json

import pytest
import torch

import evaluation.evaluate
from tests.conftest import patch_evaluate
from tests.end_to_end.test_resume import quickstart, read_metrics, run_dir

METRICS = ("macro_f1", "log_loss", "ece")


def test_best_pth_is_the_epoch_with_the_lowest_log_loss_and_every_epoch_records_the_metrics(tmp_path, monkeypatch,
                                                                                              capsys):
    # Epoch 1 scores the lower acc@1 and the lower log-loss: selection by val_acc1 would keep epoch 2.
    scripted, computed = iter([(10.0, 0.2), (90.0, 0.7)]), []
    real_evaluate = evaluation.evaluate.evaluate

    def evaluate(*args, **kwargs):
        result = real_evaluate(*args, **kwargs)
        if kwargs.get("keep_predictions"):  # the final val report
            return result
        computed.append(result)
        acc1, log_loss = next(scripted)
        return {**result, "acc1": acc1, "log_loss": log_loss}

    patch_evaluate(monkeypatch, evaluate)
    assert quickstart(tmp_path, "TRAIN.EPOCHS", "2", "DATA.TRAIN_SUBSET", "256", "TEST.METRICS",
                      "['macro_f1','LOG_LOSS','ece','log_loss']", "TEST.SELECT_METRIC", "val_log_loss") == 0
    folder = run_dir(tmp_path)
    # The probabilities scored are the model's: their log-loss is its cross-entropy val loss.
    for stats in computed:
        assert set(METRICS) <= set(stats) and "top_k_accuracy" not in stats
        assert stats["log_loss"] == pytest.approx(stats["loss"], rel=1e-4)
        assert 0 <= stats["macro_f1"] <= 1 and 0 <= stats["ece"] <= 1
    rows = read_metrics(folder)
    assert [row["val_log_loss"] for row in rows] == [0.2, 0.7]
    assert [row["val_macro_f1"] for row in rows] == [stats["macro_f1"] for stats in computed]
    assert [row["val_ece"] for row in rows] == [stats["ece"] for stats in computed]
    best = torch.load(folder / "best.pth", weights_only=True)
    assert (best["epoch"], best["best_metric"], best["best_score"]) == (0, "val_log_loss", 0.2)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["best_val_log_loss"] == 0.2
    assert summary["best_val_macro_f1"] == max(stats["macro_f1"] for stats in computed)
    assert summary["best_val_ece"] == min(stats["ece"] for stats in computed)
    log = (folder / "log.txt").read_text()
    assert "log-loss 0.2000" in log and "best log-loss 0.2000" in log and "macro-F1" in log and "ECE" in log
    assert "best val log-loss 0.2000" in log
    assert (folder / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.undo()

    # --eval of best.pth scores the same metrics, from the checkpoint's own config.
    import main
    assert main.main(["--eval", "--resume", str(folder / "best.pth"), "--device", "cpu"]) == 0
    eval_log = [line for line in capsys.readouterr().out.splitlines() if "best.pth on digits val" in line]
    assert len(eval_log) == 1 and all(label in eval_log[0] for label in ("val macro-F1", "val log-loss", "val ECE"))
