"""Classify, then verify: the two-stage digits workflow, metric losses and the P×K sampler through
main.py, verification pairs files and their submission, --export-embeddings, and their bad input."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import engine.tracking
import main
from config import get_config
from data import build_loader
from data.build import data_source
from data.digits import load_digits_arrays
from data.registry import DATASETS
from tests.conftest import IMAGE_FOLDER_CLASSES, write_image_folder

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")
REPO = Path(__file__).resolve().parents[2]
CLASSIFY = str(REPO / "configs" / "digits_verify_classify.yaml")
ARCFACE = str(REPO / "configs" / "digits_verify_arcface.yaml")
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
QUIET = ["WANDB.MODE", "disabled"]
STAGE2_CURVES = []  # the figures stage 2 drew as its curves.png, in order


def run(tmp_path: Path, cfg: str, tag: str, *opts: str, flags: tuple[str, ...] = ()) -> int:
    return main.main(["--cfg", cfg, "--output", str(tmp_path), "--tag", tag, "--device", "cpu", *flags,
                      "--opts", *QUIET, *opts])


def metrics_of(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def two_stages(tmp_path_factory) -> tuple[Path, Path]:
    """The README's two commands, as shipped: a classifier on digits 0-6, then ArcFace from its best.pth."""
    out = tmp_path_factory.mktemp("verify")
    assert run(out, CLASSIFY, "classify") == 0
    classify = out / "lenet_digits" / "classify"
    real_curves = engine.tracking.curves_figure
    with pytest.MonkeyPatch.context() as patch:  # keep stage 2's last curves.png as a Figure
        patch.setattr(engine.tracking, "curves_figure",
                      lambda *args, **labels: STAGE2_CURVES.append(real_curves(*args, **labels)) or STAGE2_CURVES[-1])
        assert run(out, ARCFACE, "arcface", "MODEL.PRETRAINED", str(classify / "best.pth")) == 0
    return classify, out / "lenet_digits" / "arcface"


def test_an_arcface_runs_curves_draw_its_two_losses_apart_and_mark_the_best_verify_auc(two_stages):
    _, arcface = two_stages
    figure, rows = STAGE2_CURVES[-1], metrics_of(arcface)
    train_loss, val_loss, accuracy, verification = figure.axes
    assert train_loss.get_ylabel() == "train loss (arcface)" and val_loss.get_ylabel() == "val loss (cross-entropy)"
    assert list(train_loss.get_lines()[0].get_ydata()) == [row["train_loss"] for row in rows]
    assert list(val_loss.get_lines()[0].get_ydata()) == [row["val_loss"] for row in rows]
    assert accuracy.get_ylabel() == "acc@1 (%)" and verification.get_ylabel() == "verification AUC, EER"
    auc = [line for line in verification.get_lines() if line.get_label() == "AUC"][0]
    assert list(auc.get_ydata()) == [row["verify_auc"] for row in rows]
    summary = json.loads((arcface / "summary.json").read_text())
    best = max(rows, key=lambda row: row["verify_auc"])  # the first epoch of the best AUC, as best.pth
    star = [line for line in verification.get_lines() if line.get_marker() == "*"][0]
    assert list(star.get_xdata()) == [best["epoch"] + 1] and list(star.get_ydata()) == [best["verify_auc"]]
    assert summary["best_verify_auc"] == pytest.approx(best["verify_auc"])
    for axis in figure.axes:
        assert f"best.pth (epoch {best['epoch'] + 1})" in [text.get_text() for text in axis.get_legend().get_texts()]


def test_digits_with_7_to_9_held_out_verify_unseen_digits_after_classification_then_arcface(two_stages):
    classify, arcface = two_stages
    assert json.loads((classify / "classes.json").read_text()) == [str(digit) for digit in range(7)]
    torch_state = torch.load(classify / "best.pth", weights_only=True)
    assert torch_state["model"]["fc.weight"].shape[0] == 7  # the held-out digits have no output
    stage1, stage2 = metrics_of(classify), metrics_of(arcface)
    assert all(0.0 <= row["verify_auc"] <= 1.0 and 0.0 <= row["verify_eer"] <= 1.0 for row in stage1 + stage2)
    assert {"verify_tar", "verify_acc", "verify_threshold"} <= set(stage2[0])
    # Chance is 0.5; plain cross-entropy features already separate unseen digits somewhat.
    best_stage1 = json.loads((classify / "summary.json").read_text())["best_verify_auc"]
    best_stage2 = json.loads((arcface / "summary.json").read_text())["best_verify_auc"]
    assert best_stage1 > 0.65 and best_stage2 >= 0.75, (best_stage1, best_stage2)
    # Stage 2 keeps the epoch of the best AUC: best.pth holds it, and its final report scores it.
    checkpoint = torch.load(arcface / "best.pth", weights_only=True)
    assert checkpoint["best_metric"] == "verify_auc" and checkpoint["best_score"] == pytest.approx(best_stage2)
    assert "arcface.W" in checkpoint["loss"] and checkpoint["loss"]["arcface.W"].shape == (84, 7)
    log = (arcface / "log.txt").read_text()
    assert "verification on 2000 holdout pairs: AUC" in log and f"best verify AUC {best_stage2:.4f}" in log
    assert (arcface / "roc.png").stat().st_size > 0 and (arcface / "submission.csv").is_file()


def test_export_embeddings_writes_unit_vectors_with_the_held_out_digits_labels_and_ids(two_stages, capsys):
    classify, _ = two_stages
    assert main.main(["--resume", str(classify / "best.pth"), "--export-embeddings", "holdout", "--device", "cpu"]) == 0
    path = next(classify.glob("eval-*/embeddings_holdout.h5"))
    with h5py.File(path) as f:
        embeddings, labels, ids = f["embeddings"][:], f["labels"][:], f["ids"].asstr()[:]
        assert f.attrs["split"] == "holdout"
    # The held-out digits of the train split (the digits' test split is its fixed other 20%).
    splits, _ = DATASETS["digits"].load(data_source(get_config(CLASSIFY)))
    train_labels = splits["train"][1]
    assert embeddings.shape == (int(np.isin(train_labels, [7, 8, 9]).sum()), 84)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert set(labels.tolist()) == {7, 8, 9} and len(ids) == len(labels) == len(set(ids))
    assert "embeddings of 84 dimensions written" in capsys.readouterr().out


def test_resuming_an_arcface_run_restores_its_class_centres_exactly(tmp_path):
    opts = ["TRAIN.LOSS", "ce+arcface", "TRAIN.LOSS_WEIGHTS", "(1.0, 0.5)", "TRAIN.LR_SCHEDULER.NAME", "constant",
            "TRAIN.WARMUP_EPOCHS", "0", "TRAIN.MAX_STEPS_PER_EPOCH", "4", "MODEL.EMBED_DIM", "16"]
    assert run(tmp_path, QUICKSTART, "straight", "TRAIN.EPOCHS", "2", *opts) == 0
    assert run(tmp_path, QUICKSTART, "resumed", "TRAIN.EPOCHS", "1", *opts) == 0
    resumed = tmp_path / "lenet_digits" / "resumed"
    first = torch.load(resumed / "last.pth", weights_only=True)
    assert run(tmp_path, QUICKSTART, "resumed", "TRAIN.EPOCHS", "2", *opts,
               flags=("--resume", "auto")) == 0
    straight = torch.load(tmp_path / "lenet_digits" / "straight" / "last.pth", weights_only=True)
    second = torch.load(resumed / "last.pth", weights_only=True)
    centres = "arcface.W"
    assert straight["loss"][centres].shape == (16, 10)
    assert not torch.equal(first["loss"][centres], second["loss"][centres])  # epoch 2 trained them
    assert torch.equal(straight["loss"][centres], second["loss"][centres])
    assert all(torch.equal(straight["model"][key], second["model"][key]) for key in straight["model"])
    # The optimizer holds the centres' momentum too: one state more than the model has parameters.
    assert len(second["optimizer"]["state"]) == len([k for k in second["model"] if "running" not in k
                                                     and "num_batches" not in k]) + 1


def test_the_pk_sampler_feeds_triplet_loss_batches_of_p_digits_by_k_images(tmp_path, capsys):
    opts = ["DATA.SAMPLER", "pk", "DATA.IMAGES_PER_CLASS", "4", "DATA.BATCH_SIZE", "32"]
    cfg = get_config(QUICKSTART, ["DEVICE", "cpu", *opts])
    images, labels = next(iter(build_loader(cfg).train_loader))
    counts = np.bincount(labels.numpy(), minlength=10)
    assert images.shape[0] == 32 and sorted(counts[counts > 0].tolist()) == [4] * 8
    assert run(tmp_path, QUICKSTART, "triplet", "TRAIN.LOSS", "triplet", "TRAIN.EPOCHS", "1",
               "TRAIN.MAX_STEPS_PER_EPOCH", "5", *opts) == 0
    log = (tmp_path / "lenet_digits" / "triplet" / "log.txt").read_text()
    assert "DATA.SAMPLER pk: batches of 8 classes x 4 images" in log
    assert np.isfinite(metrics_of(tmp_path / "lenet_digits" / "triplet")[0]["train_loss"])


@pytest.mark.parametrize("opts, expected", [
    (["TRAIN.LOSS", "ce+arcfce"], "TRAIN.LOSS 'ce+arcfce' has an unknown term 'arcfce'; valid terms: ce, arcface, "
                                  "cosface, triplet"),
    (["TRAIN.LOSS", "triplet"], "TRAIN.LOSS triplet needs batches holding several images of each class; set "
                                "DATA.SAMPLER pk"),
    (["TRAIN.LOSS", "arcface", "AUG.MIXUP", "0.2"], "AUG.MIXUP and AUG.CUTMIX blend"),
    (["DATA.HOLDOUT_CLASSES", "[7, 11]"], "DATA.HOLDOUT_CLASSES names '11', which is not a class of the data set"),
    (["DATA.SAMPLER", "pk", "DATA.IMAGES_PER_CLASS", "4", "DATA.BATCH_SIZE", "48"],
     "fills each batch with 12 classes of DATA.IMAGES_PER_CLASS = 4 images, but only 10 classes"),
    (["DATA.SAMPLER", "pk", "DATA.IMAGES_PER_CLASS", "5", "DATA.BATCH_SIZE", "32"],
     "DATA.BATCH_SIZE (32) must be a multiple of it"),
    (["TEST.SELECT_METRIC", "verify_auc"], "TEST.SELECT_METRIC verify_auc needs verification pairs"),
])
def test_verification_settings_that_cannot_work_are_one_line_before_training(tmp_path, capsys, opts, expected):
    assert run(tmp_path, QUICKSTART, "bad", *opts) == 2
    assert expected in error_line(capsys)
    assert not (tmp_path / "lenet_digits" / "bad" / "last.pth").exists()


def folder_with_pairs(tmp_path: Path) -> tuple[Path, list[str]]:
    """A class-folder data set with a labelled pairs file of its train images and an unlabelled
    one of its test images; returns (root, the unlabelled pairs' "img_a img_b" names)."""
    root = write_image_folder(tmp_path / "data")
    train = {name: sorted(f"train/{name}/{file}" for file in os.listdir(root / "train" / name)
                          if file.startswith(name)) for name in IMAGE_FOLDER_CLASSES}
    lines = []
    for i in range(6):
        name, other = IMAGE_FOLDER_CLASSES[i % 3], IMAGE_FOLDER_CLASSES[(i + 1) % 3]
        lines += [f"{train[name][i]} {train[name][i + 1]} 1", f"{train[name][i]} {train[other][i]} 0"]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    tests = sorted(f"test/{file}" for file in os.listdir(root / "test"))
    names = [f"{tests[i]} {tests[i + 1]}" for i in range(len(tests) - 1)]
    (root / "test_pairs.txt").write_text("\n".join(names) + "\n")
    return root, names


def folder_opts(root: Path) -> list[str]:
    return ["DATA.DATASET", "imagefolder", "DATA.DATA_PATH", str(root), "DATA.IMG_SIZE", "16", "DATA.VAL_SPLIT",
            "0.25", "DATA.VERIFY_PAIRS", "pairs.txt", "DATA.VERIFY_TEST_PAIRS", "test_pairs.txt",
            "SUBMISSION.VERIFY_ID", "pair", "SUBMISSION.VERIFY_HEADER", "pair,similarity", "TRAIN.EPOCHS", "2",
            "MODEL.EMBED_DIM", "8", "TRAIN.LOSS", "ce+cosface", "TEST.SELECT_METRIC", "verify_eer"]


def read_verify_submission(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_pairs_files_are_scored_every_epoch_and_their_test_pairs_submitted(tmp_path):
    root, names = folder_with_pairs(tmp_path)
    assert run(tmp_path / "out", QUICKSTART, "pairs", *folder_opts(root)) == 0
    folder = tmp_path / "out" / "lenet_imagefolder" / "pairs"
    rows = metrics_of(folder)
    assert len(rows) == 2 and all("verify_eer" in row and "verify_auc" in row for row in rows)
    assert torch.load(folder / "best.pth", weights_only=True)["best_metric"] == "verify_eer"
    submission = read_verify_submission(folder / "verify_submission.csv")
    assert submission[0] == ["pair", "similarity"] and [row[0] for row in submission[1:]] == names
    assert all(-1.0 <= float(row[1]) <= 1.0 for row in submission[1:])
    assert "verification on 12 verify pairs" in (folder / "log.txt").read_text()
    # --predict from the best checkpoint writes the same file; --eval scores the labelled pairs.
    assert main.main(["--resume", str(folder / "best.pth"), "--predict", "--eval", "--device", "cpu"]) == 0
    eval_dir = next(folder.glob("eval-*"))
    assert read_verify_submission(eval_dir / "verify_submission.csv") == submission
    assert (eval_dir / "roc.png").is_file()


@pytest.mark.parametrize("line, expected", [
    ("train/cat/missing.jpg train/dog/dog_000.jpg 1", "pairs.txt:2: "),
    ("train/cat/cat_000.jpg train/dog/dog_000.jpg maybe", "pairs.txt:2: "),
    ("train/cat/cat_000.jpg", "pairs.txt:2: "),
])
def test_a_bad_pairs_file_line_is_one_line_naming_the_file_and_line(tmp_path, capsys, line, expected):
    root, _ = folder_with_pairs(tmp_path)
    (root / "pairs.txt").write_text(f"train/cat/cat_000.jpg train/dog/dog_000.jpg 0\n{line}\n")
    assert run(tmp_path / "out", QUICKSTART, "bad", *folder_opts(root)) == 2
    message = error_line(capsys)
    assert expected in message and str(root / "pairs.txt") in message


def test_digits_hold_out_classes_out_of_every_split_and_relabel_the_rest():
    cfg = get_config(CLASSIFY, ["DEVICE", "cpu"])
    loaders = build_loader(cfg)
    assert loaders.class_names == [str(digit) for digit in range(7)] and loaders.num_classes == 7
    for dataset in (loaders.train_dataset, loaders.val_dataset, loaders.test_dataset):
        assert set(dataset.labels[dataset.indices].tolist()) == set(range(7))
    holdout = loaders.holdout_dataset
    _, labels = load_digits_arrays(8)
    held_out = int(np.isin(labels, [7, 8, 9]).sum())
    assert 0 < len(holdout) < held_out and set(holdout.labels[holdout.indices].tolist()) == {7, 8, 9}
    pairs = loaders.verify_pairs
    assert pairs.split == "holdout" and len(pairs.first) == 2000 and pairs.same.sum() == 1000
    assert (pairs.first < len(holdout)).all() and (pairs.second < len(holdout)).all()


def test_offline_wandb_gets_the_verification_metrics_and_the_roc_curve_every_epoch(tmp_path):
    assert main.main(["--cfg", QUICKSTART, "--output", str(tmp_path), "--tag", "wandb", "--device", "cpu", "--opts",
                      "WANDB.MODE", "offline", "DATA.HOLDOUT_CLASSES", "[8, 9]", "TEST.VERIFY_NUM_PAIRS", "200",
                      "TRAIN.EPOCHS", "2", "TRAIN.MAX_STEPS_PER_EPOCH", "3"]) == 0
    (offline,) = (tmp_path / "lenet_digits" / "wandb" / "wandb").glob("offline-run-*")
    # One ROC per epoch, and the end of the run's, from the weights its report used.
    assert len(list(offline.glob("files/media/images/roc_*.png"))) == 3
    assert {"verify_auc", "verify_eer", "verify_tar"} <= set(metrics_of(tmp_path / "lenet_digits" / "wandb")[-1])


def test_a_pairs_file_with_only_one_kind_of_pair_is_one_line(tmp_path, capsys):
    root, _ = folder_with_pairs(tmp_path)
    (root / "pairs.txt").write_text("train/cat/cat_000.jpg train/cat/cat_001.png 1\n")
    assert run(tmp_path / "out", QUICKSTART, "bad", *folder_opts(root)) == 2
    assert "labels every pair 1, so no ROC curve can be drawn" in error_line(capsys)
