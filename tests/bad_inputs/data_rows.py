"""Bad-input rows: data (CSV label files, pairs files, HDF5 files, image files, CIFAR pickles)."""
from pathlib import Path

import numpy as np
from PIL import Image

from tests.bad_inputs.row import BadInput, quickstart_argv, write
from tests.conftest import write_png_bomb


def image(path: Path) -> Path:
    """A small PNG at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 20), (200, 30, 30)).save(path)
    return path


def csv_data(workspace: Path, rows: str, *opts: str, test_csv: str = "") -> list[str]:
    """The quickstart on DATA.DATASET csv: train/a..f.png and test/t.png under workspace/data, with
    train.csv holding `rows` (after its header) and test.csv `test_csv` when given."""
    root = workspace / "data"
    for name in "abcdef":
        image(root / "train" / f"{name}.png")
    image(root / "test" / "t.png")
    image(root / "outside.png")
    write(root / "train.csv", "id,label\n" + rows)
    if test_csv:
        write(root / "test.csv", "id\n" + test_csv)
    return quickstart_argv(workspace, "DATA.DATASET", "csv", "DATA.DATA_PATH", str(root), "DATA.IMAGE_EXT", ".png",
                           "DATA.VAL_SPLIT", "0.3", *(("DATA.TEST_CSV", "test.csv") if test_csv else ()), *opts)


def pairs_data(workspace: Path, pairs: str) -> list[str]:
    """The quickstart (digits) scoring the labelled pairs `pairs` of images under workspace/faces."""
    root = workspace / "faces"
    for name in ("p1/1.png", "p1/2.png", "p2/1.png", "p2/2.png"):
        image(root / name)
    image(workspace / "outside.png")
    write(root / "pairs.txt", pairs)
    return quickstart_argv(workspace, "DATA.DATA_PATH", str(root), "DATA.VERIFY_PAIRS", "pairs.txt")


def hdf5_data(workspace: Path, train_labels: np.ndarray) -> list[str]:
    """The quickstart on a MediumImageNet-layout file whose train labels are `train_labels` (6 of them)."""
    import h5py

    path = workspace / "data.hdf5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for split, count in (("train", 6), ("val", 4), ("test", 2)):
            f.create_dataset(f"images-{split}", data=rng.integers(0, 256, (count, 3, 16, 16), dtype=np.uint8))
        f.create_dataset("labels-train", data=train_labels)
        f.create_dataset("labels-val", data=np.arange(4))
    return quickstart_argv(workspace, "DATA.DATASET", "medium_imagenet", "DATA.DATA_PATH", str(path))


def image_folder_with_bomb(workspace: Path, bomb: str, *opts: str) -> list[str]:
    """The quickstart on DATA.DATASET imagefolder whose file `bomb` (under workspace/data) is a
    10000 x 10000 PNG of 12 KB."""
    root = workspace / "data"
    for name in ("train/a/1.png", "train/a/2.png", "train/b/1.png", "train/b/2.png", "test/1.png"):
        image(root / name)
    write_png_bomb(root / bomb, 10_000, 10_000)
    return quickstart_argv(workspace, "DATA.DATASET", "imagefolder", "DATA.DATA_PATH", str(root),
                           "DATA.VAL_SPLIT", "0.3", *opts)


def cifar_with_broken_meta(workspace: Path) -> list[str]:
    from tests.conftest import write_cifar10

    written = write_cifar10(workspace / "cifar", per_batch=2, num_test=2)
    write(written.folder / "batches.meta", b"not a pickle")
    return quickstart_argv(workspace, "DATA.DATASET", "cifar10", "DATA.DATA_PATH", str(written.root))


ROWS: list[BadInput] = [
    BadInput("csv-id-dot-dot", lambda ws, run: csv_data(ws, "a,cat\nb,dog\n../outside,cat\nc,dog\n"),
             ("train.csv:4", "../outside")),
    BadInput("csv-id-absolute", lambda ws, run: csv_data(ws, f"a,cat\n{ws / 'data' / 'outside'},dog\nb,cat\nc,dog\n"),
             ("train.csv:3", str(Path("data") / "outside"))),
    BadInput("csv-test-id-outside",
             lambda ws, run: csv_data(ws, "a,cat\nb,dog\nc,cat\nd,dog\n", test_csv="t\n../train/a\n"),
             ("test.csv:3", "../train/a")),
    BadInput("csv-duplicate-id", lambda ws, run: csv_data(ws, "a,cat\nb,dog\nc,cat\na,dog\n"),
             ("train.csv", "lines 2 and 5")),
    BadInput("csv-ragged-row", lambda ws, run: csv_data(ws, "a,cat\nb\nc,cat\nd,dog\n"), ("train.csv:3",)),
    BadInput("pairs-self-pair", lambda ws, run: pairs_data(ws, "p1/1.png p1/2.png 1\np2/1.png p2/1.png 1\n"
                                                              "p1/1.png p2/2.png 0\n"), ("pairs.txt:2", "p2/1.png")),
    BadInput("pairs-repeated", lambda ws, run: pairs_data(ws, "p1/1.png p1/2.png 1\np1/1.png p2/2.png 0\n"
                                                             "p1/2.png p1/1.png 1\n"), ("pairs.txt:3", "lines 1 and 3")),
    BadInput("pairs-outside-root",
             lambda ws, run: pairs_data(ws, "p1/1.png p1/2.png 1\np1/1.png ../outside.png 0\n"),
             ("pairs.txt:2", "../outside.png")),
    BadInput("hdf5-float-labels", lambda ws, run: hdf5_data(ws, np.array([0.0, 1.0, 1.7, 0.0, 1.0, 2.0])),
             ("data.hdf5", "labels-train", "1.7")),
    BadInput("image-bomb-train", lambda ws, run: image_folder_with_bomb(ws, "train/b/bomb.png"),
             ("bomb.png", "DATA.MAX_IMAGE_PIXELS")),
    BadInput("image-bomb-test", lambda ws, run: image_folder_with_bomb(ws, "test/bomb.png", "DATA.SKIP_BAD_IMAGES",
                                                                       "True"),
             ("bomb.png", "DATA.MAX_IMAGE_PIXELS")),
    BadInput("cifar-meta-not-a-pickle", lambda ws, run: cifar_with_broken_meta(ws), ("cifar-10-batches-py",)),
]
