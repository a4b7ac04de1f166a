"""The data sets DATA.DATASET names: how each is opened, from plain arguments (a DataSource).

Each entry of DATASETS says how many classes the data set has (or how to count them in the
data), its normalisation statistics, and how to open it into {"train", "test"[, "val"]: (store,
labels)} with its class names. `data.build` fills a DataSource from the config.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from torchvision.transforms.v2 import InterpolationMode

from data import cifar, csv_labels, digits, image_folder, medium_imagenet
from data.dataset import ArrayStore, ImageStore
from utils.choices import resolve_choice
from utils.errors import UserError

# Share of the digits held out as their test split. Fixed, and independent of SEED, so that
# every run is scored on the same images.
DIGITS_TEST_FRACTION = 0.2

Splits = dict[str, tuple[ImageStore, np.ndarray | None]]


@dataclass(frozen=True)
class DataSource:
    """Where and how to open a data set: the DATA keys its loader needs."""
    data_path: str
    stored_size: int  # the MediumImageNet file's resolution
    img_size: int
    download: bool
    decode_size: int  # side of the square that images decoded from files are stored at
    interpolation: InterpolationMode
    csv: csv_labels.CsvLayout  # the csv data set's files and columns
    skip_bad_images: bool
    threads: int  # for decoding every image once, when skip_bad_images checks them
    max_image_pixels: int  # largest width * height an image file may declare


@dataclass(frozen=True)
class DatasetSpec:
    num_classes: int | None  # None: as many as the data hold (`count_classes`)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # DataSource -> ({"train", "test"[, "val"]: (store, labels)}, class names)
    load: Callable[[DataSource], tuple[Splits, list[str]]]
    # the number of classes, read from the data, for specs without a fixed number
    count_classes: Callable[[DataSource], int] | None = None


def _load_digits(source: DataSource) -> tuple[Splits, list[str]]:
    images, labels = digits.load_digits_arrays(source.img_size)
    order = np.random.default_rng(0).permutation(len(images))
    num_test = int(round(len(images) * DIGITS_TEST_FRACTION))
    test, train = np.sort(order[:num_test]), np.sort(order[num_test:])
    splits = {"train": (ArrayStore(images[train]), labels[train]), "test": (ArrayStore(images[test]), labels[test])}
    return splits, digits.CLASS_NAMES


def _cifar_loader(name: str) -> Callable[[DataSource], tuple[Splits, list[str]]]:
    def load(source: DataSource) -> tuple[Splits, list[str]]:
        arrays, class_names = cifar.load_cifar_arrays(name, source.data_path, source.download)
        return {split: (ArrayStore(images), labels) for split, (images, labels) in arrays.items()}, class_names
    return load


def _load_medium_imagenet(source: DataSource) -> tuple[Splits, list[str]]:
    path = medium_imagenet.resolve_hdf5_path(source.data_path, source.stored_size)
    return medium_imagenet.open_medium_imagenet(path), medium_imagenet.read_class_names(path)


def _count_medium_imagenet_classes(source: DataSource) -> int:
    """As many classes as the file names, or MediumImageNet's 200: also when the file is not
    there, so that a model can be built without the data (its loader then says what is missing)."""
    try:
        path = medium_imagenet.resolve_hdf5_path(source.data_path, source.stored_size)
    except UserError:
        return medium_imagenet.NUM_CLASSES
    return len(medium_imagenet.read_class_names(path))


def _load_image_folder(source: DataSource) -> tuple[Splits, list[str]]:
    return image_folder.load_image_folder(source.data_path, source.decode_size, source.interpolation,
                                          source.skip_bad_images, source.threads, source.max_image_pixels)


def _load_csv(source: DataSource) -> tuple[Splits, list[str]]:
    return csv_labels.load_csv_dataset(source.csv, source.decode_size, source.interpolation, source.skip_bad_images,
                                       source.threads, source.max_image_pixels)


DATASETS = {
    "digits": DatasetSpec(digits.NUM_CLASSES, digits.MEAN, digits.STD, _load_digits),
    "cifar10": DatasetSpec(10, cifar.CIFAR_VARIANTS["cifar10"].mean, cifar.CIFAR_VARIANTS["cifar10"].std,
                           _cifar_loader("cifar10")),
    "cifar100": DatasetSpec(100, cifar.CIFAR_VARIANTS["cifar100"].mean, cifar.CIFAR_VARIANTS["cifar100"].std,
                            _cifar_loader("cifar100")),
    "medium_imagenet": DatasetSpec(None, medium_imagenet.MEAN, medium_imagenet.STD, _load_medium_imagenet,
                                   count_classes=_count_medium_imagenet_classes),
    "imagefolder": DatasetSpec(None, image_folder.MEAN, image_folder.STD, _load_image_folder,
                               count_classes=lambda source: len(image_folder.class_names(source.data_path))),
    "csv": DatasetSpec(None, image_folder.MEAN, image_folder.STD, _load_csv,
                       count_classes=lambda source: csv_labels.count_classes(source.csv)),
}


def get_dataset_spec(name: str) -> DatasetSpec:
    """The DatasetSpec registered under `name` (in any case), or UserError suggesting the closest name."""
    return DATASETS[resolve_choice("DATA.DATASET", name, DATASETS)]
