"""The on-disk formats that main.py's data sets read, written from arrays: CIFAR-10's and CIFAR-100's
pickled batches, the MediumImageNet HDF5 file, image files, a CSV of labels and a pairs file.

bench/fake_data.py fills them with images that carry a class signal; the tests' fixtures
(tests/conftest.py) fill them with the edge cases they check. Images are uint8 (N, 3, S, S), the
layout the loaders return; the files are what the real data sets hold, so the real loaders read them.
"""
from __future__ import annotations

import csv
import pickle
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from data.cifar import CIFAR_VARIANTS
from data.medium_imagenet import CLASS_NAME_KEYS, TEST_IDS_KEY

CIFAR_SIZE = 32
CIFAR_PIXELS = 3 * CIFAR_SIZE * CIFAR_SIZE  # 3072 bytes per row: the R plane, then G, then B
CIFAR10_FOLDER = CIFAR_VARIANTS["cifar10"].folder
CIFAR100_FOLDER = CIFAR_VARIANTS["cifar100"].folder
CIFAR10_LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_TRAIN_BATCHES = 5  # data_batch_1 .. data_batch_5


def _write_pickle(path: Path, obj: dict) -> None:
    # Protocol 2, as the official (Python 2) files: torchvision reads them with encoding="latin1".
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """(N, 3, 32, 32) images as the (N, 3072) uint8 rows that the CIFAR pickles hold."""
    return np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), CIFAR_PIXELS)


def save_cifar10(root: str | Path, train_images: np.ndarray, train_labels: Iterable[int], test_images: np.ndarray,
                 test_labels: Iterable[int], label_names: list[str] | list[bytes] = CIFAR10_LABEL_NAMES) -> Path:
    """Write `root`/cifar-10-batches-py as the official archive lays it out; returns that folder.

    The train images are shared out in order among data_batch_1..5 (their count must divide by 5);
    each batch file, and test_batch, is a pickled dict of "data" (N, 3072) uint8, "labels",
    "batch_label" and "filenames"; batches.meta holds "label_names" and "num_cases_per_batch".
    """
    train_labels, test_labels = [int(label) for label in train_labels], [int(label) for label in test_labels]
    if len(train_images) % CIFAR10_TRAIN_BATCHES:
        raise ValueError(f"{len(train_images)} train images do not share out among {CIFAR10_TRAIN_BATCHES} batches")
    per_batch = len(train_images) // CIFAR10_TRAIN_BATCHES
    folder = Path(root) / CIFAR10_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rows = cifar_rows(train_images)
    for number in range(1, CIFAR10_TRAIN_BATCHES + 1):
        batch = slice((number - 1) * per_batch, number * per_batch)
        _write_pickle(folder / f"data_batch_{number}", {
            "batch_label": f"training batch {number} of {CIFAR10_TRAIN_BATCHES}",
            "labels": train_labels[batch],
            "data": rows[batch],
            "filenames": [f"train_{number}_{i}.png" for i in range(per_batch)],
        })
    _write_pickle(folder / "test_batch", {
        "batch_label": "testing batch 1 of 1",
        "labels": test_labels,
        "data": cifar_rows(test_images),
        "filenames": [f"test_{i}.png" for i in range(len(test_images))],
    })
    _write_pickle(folder / "batches.meta", {"label_names": list(label_names), "num_cases_per_batch": per_batch,
                                            "num_vis": CIFAR_PIXELS})
    return folder


def save_cifar100(root: str | Path, splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                  fine_label_names: list[str], coarse_label_names: list[str]) -> Path:
    """Write `root`/cifar-100-python (train, test, meta) as the official archive lays it out; returns
    that folder. `splits` maps "train" and "test" to (images, fine labels, coarse labels).

    train and test hold "data" (N, 3072) uint8, "fine_labels", "coarse_labels", "batch_label" and
    "filenames"; meta holds "fine_label_names" and "coarse_label_names".
    """
    folder = Path(root) / CIFAR100_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for split, (images, fine, coarse) in splits.items():
        _write_pickle(folder / split, {
            "filenames": [f"{split}_{i}.png" for i in range(len(images))],
            "batch_label": f"{split}ing batch 1 of 1",
            "fine_labels": [int(x) for x in fine],
            "coarse_labels": [int(x) for x in coarse],
            "data": cifar_rows(images),
        })
    _write_pickle(folder / "meta", {"fine_label_names": list(fine_label_names),
                                    "coarse_label_names": list(coarse_label_names)})
    return folder


def medium_imagenet_datasets(images: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                             channels_last: bool = False, class_names: list[str] | None = None,
                             test_ids: list[str] | None = None) -> dict[str, np.ndarray]:
    """{HDF5 dataset name: array} of a MediumImageNet file: `images-{split}` uint8, stored (N, 3, S, S)
    or with `channels_last` (N, S, S, 3); `labels-{split}` for the labelled splits; and, when given,
    the class names and the test images' ids as UTF-8 strings (as scripts/to_hdf5.py writes them)."""
    import h5py

    datasets = {}
    for split, array in images.items():
        datasets[f"images-{split}"] = np.ascontiguousarray(array.transpose(0, 2, 3, 1)) if channels_last else array
    for split, array in labels.items():
        datasets[f"labels-{split}"] = np.asarray(array, dtype=np.int64)
    text = h5py.string_dtype("utf-8")
    if class_names is not None:
        datasets[CLASS_NAME_KEYS[0]] = np.array(class_names, dtype=text)
    if test_ids is not None:
        datasets[TEST_IDS_KEY] = np.array(test_ids, dtype=text)
    return datasets


def save_hdf5(path: str | Path, datasets: dict[str, np.ndarray]) -> Path:
    """Write each array of `datasets` under its name into a new HDF5 file at `path`; returns the path."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for key, array in datasets.items():
            f.create_dataset(key, data=array)
    return path


def save_image(path: str | Path, image: np.ndarray) -> None:
    """One (3, H, W) uint8 image as the file `path` (its ending picks the format; JPEGs at quality 95)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).save(path, quality=95)


def save_images(folder: str | Path, images: np.ndarray, names: list[str]) -> list[str]:
    """Each image as `folder`/its name (which may hold sub-folders); returns the names."""
    for image, name in zip(images, names, strict=True):
        save_image(Path(folder) / name, image)
    return names


def save_csv(path: str | Path, header: list[str], rows: Iterable[Iterable]) -> Path:
    """A CSV file of `header` and `rows`, as spreadsheet programs and pandas write it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def save_pairs_file(path: str | Path, pairs: Iterable[tuple[str, str, bool | None]]) -> Path:
    """A pairs file (data/pairs.py): one `img_a img_b 1|0` line per pair, 1 for the same identity, or
    `img_a img_b` where the label is None (unlabelled pairs, to predict)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{first} {second}" + ("" if same is None else f" {int(same)}") for first, second, same in pairs]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
