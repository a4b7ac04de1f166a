"""DATA.DATASET imagefolder: class folders, as torchvision's ImageFolder reads them.

    DATA_PATH/
      train/<class>/*.jpg, *.png, *.webp   the classes are the sorted folder names
      val/<class>/...                      optional; without it DATA.VAL_SPLIT holds part of train out
      test/*.jpg ...                       optional, unlabeled; predicted in sorted file order

Mistakes in the layout (no train folder, a class folder without images, a val class that train
lacks) are refused in one line when the data set is opened, before anything trains.
"""
from __future__ import annotations

import os

import numpy as np
from torchvision.transforms.v2 import InterpolationMode

from data.image_files import ImageFileStore, check_test_images, list_image_files, readable_only
from utils.errors import UserError

# Normalisation of photographs: ImageNet's statistics, as timm and torchvision use for any data set.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def class_names(data_path: str) -> list[str]:
    """The sorted names of the class folders under DATA_PATH/train."""
    train = os.path.join(os.path.expanduser(data_path), "train")
    if not os.path.isdir(train):
        raise UserError(f"imagefolder data needs a train folder with one folder per class: {train} does not "
                        f"exist; set DATA.DATA_PATH to the folder that holds train/")
    names = sorted(name for name in os.listdir(train)
                   if os.path.isdir(os.path.join(train, name)) and not name.startswith("."))
    if not names:
        raise UserError(f"{train} holds no class folders; put each class's images in train/<class>/")
    return names


def labelled_files(split_folder: str, classes: list[str], must_have_every_class: bool) -> tuple[list[str], np.ndarray]:
    """(paths, labels) of the images under split_folder/<class>/, class by class in `classes` order."""
    present = sorted(name for name in os.listdir(split_folder)
                     if os.path.isdir(os.path.join(split_folder, name)) and not name.startswith("."))
    unknown = sorted(set(present) - set(classes))
    if unknown:
        raise UserError(f"{split_folder} has class folders that train/ lacks: {', '.join(unknown[:5])}; "
                        f"give every split the same class folders")
    paths, labels = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(split_folder, name)
        files = list_image_files(folder) if os.path.isdir(folder) else []
        if not files and (must_have_every_class or os.path.isdir(folder)):
            raise UserError(f"the class folder {folder} holds no images (.jpg, .jpeg, .png or .webp); add some, "
                            f"or remove the folder")
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64)


def load_image_folder(data_path: str, image_size: int, interpolation: InterpolationMode, skip_bad_images: bool,
                      threads: int, max_pixels: int):
    """({"train", "test"[, "val"]: (ImageFileStore, labels or None)}, class names). Images over
    `max_pixels` are refused like unreadable ones; with `skip_bad_images`, every file is decoded
    once first and the train and val files that fail are left out (listed in each store's `left_out`)."""
    root = os.path.expanduser(data_path)
    classes = class_names(root)

    def labelled_store(split: str, must_have_every_class: bool) -> tuple[ImageFileStore, np.ndarray]:
        paths, labels = labelled_files(os.path.join(root, split), classes, must_have_every_class)
        left_out = []
        if skip_bad_images:
            paths, labels, left_out = readable_only(paths, labels, threads, max_pixels)
        return ImageFileStore(paths, image_size, interpolation, max_pixels, left_out=left_out), labels

    splits = {"train": labelled_store("train", must_have_every_class=True)}
    if os.path.isdir(os.path.join(root, "val")):
        splits["val"] = labelled_store("val", must_have_every_class=False)
    test_folder = os.path.join(root, "test")
    test_paths = list_image_files(test_folder) if os.path.isdir(test_folder) else []
    if skip_bad_images:
        check_test_images(test_paths, threads, max_pixels)
    splits["test"] = (ImageFileStore(test_paths, image_size, interpolation, max_pixels), None)
    return splits, classes
