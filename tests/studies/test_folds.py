"""studies.folds: the K fold runs put back together: every train image's out-of-fold row once,
scored; the folds' test probabilities averaged into test_probs.csv and a submission. (Its
refusals are rows of the bad-input matrix, tests/bad_inputs/fold_rows.py.)"""
from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml

from evaluation.probabilities import read_csv_rows, read_probs
from studies.folds import assemble_oof, write_oof_outputs
from tests.bad_inputs.fold_rows import FOLD_CLASSES, write_fold_run

# Fold i holds train-4i .. train-4i+3, two cats then two dogs; fold 0 predicts all four right,
# fold 1 three, fold 2 two: 9 of 12 out of fold.
PREDICTED = {0: [0, 0, 1, 1], 1: [0, 1, 1, 1], 2: [1, 0, 1, 0]}
TEST_PROBS = {0: [[0.8, 0.2], [0.3, 0.7]], 1: [[0.6, 0.4], [0.4, 0.6]], 2: [[0.2, 0.8], [0.5, 0.5]]}


@pytest.fixture
def fold_runs(tmp_path) -> list[str]:
    runs = [write_fold_run(tmp_path / "sweep" / f"fold{fold}", fold, [f"train-{4 * fold + row}" for row in range(4)],
                           [0, 0, 1, 1], predicted=PREDICTED[fold],
                           test_probs=np.array(TEST_PROBS[fold], dtype=np.float32))
            for fold in range(3)]
    return [str(runs[2]), str(runs[0]), str(runs[1])]  # in any order


def test_the_oof_rows_are_every_fold_s_val_rows_once_and_scored(fold_runs):
    result, report = assemble_oof(fold_runs)
    assert [run.fold for run in result.folds] == [0, 1, 2]
    assert result.oof.ids == [f"train-{row}" for row in range(12)]
    assert list(result.oof.targets) == [0, 0, 1, 1] * 3
    assert list(result.oof.probs.argmax(axis=1)) == PREDICTED[0] + PREDICTED[1] + PREDICTED[2]
    assert result.accuracy == pytest.approx(9 / 12)
    assert [run.accuracy for run in result.folds] == [1.0, 0.75, 0.5]
    assert "75.00%" in report[-1] and "12" in report[-1]
    assert "fold 1" in report[1] and "75.00%" in report[1]


def test_the_folds_test_probabilities_are_averaged_into_test_probs_and_the_submission(fold_runs, tmp_path):
    result, _ = assemble_oof(fold_runs)
    out = tmp_path / "out"
    written = write_oof_outputs(result, str(out))
    assert sorted(path.rsplit("/", 1)[1] for path in written) == ["oof_probs.csv", "submission.csv", "test_probs.csv"]
    mean = np.mean([TEST_PROBS[fold] for fold in range(3)], axis=0)  # [[0.53, 0.47], [0.4, 0.6]]
    test = read_probs(str(out / "test_probs.csv"), FOLD_CLASSES)
    assert test.ids == ["test-0", "test-1"]
    np.testing.assert_allclose(test.probs, mean, atol=1e-7)
    with open(out / "submission.csv", newline="") as f:
        assert list(csv.reader(f)) == [["Id", "Category"], ["0", "0"], ["1", "1"]]
    oof = read_probs(str(out / "oof_probs.csv"), FOLD_CLASSES)
    assert oof.ids == result.oof.ids and np.array_equal(oof.probs, result.oof.probs)
    assert np.array_equal(oof.targets, result.oof.targets)


def test_the_averaged_submission_takes_the_fold_runs_submission_format(fold_runs, tmp_path):
    for run in fold_runs:
        path = f"{run}/config.yaml"
        with open(path) as f:
            config = yaml.safe_load(f)
        config["SUBMISSION"] = {"FORMAT": "probs", "HEADER": "image,label"}
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
    result, _ = assemble_oof(fold_runs)
    write_oof_outputs(result, str(tmp_path / "out"))
    header, rows, _ = read_csv_rows(str(tmp_path / "out" / "submission.csv"), "the submission", "")
    assert header == ["image", *FOLD_CLASSES]
    assert [row[0] for row in rows] == ["0", "1"]
    np.testing.assert_allclose(np.array(rows)[:, 1:].astype(float), [[1.6 / 3, 1.4 / 3], [0.4, 0.6]], atol=1e-7)


def test_folds_that_wrote_no_test_probabilities_give_the_oof_file_alone(tmp_path):
    runs = [str(write_fold_run(tmp_path / f"fold{fold}", fold, [f"train-{2 * fold}", f"train-{2 * fold + 1}"], [0, 1],
                               num_folds=2)) for fold in range(2)]
    result, _ = assemble_oof(runs)
    assert result.test is None
    assert [path.rsplit("/", 1)[1] for path in write_oof_outputs(result, str(tmp_path / "out"))] == ["oof_probs.csv"]
