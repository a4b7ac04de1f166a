"""studies.ensemble: the weighted mean of the members' saved probabilities, scored on val against
each member; weights fitted to the lowest val log-loss. (Its refusals are rows of the bad-input
matrix, tests/bad_inputs/ensemble_rows.py.)"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.patches import Rectangle

from evaluation.ensemble_figure import ensemble_figure
from evaluation.probabilities import read_probs, write_probs
from studies.ensemble import ensemble_members, fit_weights, parse_weights, write_ensemble_outputs
import studies.ensemble_members
from evaluation.probs_record import write_probs_record
from studies.ensemble_members import Prediction, find_members
from utils.errors import UserError
from tests.bad_inputs.ensemble_rows import CLASSES, write_run
from tests.bad_inputs.fold_rows import FOLD_CLASSES, write_fold_run


def one_hot_rows(classes: list[int], num_classes: int, confidence: float) -> np.ndarray:
    """`confidence` on each row's class, the rest shared equally."""
    probs = np.full((len(classes), num_classes), (1 - confidence) / (num_classes - 1), dtype=np.float32)
    probs[np.arange(len(classes)), classes] = confidence
    return probs


def test_two_copies_of_one_run_give_exactly_that_run_s_probabilities(tmp_path):
    rng = np.random.default_rng(0)
    val, test = rng.dirichlet([1, 1, 1], 7).astype(np.float32), rng.dirichlet([1, 1, 1], 5).astype(np.float32)
    for copy in ("a", "b"):
        write_run(tmp_path / "runs" / copy, val, [0, 1, 2, 0, 1, 2, 0], test)
    result = ensemble_members(find_members([str(tmp_path / "runs")]), parse_weights(None, 2))
    out = tmp_path / "ensemble"
    write_ensemble_outputs(result, str(out))
    for name in ("val_probs.csv", "test_probs.csv"):
        assert (out / name).read_bytes() == (tmp_path / "runs" / "a" / name).read_bytes()
    table = result.table.set_index("name")
    assert list(table.index) == ["a", "b", "ensemble"]
    assert list(table["weight"]) == [0.5, 0.5, 1.0]
    for column in ("val_acc1", "val_macro_f1", "val_log_loss"):
        assert table.loc["ensemble", column] == table.loc["a", column] == table.loc["b", column]


def test_members_right_on_different_halves_make_an_ensemble_better_than_both(tmp_path):
    # 12 val images of classes 1..3 (none of class 0, which a uniform row predicts): member a is 0.9
    # sure of the truth on the first 6 and uniform on the rest, member b the other way round.
    targets = [1, 2, 3] * 4
    uniform = np.full((6, 4), 0.25, dtype=np.float32)
    first = np.concatenate([one_hot_rows(targets[:6], 4, 0.9), uniform])
    second = np.concatenate([uniform, one_hot_rows(targets[6:], 4, 0.9)])
    test = np.full((2, 4), 0.25, dtype=np.float32)
    write_run(tmp_path / "a", first, targets, test, classes=["w", "x", "y", "z"])
    write_run(tmp_path / "b", second, targets, test, classes=["w", "x", "y", "z"])
    result = ensemble_members(find_members([str(tmp_path / "a"), str(tmp_path / "b")]), parse_weights("1,1", 2))
    table = result.table.set_index("name")
    member_loss = 0.5 * -math.log(0.9) + 0.5 * math.log(4)  # 0.7458
    for member in ("a", "b"):
        assert table.loc[member, "val_acc1"] == pytest.approx(50.0)
        assert table.loc[member, "val_log_loss"] == pytest.approx(member_loss, abs=1e-6)
    assert table.loc["ensemble", "val_acc1"] == pytest.approx(100.0)
    assert table.loc["ensemble", "val_macro_f1"] == pytest.approx(1.0)
    # Every row: 0.5 * 0.9 + 0.5 * 0.25 on the true class.
    assert table.loc["ensemble", "val_log_loss"] == pytest.approx(-math.log(0.575), abs=1e-6)
    assert table.loc["ensemble", "val_log_loss"] < member_loss


def test_weights_are_normalised_and_weigh_the_blend(tmp_path):
    write_run(tmp_path / "a", one_hot_rows([0, 1], 2, 1.0), [0, 1], one_hot_rows([0], 2, 1.0))
    write_run(tmp_path / "b", one_hot_rows([1, 0], 2, 1.0), [0, 1], one_hot_rows([1], 2, 1.0))
    result = ensemble_members(find_members([str(tmp_path / "a"), str(tmp_path / "b")]), parse_weights("3,1", 2))
    assert list(result.weights) == [0.75, 0.25]
    np.testing.assert_allclose(result.test.probs, [[0.75, 0.25]])
    np.testing.assert_allclose(result.val.probs, [[0.75, 0.25], [0.25, 0.75]])


def test_auto_weights_put_everything_on_the_member_that_is_the_truth():
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 5, 200)
    truth = one_hot_rows(list(targets), 5, 0.96)
    noise = rng.dirichlet(np.ones(5), 200).astype(np.float32)
    weights = fit_weights([noise, truth], targets)
    assert (weights >= 0).all() and weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert weights[1] > 0.99


@settings(max_examples=25, deadline=None)
@given(right_rows=st.integers(1, 19))
def test_auto_weights_recover_the_known_best_weighting(right_rows):
    # Member a is certain and right on the first `right_rows` of 20 images and certain and wrong on
    # the rest, member b the reverse: the blend's log-loss -(k ln w + (20-k) ln(1-w)) / 20 is lowest at w = k/20.
    targets = np.zeros(20, dtype=np.int64)
    right = np.arange(20) < right_rows
    first = one_hot_rows(list(np.where(right, 0, 1)), 2, 1.0)
    second = one_hot_rows(list(np.where(right, 1, 0)), 2, 1.0)
    weights = fit_weights([first, second], targets)
    assert (weights >= 0).all() and weights.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(weights, [right_rows / 20, 1 - right_rows / 20], atol=1e-4)


def test_auto_weights_are_fitted_by_the_ensemble_and_said_to_be(tmp_path):
    targets = [0, 1] * 10
    write_run(tmp_path / "truth", one_hot_rows(targets, 2, 0.95), targets, one_hot_rows([0], 2, 0.95))
    write_run(tmp_path / "wrong", one_hot_rows([1 - t for t in targets], 2, 0.95), targets, one_hot_rows([1], 2, 0.95))
    result = ensemble_members(find_members([str(tmp_path)]), parse_weights("auto", 2))
    assert result.fitted
    assert result.weights[0] > 0.99 and result.weights.sum() == pytest.approx(1.0)
    assert result.table.set_index("name").loc["ensemble", "val_acc1"] == 100.0


def test_a_fold_sweep_is_one_member_its_oof_rows_and_mean_test_probabilities(tmp_path):
    sweep = tmp_path / "sweeps" / "lenet_digits-folds2"
    tests = {0: [[0.8, 0.2], [0.4, 0.6]], 1: [[0.6, 0.4], [0.2, 0.8]]}
    for fold in range(2):
        write_fold_run(sweep / "lenet_digits" / f"fold{fold}", fold, [f"train-{2 * fold}", f"train-{2 * fold + 1}"],
                       [0, 1], num_folds=2, test_probs=np.array(tests[fold], dtype=np.float32))
    # An ordinary run validated on the same four images, in another order.
    write_run(tmp_path / "other", one_hot_rows([1, 0, 1, 0], 2, 0.7), [1, 0, 1, 0],
              np.array([[0.5, 0.5], [0.5, 0.5]], dtype=np.float32), ids=["train-3", "train-2", "train-1", "train-0"],
              classes=FOLD_CLASSES, test_ids=["test-0", "test-1"])
    members = find_members([str(sweep), str(tmp_path / "other")])
    assert [member.name for member in members] == ["sweeps/lenet_digits-folds2 (2 folds)", "other"]
    assert members[0].val.ids == ["train-0", "train-1", "train-2", "train-3"]
    np.testing.assert_allclose(members[0].test.probs, [[0.7, 0.3], [0.3, 0.7]], atol=1e-7)
    result = ensemble_members(members, parse_weights("1,1", 2))
    assert result.val.ids == ["train-0", "train-1", "train-2", "train-3"]
    assert list(result.val.targets) == [0, 1, 0, 1]
    # The fold runs are 0.9 sure of the truth, the other run 0.7: 0.8 on every true class.
    np.testing.assert_allclose(result.val.probs[np.arange(4), result.val.targets], 0.8, atol=1e-6)
    np.testing.assert_allclose(result.test.probs, [[0.6, 0.4], [0.4, 0.6]], atol=1e-6)


def test_a_run_without_its_own_files_is_read_from_its_newest_eval_folder_of_its_best_checkpoint(tmp_path):
    run = tmp_path / "run"
    write_run(run, one_hot_rows([0, 1], 2, 0.8), [0, 1], one_hot_rows([0], 2, 0.8))
    for name in ("val_probs.csv", "test_probs.csv"):
        (run / "eval-20260101-000000").mkdir(exist_ok=True)
        (run / name).rename(run / "eval-20260101-000000" / name)
    write_probs_record(str(run / "eval-20260101-000000"), str(run / "best.pth"), "none", 1.0)
    write_run(run / "eval-20260202-000000", one_hot_rows([0, 1], 2, 0.6), [0, 1], one_hot_rows([0], 2, 0.6),
              config=False)
    write_probs_record(str(run / "eval-20260202-000000"), str(run / "best.pth"), "none", 1.0)
    # Newer, but of another checkpoint, and of no known checkpoint at all: not the run's.
    write_run(run / "eval-20260303-000000", one_hot_rows([0, 1], 2, 0.7), [0, 1], one_hot_rows([0], 2, 0.7),
              config=False)
    write_probs_record(str(run / "eval-20260303-000000"), str(run / "last.pth"), "none", 1.0)
    write_run(run / "eval-20260404-000000", one_hot_rows([0, 1], 2, 0.9), [0, 1], one_hot_rows([0], 2, 0.9),
              config=False)
    [member] = find_members([str(run)])
    np.testing.assert_allclose(member.test.probs, [[0.6, 0.4]])
    assert "eval-20260202-000000" in member.source


@pytest.fixture
def predictions(monkeypatch) -> list[tuple]:
    """Stands in for a checkpoint predicting (engine.from_checkpoint.predict_with_checkpoint): each
    call is recorded and writes an eval folder with its record, holding the probabilities saved in
    the checkpoint's folder halfway to uniform (0.8 becomes 0.65), so they differ from those."""
    calls: list[tuple] = []

    def predict(checkpoint, tta, device, data_path):
        calls.append((checkpoint, tta, device, data_path))
        folder = Path(checkpoint).parent
        out = folder / f"eval-2099010{len(calls)}-000000"
        out.mkdir()
        for name in ("val_probs.csv", "test_probs.csv"):
            saved = read_probs(str(folder / name))
            write_probs(str(out / name), saved.ids, 0.5 * saved.probs + 0.5 / len(saved.class_names),
                        saved.class_names, saved.targets)
        write_probs_record(str(out), checkpoint, tta or "none", 1.0)
        return str(out)

    monkeypatch.setattr(studies.ensemble_members, "predict_with_checkpoint", predict)
    return calls


def test_a_tta_the_saved_files_were_not_made_with_is_predicted_once_then_read(tmp_path, predictions):
    run = write_run(tmp_path / "run", one_hot_rows([0, 1], 2, 0.8), [0, 1], one_hot_rows([0], 2, 0.8))
    (run / "best.pth").write_bytes(b"weights")
    write_probs_record(str(run), str(run / "best.pth"), "none", 1.0)
    [member] = find_members([str(run)], Prediction(tta="none"))
    assert predictions == [] and "its run's" in member.source
    [member] = find_members([str(run)], Prediction(tta="hflip", device="cuda:1"))
    assert predictions == [(str(run / "best.pth"), "hflip", "cuda:1", None)]
    np.testing.assert_allclose(member.test.probs, [[0.65, 0.35]])
    assert "predicted now with TTA hflip" in member.source
    [member] = find_members([str(run)], Prediction(tta="hflip"))
    assert len(predictions) == 1 and "eval-20990101-000000" in member.source  # read back, not predicted again


def test_a_checkpoint_is_a_member_read_from_the_run_it_is_the_best_of_or_predicted(tmp_path, predictions,
                                                                                 monkeypatch):
    monkeypatch.setattr(studies.ensemble_members, "load_checkpoint", lambda path: {"config": "SEED: 3\n"})
    run = write_run(tmp_path / "run", one_hot_rows([0, 1], 2, 0.8), [0, 1], one_hot_rows([0], 2, 0.8))
    for name in ("best.pth", "last.pth"):
        (run / name).write_bytes(b"weights")
    write_probs_record(str(run), str(run / "best.pth"), "none", 1.0)
    best, last = find_members([str(run / "best.pth"), str(run / "last.pth")])
    assert (best.name, last.name) == ("best.pth", "last.pth") and best.config["SEED"] == 3
    np.testing.assert_allclose(best.test.probs, [[0.8, 0.2]])  # the run's own files are best.pth's
    np.testing.assert_allclose(last.test.probs, [[0.65, 0.35]])
    assert predictions == [(str(run / "last.pth"), None, "auto", None)]


def test_a_run_folder_and_its_best_checkpoint_are_one_member_given_twice(tmp_path):
    run = write_run(tmp_path / "run", one_hot_rows([0, 1], 2, 0.8), [0, 1], one_hot_rows([0], 2, 0.8))
    (run / "best.pth").write_bytes(b"weights")
    with pytest.raises(UserError, match="given twice"):
        find_members([str(run), str(run / "best.pth")])


def test_a_fold_sweep_predicts_only_the_folds_whose_files_do_not_match(tmp_path, predictions):
    sweep = tmp_path / "sweep"
    for fold in range(2):
        run = write_fold_run(sweep / f"fold{fold}", fold, [f"train-{2 * fold}", f"train-{2 * fold + 1}"], [0, 1],
                             num_folds=2, test_probs=np.array([[0.8, 0.2]], dtype=np.float32))
        (run / "best.pth").write_bytes(b"weights")
    write_probs_record(str(sweep / "fold0"), str(sweep / "fold0" / "best.pth"), "hflip", 1.0)
    [member] = find_members([str(sweep)], Prediction(tta="hflip"))
    assert predictions == [(str(sweep / "fold1" / "best.pth"), "hflip", "auto", None)]
    assert "1 of them predicted now" in member.source
    # fold 0 as saved (0.9 on the truth), fold 1 predicted (0.7); the test rows' mean of 0.8 and 0.65.
    np.testing.assert_allclose(member.val.probs[np.arange(4), member.val.targets], [0.9, 0.9, 0.7, 0.7], atol=1e-6)
    np.testing.assert_allclose(member.test.probs, [[0.725, 0.275]], atol=1e-6)


def test_the_outputs_are_the_submission_probabilities_table_and_picture(tmp_path):
    write_run(tmp_path / "runs" / "a", one_hot_rows([0, 1, 2], 3, 0.8), [0, 1, 2], one_hot_rows([2, 0], 3, 0.8))
    write_run(tmp_path / "runs" / "b", one_hot_rows([0, 1, 1], 3, 0.6), [0, 1, 2], one_hot_rows([2, 1], 3, 0.6))
    result = ensemble_members(find_members([str(tmp_path / "runs")]), parse_weights(None, 2))
    out = tmp_path / "out"
    written = write_ensemble_outputs(result, str(out))
    assert sorted(Path(path).name for path in written) == ["ensemble.csv", "ensemble.png", "submission.csv",
                                                           "test_probs.csv", "val_probs.csv"]
    with open(out / "submission.csv", newline="") as f:
        assert list(csv.reader(f)) == [["Id", "Category"], ["0", "2"], ["1", "0"]]
    test = read_probs(str(out / "test_probs.csv"), CLASSES[:3])
    np.testing.assert_allclose(test.probs, [[0.15, 0.15, 0.7], [0.5, 0.35, 0.15]], atol=1e-6)
    with open(out / "ensemble.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["name"] for row in rows] == ["a", "b", "ensemble"]
    assert [float(row["val_acc1"]) for row in rows] == pytest.approx([100.0, 200 / 3, 100.0], abs=1e-4)
    # The true class gets (0.8 + 0.6) / 2 on the first two images and (0.8 + 0.2) / 2 on the third.
    assert float(rows[2]["val_log_loss"]) == pytest.approx(-(2 * math.log(0.7) + math.log(0.5)) / 3, abs=1e-5)

    write_ensemble_outputs(result, str(out), submission_format="topk", top_k=2)  # a tie goes to the lower class
    with open(out / "submission.csv", newline="") as f:
        assert list(csv.reader(f)) == [["Id", "Category"], ["0", "2 0"], ["1", "0 1"]]
    write_ensemble_outputs(result, str(out), submission_format="probs")
    with open(out / "submission.csv", newline="") as f:
        assert next(csv.reader(f)) == ["Id", *CLASSES[:3]]


def test_the_picture_sets_the_ensemble_beside_its_members_on_acc1_and_log_loss():
    figure = ensemble_figure(["a", "b", "ensemble"], [50.0, 60.0, 70.0], [0.9, 0.8, float("nan")], title="three")
    acc_axis, loss_axis = figure.axes
    assert figure._suptitle.get_text() == "three"
    assert "acc@1" in acc_axis.get_title() and "log-loss" in loss_axis.get_title()
    for axis, widths in ((acc_axis, [50.0, 60.0, 70.0]), (loss_axis, [0.9, 0.8, 0.0])):
        bars = [patch for patch in axis.patches if isinstance(patch, Rectangle)]
        assert [bar.get_width() for bar in bars] == pytest.approx(widths)
        assert bars[-1].get_facecolor() != bars[0].get_facecolor()
    assert [label.get_text() for label in acc_axis.get_yticklabels()] == ["a", "b", "ensemble"]
    assert acc_axis.yaxis_inverted()  # the first member on top
    assert [text.get_text() for text in loss_axis.texts] == ["0.9000", "0.8000", "n/a"]
    assert acc_axis.get_xlim() == pytest.approx((10.0, 85.0))  # from 2 spreads below the lowest
    [legend] = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == ["member", "ensemble"]
    assert legend.get_patches()[1].get_facecolor() == acc_axis.patches[-1].get_facecolor()


def test_close_accuracies_get_an_axis_that_tells_them_apart_and_long_names_are_wrapped():
    names = ["output/sweeps/convnextv2_atto_digits-folds5 (5 folds)", "lenet_digits-folds5 (5 folds)", "ensemble"]
    figure = ensemble_figure(names, [98.89, 99.30, 99.17], [0.055, 0.039, 0.036])
    acc_axis, _ = figure.axes
    left, right = acc_axis.get_xlim()
    assert 97.0 < left < 98.89 and right > 99.30
    labels = [label.get_text() for label in acc_axis.get_yticklabels()]
    assert all(len(line) <= 32 for label in labels for line in label.split("\n"))
    assert labels[0] == "output/sweeps/\nconvnextv2_atto_digits-folds5 (5\nfolds)"
    FigureCanvasAgg(figure).draw()
    # Wrapped names stay inside the figure.
    for label in acc_axis.get_yticklabels():
        assert label.get_window_extent().x0 >= 0


def test_weights_given_are_normalised_to_sum_to_one():
    np.testing.assert_allclose(parse_weights("2, 6", 2), [0.25, 0.75])
    np.testing.assert_allclose(parse_weights("0,1,0", 3), [0, 1, 0])
    np.testing.assert_allclose(parse_weights(None, 4), [0.25] * 4)
    assert parse_weights("auto", 3) is None
