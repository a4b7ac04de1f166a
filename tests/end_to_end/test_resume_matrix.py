"""The resume-exactness matrix: a quickstart run stopped by SIGTERM inside an epoch and continued
with `--resume auto` ends exactly as the uninterrupted run does (metrics.jsonl without its timing
and memory fields, steps.csv, val_predictions.csv, submission.csv), for every combination of
{DATA.NUM_WORKERS 0, 2} x {DATA.CACHE none, ram} x {plain, Mixup + CutMix, TRAIN.EMA}.

What a run computes does not depend on the number of loader workers, so one uninterrupted run
(with no workers) per variant and cache serves as the reference of both worker rows, which
therefore also pin that independence. DATA.CACHE none augments per image and DATA.CACHE ram on
whole batches, with other draws, so each cache has its own reference. (On the CPU, DATA.CACHE
device caches in host memory as ram does: tests/data/test_mix.py checks that it gives the same batches.)
"""
import json

import pytest

import engine.tracking
import evaluation.val_report
from engine.summary import MEMORY_KEYS
from tests.end_to_end.test_resume import quickstart, read_metrics, run_dir, sigterm_at_batch

VARIANTS = {
    "plain": [],
    "mixup_cutmix": ["AUG.MIXUP", "0.2", "AUG.CUTMIX", "1.0"],
    "ema": ["TRAIN.EMA.DECAY", "0.9"],
}
CACHES = ("none", "ram")
WORKERS = (0, 2)
# 3 epochs of 5 batches of 64 images, scored on 5% of the train split (72 images).
SHORT = ["TRAIN.EPOCHS", "3", "DATA.TRAIN_SUBSET", "320", "DATA.VAL_SPLIT", "0.05"]
BATCHES_PER_EPOCH = 5
# SIGTERM comes during batch 3 of epoch 2 (counted from 1); the next update hears it, so the run
# stops after batch 4 and resumes at batch 5.
STOP_EPOCH, STOP_BATCH = 1, 2
# Fields of metrics.jsonl that measure the machine, not the training.
UNREPEATABLE_FIELDS = ("epoch_time", "images_per_sec", *MEMORY_KEYS)
COMPARED_FILES = ("steps.csv", "val_predictions.csv", "submission.csv")


def options(variant: str, cache: str) -> list[str]:
    return [*SHORT, "DATA.CACHE", cache, *VARIANTS[variant]]


def outputs(folder) -> dict:
    """What must not change when a run is stopped and resumed."""
    metrics = [{key: value for key, value in row.items() if key not in UNREPEATABLE_FIELDS}
               for row in read_metrics(folder)]
    return {"metrics.jsonl": metrics, **{name: (folder / name).read_text() for name in COMPARED_FILES}}


@pytest.fixture(autouse=True)
def no_figures(monkeypatch):
    """The figures show what the files compared here hold, and drawing them takes a third of a run."""
    for module, names in ((engine.tracking, ("curves_figure", "save_figure")),
                          (evaluation.val_report, ("predictions_figure", "confusion_figure", "save_figure"))):
        for name in names:
            monkeypatch.setattr(module, name, lambda *args, **kwargs: None)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """`outputs_of(variant, cache)`: the outputs of the uninterrupted run with no loader workers,
    trained the first time a row asks for it."""
    runs = {}

    def outputs_of(variant: str, cache: str) -> dict:
        if (variant, cache) not in runs:
            root = tmp_path_factory.mktemp(f"uninterrupted-{variant}-{cache}")
            assert quickstart(root, *options(variant, cache), workers=0) == 0
            runs[variant, cache] = outputs(run_dir(root))
        return runs[variant, cache]

    return outputs_of


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("cache", CACHES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_sigterm_inside_an_epoch_then_resume_auto_ends_exactly_like_the_uninterrupted_run(
        tmp_path, monkeypatch, capsys, uninterrupted, variant, cache, workers):
    expected = uninterrupted(variant, cache)
    with pytest.MonkeyPatch.context() as stop:
        # sigterm_at_batch counts batches from the run's first; its epoch argument assumes 22 an epoch.
        sigterm_at_batch(stop, epoch=0, batch=STOP_EPOCH * BATCHES_PER_EPOCH + STOP_BATCH)
        assert quickstart(tmp_path, *options(variant, cache), workers=workers) == 143
    assert json.loads((run_dir(tmp_path) / "summary.json").read_text())["status"] == "interrupted"
    capsys.readouterr()
    assert quickstart(tmp_path, *options(variant, cache), workers=workers, flags=["--resume", "auto"]) == 0
    assert f"continuing with epoch {STOP_EPOCH + 1} at batch {STOP_BATCH + 3}" in (
        run_dir(tmp_path) / "log.txt").read_text()
    resumed = outputs(run_dir(tmp_path))
    for name in expected:
        assert resumed[name] == expected[name], name
