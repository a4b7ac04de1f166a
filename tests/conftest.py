"""Shared fixtures: tiny data sets written in the real on-disk formats.

The real loaders (torchvision's CIFAR classes, h5py) read these files, so nothing is mocked and
nothing is downloaded.

- `cifar10` / `cifar100`: a `CifarFixture` with `.root` (the folder that holds
  `cifar-10-batches-py` / `cifar-100-python`) and the arrays written; `cifar10_root` and
  `cifar100_root` are just the root folders.
- `medium_imagenet_factory`: `make(name="medium-imagenet.hdf5", **options)` writes an HDF5 file
  under tmp_path and returns a `MediumImageNetFixture`; see `write_medium_imagenet` for the
  options (channels-last layout, missing datasets, replaced datasets for broken variants).
- `medium_imagenet`: the default file (channels-first, 40/12/9 images of 16 px);
  `medium_imagenet_file` is its path.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

# `python -m pytest` puts the repository root on sys.path; plain `pytest` does not.
REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


def _threads_per_worker() -> int | None:
    """Under pytest-xdist, the cores shared out between the workers (at least one each), so that
    the workers' OpenMP teams do not fight over the same cores; None in a one-process run."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        return None
    return max(1, (os.cpu_count() or 1) // int(workers))


_THREADS = _threads_per_worker()
if _THREADS is not None:
    # Before torch is imported, so that its thread pool, and every main.py or torchrun this worker
    # starts as a subprocess, takes the worker's share.
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(_THREADS)

# Folders whose tests run main.py end to end (or the scripts that wrap it): `make test-fast` leaves them out.
SLOW_FOLDERS = ("end_to_end",)


@pytest.fixture(scope="session", autouse=True)
def no_wandb_login(tmp_path_factory):
    """Hide any W&B login of the machine that runs the tests, so that WANDB.MODE auto (the default)
    resolves offline and no test reaches W&B's servers. Session-wide, before the module fixtures
    that train runs; main.py subprocesses inherit it. A test may still set a fake login."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE", "WANDB_BASE_URL"):
            patch.delenv(name, raising=False)
        patch.setenv("NETRC", str(tmp_path_factory.mktemp("no-wandb-login") / "netrc"))  # never written
        yield


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains a model end to end; `make test-fast` leaves it out "
                                       "(-m 'not slow'), `make test` runs it")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(folder in item.path.parts for folder in SLOW_FOLDERS):
            item.add_marker(pytest.mark.slow)
    if _THREADS is not None:
        import torch
        torch.set_num_threads(_THREADS)

# The writers of the real on-disk formats, shared with bench/fake_data.py; imported after the thread
# settings above, since they import torchvision.
from bench.fake_formats import (CIFAR10_LABEL_NAMES, CIFAR_PIXELS, CIFAR_SIZE,  # noqa: E402
                                medium_imagenet_datasets, save_cifar10, save_cifar100, save_hdf5)

MEDIUM_IMAGENET_SIZE = 16
MEDIUM_IMAGENET_COUNTS = {"train": 40, "val": 12, "test": 9}
MEDIUM_IMAGENET_CLASSES = 200


@dataclass
class CifarFixture:
    """What a CIFAR fixture wrote. Images are uint8 (N, 3, 32, 32), the layout the loader returns."""
    root: Path  # the folder holding the extracted folder (what DATA.DATA_PATH names)
    folder: Path  # root / cifar-10-batches-py or root / cifar-100-python
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    train_coarse_labels: np.ndarray | None = None  # CIFAR-100 only
    files: list[str] = field(default_factory=list)  # names of the pickled files in `folder`


def _cifar_rows(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` random images as the (N, 3072) uint8 rows that the CIFAR pickles hold."""
    return rng.integers(0, 256, size=(count, CIFAR_PIXELS), dtype=np.uint8)


def cifar_marker_row() -> np.ndarray:
    """One image whose three planes differ, to check that rows are decoded channel-first.

    R holds a gradient over the whole plane, G a constant 7 and B a constant 200.
    """
    plane = CIFAR_SIZE * CIFAR_SIZE
    row = np.empty(CIFAR_PIXELS, np.uint8)
    row[:plane] = np.arange(plane) % 251
    row[plane:2 * plane] = 7
    row[2 * plane:] = 200
    return row


def write_cifar10(root: Path, per_batch: int = 10, num_test: int = 10, seed: int = 0,
                  label_names_as_bytes: bool = False) -> CifarFixture:
    """Write `root/cifar-10-batches-py` as the official archive lays it out, with small batches of
    random images (bench/fake_formats.save_cifar10): data_batch_1..5 of `per_batch` images with
    random labels, and test_batch of `num_test` holding every class in order.

    The first image of data_batch_1 is `cifar_marker_row()`. With `label_names_as_bytes`, the label
    names are bytes (b"cat"), as a Python 3 script that builds such a file from bytes writes them.
    """
    rng = np.random.default_rng(seed)
    train_rows, train_labels = [], []
    for number in range(1, 6):
        rows = _cifar_rows(rng, per_batch)
        labels = [int(x) for x in rng.integers(0, 10, size=per_batch)]
        if number == 1:
            rows[0], labels[0] = cifar_marker_row(), 9
        train_rows.append(rows)
        train_labels.extend(labels)
    test_rows = _cifar_rows(rng, num_test)
    test_labels = [i % 10 for i in range(num_test)]  # every class, in order
    train_images = np.concatenate(train_rows).reshape(-1, 3, CIFAR_SIZE, CIFAR_SIZE)
    test_images = test_rows.reshape(-1, 3, CIFAR_SIZE, CIFAR_SIZE)
    label_names = [name.encode() for name in CIFAR10_LABEL_NAMES] if label_names_as_bytes else CIFAR10_LABEL_NAMES
    folder = save_cifar10(root, train_images, train_labels, test_images, test_labels, label_names)
    return CifarFixture(
        root=Path(root), folder=folder, train_images=train_images,
        train_labels=np.asarray(train_labels, np.int64), test_images=test_images,
        test_labels=np.asarray(test_labels, np.int64),
        files=[f"data_batch_{number}" for number in range(1, 6)] + ["test_batch", "batches.meta"])


def write_cifar100(root: Path, num_train: int = 20, num_test: int = 10, seed: int = 1) -> CifarFixture:
    """Write `root/cifar-100-python` (train, test, meta) as the official archive lays it out, with
    random images (bench/fake_formats.save_cifar100).

    Coarse labels differ from fine ones, so a loader that read the wrong list would be caught. The
    first train image is `cifar_marker_row()`, and the first two train labels are 99 and 0.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in (("train", num_train), ("test", num_test)):
        rows = _cifar_rows(rng, count)
        fine = rng.integers(0, 100, size=count)
        if split == "train":
            rows[0] = cifar_marker_row()
            fine[0], fine[1] = 99, 0  # both ends of the range
        coarse = (fine + 1) % 20  # never equal to the fine label
        arrays[split] = rows.reshape(-1, 3, CIFAR_SIZE, CIFAR_SIZE), fine.astype(np.int64), coarse.astype(np.int64)
    folder = save_cifar100(root, arrays, [f"fine_{i}" for i in range(100)], [f"coarse_{i}" for i in range(20)])
    return CifarFixture(
        root=Path(root), folder=folder,
        train_images=arrays["train"][0], train_labels=arrays["train"][1],
        test_images=arrays["test"][0], test_labels=arrays["test"][1],
        train_coarse_labels=arrays["train"][2], files=["train", "test", "meta"])


@pytest.fixture
def to_hdf5():
    """scripts/to_hdf5.py as a module, to call its main(argv) in-process."""
    spec = importlib.util.spec_from_file_location("to_hdf5", os.path.join(REPO_ROOT, "scripts", "to_hdf5.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_torch_thread():
    """Tiny convolutions run fastest on one thread, and do not stall when another process busies a core."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cifar10(tmp_path) -> CifarFixture:
    return write_cifar10(tmp_path / "cifar")


@pytest.fixture
def cifar10_root(cifar10) -> Path:
    """The folder that holds cifar-10-batches-py."""
    return cifar10.root


@pytest.fixture
def cifar100(tmp_path) -> CifarFixture:
    return write_cifar100(tmp_path / "cifar100")


@pytest.fixture
def cifar100_root(cifar100) -> Path:
    """The folder that holds cifar-100-python."""
    return cifar100.root


@dataclass
class MediumImageNetFixture:
    """What a MediumImageNet fixture wrote.

    `images[split]` is always channels-first uint8 (N, 3, S, S), whatever the file's layout;
    `labels[split]` is int64 (N,), for train and val only.
    """
    path: Path
    size: int
    channels_last: bool
    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]


def medium_imagenet_arrays(size: int = MEDIUM_IMAGENET_SIZE, counts: dict[str, int] | None = None,
                           seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Random channels-first images and labels in 0..199 for each split (no test labels).

    Every image is different, and the train labels include 0 and 199.
    """
    counts = {**MEDIUM_IMAGENET_COUNTS, **(counts or {})}
    rng = np.random.default_rng(seed)
    images, labels = {}, {}
    for split, count in counts.items():
        images[split] = rng.integers(0, 256, size=(count, 3, size, size), dtype=np.uint8)
        if split != "test":
            labels[split] = rng.integers(0, MEDIUM_IMAGENET_CLASSES, size=count).astype(np.int64)
    if len(labels["train"]) >= 2:
        labels["train"][0], labels["train"][-1] = 0, MEDIUM_IMAGENET_CLASSES - 1
    return images, labels


def write_medium_imagenet(path: Path, *, size: int = MEDIUM_IMAGENET_SIZE, counts: dict[str, int] | None = None,
                          channels_last: bool = False, seed: int = 0, omit: tuple[str, ...] = (),
                          replace: dict[str, np.ndarray] | None = None) -> MediumImageNetFixture:
    """Write a MediumImageNet HDF5 file: images-{train,val,test} uint8 and labels-{train,val}.

    Images are stored (N, 3, S, S), or (N, S, S, 3) with `channels_last`. `counts` overrides the
    number of images per split. For broken files: `omit` leaves out datasets by key
    (e.g. "labels-val"), and `replace` writes the given array under a key instead of the
    regular one (e.g. a wrong shape or a wrong number of labels). The returned fixture
    describes the regular data, not the replacements.
    """
    images, labels = medium_imagenet_arrays(size, counts, seed)
    datasets = {**medium_imagenet_datasets(images, labels, channels_last), **(replace or {})}
    path = save_hdf5(path, {key: array for key, array in datasets.items() if key not in omit})
    return MediumImageNetFixture(path, size, channels_last, images, labels)


@pytest.fixture
def medium_imagenet_factory(tmp_path) -> Callable[..., MediumImageNetFixture]:
    """make(name="medium-imagenet.hdf5", **options): write_medium_imagenet(tmp_path / name, ...).

    `name` may include sub-folders, e.g. "data/medium-imagenet-nmep-96.hdf5".
    """
    def make(name: str = "medium-imagenet.hdf5", **options) -> MediumImageNetFixture:
        return write_medium_imagenet(tmp_path / name, **options)
    return make


@pytest.fixture
def medium_imagenet(medium_imagenet_factory) -> MediumImageNetFixture:
    """The default file: channels-first, 40 train / 12 val / 9 test images of 16 px."""
    return medium_imagenet_factory()


@pytest.fixture
def medium_imagenet_file(medium_imagenet) -> Path:
    """Path of the default MediumImageNet HDF5 file."""
    return medium_imagenet.path


# --- class folders of image files (DATA.DATASET imagefolder) ---------------------------------------

IMAGE_FOLDER_CLASSES = ["cat", "dog", "zebra"]  # folder names; sorted, they are the labels 0, 1, 2
# Each class is one colour channel turned up, so that a LeNet tells them apart in a few epochs.
CLASS_CHANNEL = {"cat": 0, "dog": 1, "zebra": 2}


def class_image(rng: np.random.Generator, name: str, height: int = 20, width: int = 24) -> np.ndarray:
    pixels = rng.integers(0, 90, (height, width, 3), dtype=np.uint8)
    pixels[..., CLASS_CHANNEL[name]] += 160
    return pixels


def write_image_folder(root: Path, per_class: int = 12, val_per_class: int = 0, num_test: int = 7) -> Path:
    """train/<class>/ with JPEGs and PNGs (one grayscale PNG and one RGBA PNG in cat), optional
    val/<class>/, and a flat test/ folder; returns root."""
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("val", val_per_class)):
        for name in IMAGE_FOLDER_CLASSES if count else []:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = class_image(rng, name)
                extension = ".png" if i % 2 else ".jpg"
                Image.fromarray(pixels).save(folder / f"{name}_{i:03d}{extension}", quality=95)
    cat = root / "train" / "cat"
    Image.fromarray(class_image(rng, "cat")[..., 0]).save(cat / "gray.png")  # one channel
    rgba = np.concatenate([class_image(rng, "cat"), np.full((20, 24, 1), 128, np.uint8)], axis=2)
    Image.fromarray(rgba, mode="RGBA").save(cat / "rgba.png")
    (cat / "notes.txt").write_text("not an image: left out")
    test = root / "test"
    test.mkdir()
    for i in range(num_test):
        Image.fromarray(class_image(rng, IMAGE_FOLDER_CLASSES[i % 3])).save(test / f"img_{num_test - i:02d}.jpg")
    return root


def write_png_bomb(path: Path, width: int, height: int, with_pixels: bool = True) -> Path:
    """A black 1-bit grayscale PNG of width x height that holds a few kilobytes on disk: a decompression
    bomb. Without `with_pixels`, its image data is empty (only the header declares the size), which
    writes any size in no time. Streamed, so that writing it never holds the pixels in memory."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    data = b""
    if with_pixels:
        row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the row's bits, all black
        rows_per_piece = max(1, (1 << 20) // len(row))
        for start in range(0, height, rows_per_piece):
            data += compressor.compress(row * min(rows_per_piece, height - start))
    data += compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, grayscale
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def patch_evaluate(monkeypatch, evaluate) -> None:
    """Replace evaluation.evaluate.evaluate where a training run calls it: every epoch's val
    passes (engine/epoch_scores.py) and the final val report (engine/finish.py)."""
    import engine.epoch_scores
    import engine.finish
    monkeypatch.setattr(engine.epoch_scores, "evaluate", evaluate)
    monkeypatch.setattr(engine.finish, "evaluate", evaluate)
