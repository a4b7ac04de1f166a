"""Write a fake data set in the real on-disk format of each data set main.py reads, to try any path of
the README before the real data arrives, or to benchmark on a machine that cannot download them.
Every image shows its class (a colour and a coarse pattern of its own, under noise), so a short run
climbs well above chance. After writing, it prints the command that trains on what it wrote.

`python bench/fake_data.py FORMAT --help` lists a format's sizes; each format and its command:
"""
from __future__ import annotations

import argparse
import colorsys
import functools
import inspect
import itertools
import os
import shlex
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.fake_formats import (CIFAR10_FOLDER, CIFAR10_LABEL_NAMES, CIFAR100_FOLDER, CIFAR_SIZE,  # noqa: E402
                                medium_imagenet_datasets, save_cifar10, save_cifar100, save_csv, save_hdf5,
                                save_images, save_pairs_file)
from data.medium_imagenet import FILE_NAMES, NUM_CLASSES  # noqa: E402
from utils.cli import OneLineErrorParser, positive_int  # noqa: E402
from utils.errors import UserError, user_error_line  # noqa: E402

COMMAND = "python bench/fake_data.py"
# The class signal: a class's clean image is half its colour, half a GRID x GRID pattern of random
# colours; each pixel then gets Gaussian noise of NOISE_STD grey levels. Cells of 8 px at 32 px survive
# the CIFAR crop (4 px of padding) and flips; the colour survives any crop.
GRID = 4
NOISE_STD = 40.0
GOLDEN_RATIO = (5 ** 0.5 - 1) / 2  # hue steps of it spread any number of classes evenly round the wheel
# Pixel values generated at a time (64 MB of float32), so that no split is ever held as floats whole.
CHUNK_VALUES = 1 << 24


def class_prototypes(num_classes: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(num_classes, 3, size, size) float32: each class's clean image, its colour plus its pattern."""
    colours = np.array([colorsys.hsv_to_rgb((k * GOLDEN_RATIO) % 1.0, 1.0, 1.0) for k in range(num_classes)])
    grids = rng.uniform(0.0, 1.0, (num_classes, 3, GRID, GRID))
    cell = -(-size // GRID)
    patterns = grids.repeat(cell, axis=2).repeat(cell, axis=3)[:, :, :size, :size]
    return (127.5 * (colours[:, :, None, None] + patterns)).astype(np.float32)


def class_images(prototypes: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, 3, S, S): the prototype of each label under fresh noise."""
    images = np.empty((len(labels), *prototypes.shape[1:]), dtype=np.uint8)
    step = max(1, CHUNK_VALUES // prototypes[0].size)
    for start in range(0, len(labels), step):
        chunk = prototypes[labels[start:start + step]]
        chunk += NOISE_STD * rng.standard_normal(chunk.shape, dtype=np.float32)
        images[start:start + step] = np.clip(np.rint(chunk, out=chunk), 0, 255, out=chunk)
    return images


def balanced_labels(num_classes: int, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """`per_class` of each class in 0..num_classes-1, in random order, as int64."""
    return rng.permutation(np.repeat(np.arange(num_classes, dtype=np.int64), per_class))


def refuse_existing(path: Path) -> None:
    """UserError when `path` is a file or a folder that holds anything, so that no data set, real or fake,
    is ever written over."""
    if path.exists() and not (path.is_dir() and not any(path.iterdir())):
        raise UserError(f"{path} already exists and is not an empty folder; {COMMAND} never writes over data: "
                        f"pick another ROOT, or delete it first")


def image_names(count: int) -> list[str]:
    """0000.jpg, 0001.jpg, ...: the files of a flat folder of unlabelled images."""
    return [f"{index:04d}.jpg" for index in range(count)]


def write_cifar10(root: str, per_class: int = 5000, test_per_class: int = 1000, seed: int = 0) -> None:
    """ROOT/cifar-10-batches-py, 10 classes of 32 px in balanced splits."""
    refuse_existing(Path(root) / CIFAR10_FOLDER)
    rng = np.random.default_rng(seed)
    prototypes = class_prototypes(10, CIFAR_SIZE, rng)
    train, test = balanced_labels(10, per_class, rng), balanced_labels(10, test_per_class, rng)
    save_cifar10(root, class_images(prototypes, train, rng), train, class_images(prototypes, test, rng), test,
                 CIFAR10_LABEL_NAMES)


def write_cifar100(root: str, per_class: int = 500, test_per_class: int = 100, seed: int = 0) -> None:
    """ROOT/cifar-100-python, 100 classes of 32 px in 20 superclasses of 5, in balanced splits."""
    refuse_existing(Path(root) / CIFAR100_FOLDER)
    rng = np.random.default_rng(seed)
    prototypes = class_prototypes(100, CIFAR_SIZE, rng)
    splits = {}
    for split, count in (("train", per_class), ("test", test_per_class)):
        fine = balanced_labels(100, count, rng)
        splits[split] = class_images(prototypes, fine, rng), fine, fine // 5
    save_cifar100(root, splits, [f"class_{k:02d}" for k in range(100)], [f"superclass_{k:02d}" for k in range(20)])


MEDIUM_IMAGENET_SIZE = 96
MEDIUM_IMAGENET_FILE = FILE_NAMES[0].format(size=MEDIUM_IMAGENET_SIZE)  # the name main.py looks for in a folder


def write_medium_imagenet(root: str, per_class: int = 20, val_per_class: int = 5, num_test: int = 1000,
                          seed: int = 0) -> None:
    """ROOT/medium-imagenet-nmep-96.hdf5: 200 classes of 96 px, channels-first, with class names and
    test ids."""
    path = Path(root) / MEDIUM_IMAGENET_FILE
    refuse_existing(path)
    rng = np.random.default_rng(seed)
    prototypes = class_prototypes(NUM_CLASSES, MEDIUM_IMAGENET_SIZE, rng)
    labels = {"train": balanced_labels(NUM_CLASSES, per_class, rng),
              "val": balanced_labels(NUM_CLASSES, val_per_class, rng)}
    images = {split: class_images(prototypes, split_labels, rng) for split, split_labels in labels.items()}
    images["test"] = class_images(prototypes, rng.integers(0, NUM_CLASSES, num_test), rng)
    class_names = [f"class_{k:03d}" for k in range(NUM_CLASSES)]
    test_ids = [f"test_{index:05d}" for index in range(num_test)]
    save_hdf5(path, medium_imagenet_datasets(images, labels, class_names=class_names, test_ids=test_ids))


def write_class_folders(folder: Path, images: np.ndarray, labels: np.ndarray, class_names: list[str]) -> list[str]:
    """Each image as folder/<its class>/NNNN.jpg; returns their paths relative to `folder`."""
    numbers = np.zeros(len(class_names), dtype=np.int64)
    names = []
    for label in labels:
        names.append(f"{class_names[label]}/{numbers[label]:04d}.jpg")
        numbers[label] += 1
    return save_images(folder, images, names)


def write_image_folder(root: str, classes: int = 10, per_class: int = 100, val_per_class: int = 20,
                       num_test: int = 100, size: int = 32, seed: int = 0) -> None:
    """ROOT/train/<class>/, ROOT/val/<class>/ and a flat ROOT/test/ of JPEGs."""
    refuse_existing(Path(root))
    rng = np.random.default_rng(seed)
    prototypes = class_prototypes(classes, size, rng)
    class_names = [f"class_{k:02d}" for k in range(classes)]
    for split, count in (("train", per_class), ("val", val_per_class)):
        labels = balanced_labels(classes, count, rng)
        write_class_folders(Path(root) / split, class_images(prototypes, labels, rng), labels, class_names)
    test = class_images(prototypes, rng.integers(0, classes, num_test), rng)
    save_images(Path(root) / "test", test, image_names(num_test))


def write_kaggle_csv(root: str, classes: int = 10, per_class: int = 100, num_test: int = 100, size: int = 32,
                     seed: int = 0) -> None:
    """Kaggle's layout: ROOT/train.csv (id,label, text labels), ROOT/train/<id>.jpg, ROOT/test/<id>.jpg and
    ROOT/sample_submission.csv naming every test id."""
    refuse_existing(Path(root))
    rng = np.random.default_rng(seed)
    prototypes = class_prototypes(classes, size, rng)
    class_names = [f"species_{k:02d}" for k in range(classes)]
    labels = balanced_labels(classes, per_class, rng)
    train_ids = [str(1001 + index) for index in range(len(labels))]
    save_images(Path(root) / "train", class_images(prototypes, labels, rng), [f"{i}.jpg" for i in train_ids])
    save_csv(Path(root) / "train.csv", ["id", "label"], zip(train_ids, (class_names[k] for k in labels)))
    test_ids = [str(100001 + index) for index in range(num_test)]
    test = class_images(prototypes, rng.integers(0, classes, num_test), rng)
    save_images(Path(root) / "test", test, [f"{i}.jpg" for i in test_ids])
    save_csv(Path(root) / "sample_submission.csv", ["id", "label"], ((i, class_names[0]) for i in test_ids))


def distinct_pairs(labels: np.ndarray, num_pairs: int, rng: np.random.Generator) -> list[tuple[int, int, bool]]:
    """Up to `num_pairs` distinct pairs of distinct images (indices into `labels`), half of one label where
    there are enough, in random order: (first, second, same label)."""
    combos = np.array(list(itertools.combinations(range(len(labels)), 2)), dtype=np.int64).reshape(-1, 2)
    same = labels[combos[:, 0]] == labels[combos[:, 1]]
    num_same = min(int(same.sum()), num_pairs // 2)
    num_different = min(int((~same).sum()), num_pairs - num_same)
    chosen = np.concatenate([rng.choice(np.flatnonzero(same), num_same, replace=False),
                             rng.choice(np.flatnonzero(~same), num_different, replace=False)])
    return [(int(combos[k, 0]), int(combos[k, 1]), bool(same[k])) for k in rng.permutation(chosen)]


# The pairs files of the faces format, relative to its ROOT (DATA.DATA_PATH), as the README names them.
VERIFY_PAIRS = "verification/val_pairs.txt"
VERIFY_TEST_PAIRS = "verification/test_pairs.txt"


def write_faces(root: str, identities: int = 20, per_identity: int = 20, val_per_identity: int = 5,
                num_test: int = 40, unseen_identities: int = 10, unseen_per_identity: int = 6, num_pairs: int = 200,
                size: int = 64, seed: int = 0) -> None:
    """One folder per identity (ROOT/train/<identity>/, ROOT/val/<identity>/, a flat ROOT/test/), and
    pairs of identities that training never sees: labelled ones in ROOT/verification/val_pairs.txt
    (`img_a img_b 1|0`, half of one identity) over ROOT/verification/val/<identity>/, unlabelled ones in
    ROOT/verification/test_pairs.txt over ROOT/verification/test/."""
    # A labelled pairs file needs pairs of one identity and of two, or main.py can draw no ROC curve.
    if unseen_identities < 2 or unseen_per_identity < 2 or num_pairs < 2:
        raise UserError(f"--unseen-identities ({unseen_identities}), --unseen-per-identity ({unseen_per_identity}) "
                        f"and --num-pairs ({num_pairs}) must each be at least 2, so that the pairs files hold pairs "
                        f"of one identity and of two")
    refuse_existing(Path(root))
    rng = np.random.default_rng(seed)
    prototypes = class_prototypes(identities + 2 * unseen_identities, size, rng)
    names = [f"person_{k:03d}" for k in range(len(prototypes))]
    for split, count in (("train", per_identity), ("val", val_per_identity)):
        labels = balanced_labels(identities, count, rng)
        write_class_folders(Path(root) / split, class_images(prototypes, labels, rng), labels, names)
    test = class_images(prototypes, rng.integers(0, identities, num_test), rng)
    save_images(Path(root) / "test", test, image_names(num_test))
    # Identities never trained on: one set for the labelled pairs, another for the test pairs.
    for split, first_identity, pairs_file in (("val", identities, VERIFY_PAIRS),
                                              ("test", identities + unseen_identities, VERIFY_TEST_PAIRS)):
        labelled = split == "val"
        labels = first_identity + balanced_labels(unseen_identities, unseen_per_identity, rng)
        images = class_images(prototypes, labels, rng)
        folder = Path(root) / "verification" / split
        paths = (write_class_folders(folder, images, labels, names) if labelled
                 else save_images(folder, images, image_names(len(images))))
        paths = [f"verification/{split}/{path}" for path in paths]
        save_pairs_file(Path(root) / pairs_file, [(paths[first], paths[second], same if labelled else None)
                                                  for first, second, same in distinct_pairs(labels, num_pairs, rng)])


@dataclass(frozen=True)
class FakeFormat:
    """A format the script writes: its writer, what --help says of it, and the main.py commands (after
    `python main.py`) that train on it, with {data} standing for ROOT, or for ROOT/`data_file`."""
    write: Callable[..., None]
    summary: str
    commands: tuple[str, ...]
    # The writer's size options: flag -> (its keyword, what it counts).
    sizes: dict[str, tuple[str, str]]
    data_file: str = ""

    def data(self, root: str) -> str:
        """What DATA.DATA_PATH names for the data written under `root`."""
        return os.path.join(root, self.data_file) if self.data_file else root

    def train_commands(self, root: str) -> list[str]:
        """The commands that train on the data written under `root`, as a user types them."""
        return [f"python main.py {command.format(data=shlex.quote(self.data(root)))}" for command in self.commands]


FACES_DATA = (f"--data-path {{data}} --opts DATA.DATASET imagefolder DATA.VERIFY_PAIRS {VERIFY_PAIRS} "
              f"DATA.VERIFY_TEST_PAIRS {VERIFY_TEST_PAIRS}")
FORMATS = {
    "cifar10": FakeFormat(
        write_cifar10, "CIFAR-10's pickled batches, ROOT/cifar-10-batches-py: 10 classes of 32 px, 50,000 train "
        "and 10,000 test images by default, as the real one",
        ("--cfg configs/resnet18_cifar10.yaml --data-path {data}",),
        {"--per-class": ("per_class", "train images of each class"),
         "--test-per-class": ("test_per_class", "test images of each class (CIFAR's val split)")}),
    "cifar100": FakeFormat(
        write_cifar100, "CIFAR-100's pickles, ROOT/cifar-100-python: 100 classes of 32 px in 20 superclasses, "
        "50,000 train and 10,000 test images by default",
        ("--cfg configs/recipes/convnextv2_atto_cifar100_adamw.yaml --data-path {data}",),
        {"--per-class": ("per_class", "train images of each class"),
         "--test-per-class": ("test_per_class", "test images of each class (CIFAR's val split)")}),
    "medium-imagenet": FakeFormat(
        write_medium_imagenet, "a MediumImageNet HDF5 file, ROOT/medium-imagenet-nmep-96.hdf5: 200 classes of "
        "96 px, channels-first, with class names and test ids",
        ("--cfg configs/resnet18_medium_imagenet.yaml --data-path {data}",),
        {"--per-class": ("per_class", "train images of each class"),
         "--val-per-class": ("val_per_class", "val images of each class"),
         "--num-test": ("num_test", "unlabelled test images")}, MEDIUM_IMAGENET_FILE),
    "image-folder": FakeFormat(
        write_image_folder, "class folders of JPEGs, ROOT/train/<class>/ and ROOT/val/<class>/, and a flat "
        "ROOT/test/ to predict",
        ("--cfg configs/resnet18_cifar10.yaml --data-path {data} --opts DATA.DATASET imagefolder",),
        {"--classes": ("classes", "classes"), "--per-class": ("per_class", "train images of each class"),
         "--val-per-class": ("val_per_class", "val images of each class"),
         "--num-test": ("num_test", "unlabelled test images"), "--size": ("size", "pixels a side")}),
    "kaggle-csv": FakeFormat(
        write_kaggle_csv, "Kaggle's layout: ROOT/train.csv of id,label (text labels), ROOT/train/<id>.jpg, "
        "ROOT/test/<id>.jpg and ROOT/sample_submission.csv",
        ("--cfg configs/resnet18_cifar10.yaml --data-path {data} --opts DATA.DATASET csv DATA.IMAGE_EXT .jpg "
         "DATA.VAL_SPLIT 0.1 DATA.TEST_CSV sample_submission.csv SUBMISSION.ID file SUBMISSION.LABELS name "
         "SUBMISSION.HEADER id,label",),
        {"--classes": ("classes", "classes"), "--per-class": ("per_class", "train images of each class"),
         "--num-test": ("num_test", "unlabelled test images"), "--size": ("size", "pixels a side")}),
    "faces": FakeFormat(
        write_faces, "one folder per identity (ROOT/train/<identity>/, ROOT/val/<identity>/, ROOT/test/) and "
        f"pairs files of unseen identities: ROOT/{VERIFY_PAIRS} (img_a img_b 0|1) and ROOT/{VERIFY_TEST_PAIRS}; "
        "stage 1 classifies, stage 2 fine-tunes with ArcFace",
        (f"--cfg configs/recipes/face_classification.yaml --tag classify {FACES_DATA}",
         f"--cfg configs/recipes/face_arcface.yaml --tag arcface {FACES_DATA} "
         "MODEL.PRETRAINED output/resnet34_imagefolder/classify/best.pth"),
        {"--identities": ("identities", "identities to classify"),
         "--per-identity": ("per_identity", "train images of each identity"),
         "--val-per-identity": ("val_per_identity", "val images of each identity"),
         "--num-test": ("num_test", "unlabelled test images"),
         "--unseen-identities": ("unseen_identities", "identities of each pairs file, never trained on"),
         "--unseen-per-identity": ("unseen_per_identity", "images of each unseen identity"),
         "--num-pairs": ("num_pairs", "pairs in each pairs file"), "--size": ("size", "pixels a side")}),
}


def formats_help() -> str:
    """Each format, then the commands that write it to /tmp/fake/<format> and train on it."""
    blocks = []
    for name, fake_format in FORMATS.items():
        example = f"/tmp/fake/{name}"
        lines = [f"{COMMAND} {name} {example}", *fake_format.train_commands(example)]
        blocks.append(f"{name}: {fake_format.summary}\n" + "\n".join(f"  {line}" for line in lines))
    return "\n\n".join(blocks)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineErrorParser(COMMAND, prog=COMMAND, description=__doc__.strip(), epilog=formats_help(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="format", required=True, title="formats (see below)",
                                       parser_class=functools.partial(OneLineErrorParser, COMMAND))
    for name, fake_format in FORMATS.items():
        defaults = {keyword: parameter.default
                    for keyword, parameter in inspect.signature(fake_format.write).parameters.items()}
        then = "\n".join(f"  {line}" for line in fake_format.train_commands("ROOT"))
        sub = subparsers.add_parser(name, prog=f"{COMMAND} {name}", epilog=f"Then:\n{then}",
                                    description=textwrap.fill(f"Write {fake_format.summary}.", 100),
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("root", metavar="ROOT", help="the folder to write into (refused if it already holds the "
                                                      "data set: nothing is written over)")
        for flag, (keyword, counts) in fake_format.sizes.items():
            sub.add_argument(flag, dest=keyword, metavar="N", type=positive_int, default=defaults[keyword],
                             help=f"{counts} (default {defaults[keyword]:,})")
        sub.add_argument("--seed", type=int, default=0, help="the same seed writes the same files (default 0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    fake_format = FORMATS[args.format]
    options = {keyword: getattr(args, keyword) for keyword, _ in fake_format.sizes.values()}
    root = os.path.abspath(args.root)
    try:
        fake_format.write(root, **options, seed=args.seed)
    except UserError as e:
        print(f"error: {user_error_line(e)}", file=sys.stderr)
        return 2
    print(f"wrote {args.format} to {fake_format.data(root)}; train on it with:")
    for command in fake_format.train_commands(root):
        print(f"  {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
