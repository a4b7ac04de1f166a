"""MediumImageNet: 200 classes in one HDF5 file, at 96 px or 224 px (or any data set that
scripts/to_hdf5.py converted into its layout).

Layout: `images-{train,val,test}` uint8, channels-first (N, 3, S, S) or channels-last (N, S, S, 3),
and `labels-{train,val}` (integers, or floats that are all whole numbers); the test split has
no labels. Each split may be stored at its own size. The file is opened lazily in each
process that reads it, because an h5py handle opened before the DataLoader forks its workers is
not safe to share.
"""
from __future__ import annotations

import os

import numpy as np

from utils.errors import UserError

# Classes of MediumImageNet; a file with `class-names` (scripts/to_hdf5.py writes them) has as many as it names.
NUM_CLASSES = 200
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "val", "test")
# Datasets that may hold the 200 class names as strings, in label order; the first one found is used.
CLASS_NAME_KEYS = ("class-names", "label-names", "classes")
# The test images' ids for SUBMISSION.ID file, when the file holds them (scripts/to_hdf5.py).
TEST_IDS_KEY = "ids-test"
FILE_NAMES = ("medium-imagenet-nmep-{size}.hdf5", "medium-imagenet-{size}.hdf5")


def resolve_hdf5_path(data_path: str, stored_size: int) -> str:
    """The .hdf5 file itself, or the file of `stored_size` px found by its usual name in a folder."""
    data_path = os.path.expanduser(data_path)
    if os.path.isfile(data_path):
        return data_path
    candidates = [os.path.join(data_path, name.format(size=stored_size)) for name in FILE_NAMES]
    if os.path.isdir(data_path):
        for candidate in candidates:
            if os.path.isfile(candidate):
                return candidate
        raise UserError(f"no MediumImageNet file in {data_path}: expected {' or '.join(candidates)}; "
                        f"pass --data-path FILE.hdf5 or set DATA.STORED_SIZE to the size you have")
    raise UserError(f"MediumImageNet file not found: {data_path}; pass --data-path with the .hdf5 file "
                    f"or the folder that holds it")


class HDF5Images:
    """The images of one split of the HDF5 file, read in sorted batches as (B, 3, S, S) uint8."""

    def __init__(self, path: str, split: str, length: int, image_size: int, channels_last: bool,
                 ids: list[str] | None = None):
        self.path = path
        if ids is not None:
            self.ids = ids  # only where the file names the images, for SUBMISSION.ID file
        self.key = f"images-{split}"
        self.length = length
        self.image_size = image_size
        self.channels_last = channels_last
        self._file = None
        self._owner_pid = None

    def __len__(self) -> int:
        return self.length

    def __getstate__(self) -> dict:
        # Workers get the path, never an open handle.
        return {**self.__dict__, "_file": None, "_owner_pid": None}

    def read(self, indices: np.ndarray) -> np.ndarray:
        import h5py

        if self._file is None or self._owner_pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._owner_pid = os.getpid()
        dataset = self._file[self.key]
        unique, inverse = np.unique(indices, return_inverse=True)
        images = np.concatenate([dataset[start:stop] for start, stop in _contiguous_runs(unique)])
        images = images[inverse]
        return images.transpose(0, 3, 1, 2) if self.channels_last else images


def _contiguous_runs(sorted_indices: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) ranges covering sorted unique indices, so each run is one slice read."""
    breaks = np.flatnonzero(np.diff(sorted_indices) != 1) + 1
    return [(int(run[0]), int(run[-1]) + 1) for run in np.split(sorted_indices, breaks)]


def open_medium_imagenet(path: str) -> dict[str, tuple[HDF5Images, np.ndarray | None]]:
    """Check the file's layout and return {split: (images, labels or None)}.

    Labels are read into memory (a few MB); images stay on disk.
    """
    import h5py

    try:
        file = h5py.File(path, "r")
    except OSError as e:
        raise UserError(f"cannot read MediumImageNet file {path} ({e}); is it a complete HDF5 file?") from None
    with file:
        num_classes = len(_stored_class_names(file, path) or range(NUM_CLASSES))
        splits = {}
        for split in SPLITS:
            key = f"images-{split}"
            if key not in file:
                raise UserError(f"{path} has no dataset '{key}' (found: {', '.join(sorted(file.keys()))}); "
                                f"is this the MediumImageNet file?")
            images = file[key]
            channels_last = _check_image_shape(path, key, images.shape, images.dtype)
            labels = None
            if split != "test":
                labels = _read_labels(file, path, split, len(images), num_classes)
            size = images.shape[2] if channels_last else images.shape[3]
            ids = _strings(file[TEST_IDS_KEY]) if split == "test" and TEST_IDS_KEY in file else None
            if ids is not None and len(ids) != len(images):
                raise UserError(f"{path}: '{TEST_IDS_KEY}' has {len(ids)} ids for {len(images)} test images")
            splits[split] = HDF5Images(path, split, len(images), size, channels_last, ids), labels
    return splits


def read_class_names(path: str) -> list[str]:
    """The class names stored in the file (see CLASS_NAME_KEYS), or MediumImageNet's 200 class
    indices as text."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            return _stored_class_names(file, path) or [str(index) for index in range(NUM_CLASSES)]
    except OSError as e:
        raise UserError(f"cannot read MediumImageNet file {path} ({e}); is it a complete HDF5 file?") from None


def _stored_class_names(file, path: str) -> list[str] | None:
    for key in CLASS_NAME_KEYS:
        if key in file:
            names = _strings(file[key])
            if not names:
                raise UserError(f"{path}: '{key}' holds no class names")
            return names
    return None


def _strings(dataset) -> list[str]:
    return [text.decode("utf-8") if isinstance(text, bytes) else str(text)
            for text in np.asarray(dataset[:]).reshape(-1)]


def _check_image_shape(path: str, key: str, shape: tuple, dtype: np.dtype) -> bool:
    """True for channels-last storage, False for channels-first; UserError for anything else."""
    if dtype != np.uint8:
        raise UserError(f"{path}: '{key}' holds {dtype}, expected uint8 images")
    if len(shape) == 4 and shape[1] == 3 and shape[2] == shape[3]:
        return False
    if len(shape) == 4 and shape[3] == 3 and shape[1] == shape[2]:
        return True
    raise UserError(f"{path}: '{key}' has shape {tuple(shape)}, expected (N, 3, S, S) or (N, S, S, 3)")


def _read_labels(file, path: str, split: str, num_images: int, num_classes: int) -> np.ndarray:
    key = f"labels-{split}"
    if key not in file:
        raise UserError(f"{path} has no dataset '{key}'; the {split} split needs labels")
    labels = whole_number_labels(np.asarray(file[key][:]).reshape(-1), path, key)
    if len(labels) != num_images:
        raise UserError(f"{path}: '{key}' has {len(labels)} labels for {num_images} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise UserError(f"{path}: '{key}' has labels outside 0..{num_classes - 1}")
    return labels


def whole_number_labels(stored: np.ndarray, path: str, key: str) -> np.ndarray:
    """The labels stored under `key` as int64: an integer dataset, or a float one whose values are all
    whole numbers; UserError naming a bad value otherwise, since casting would truncate 1.7 to 1."""
    if np.issubdtype(stored.dtype, np.integer):
        return stored.astype(np.int64)
    if not np.issubdtype(stored.dtype, np.floating):
        raise UserError(f"{path}: '{key}' holds {stored.dtype}, expected integer class labels")
    not_whole = np.flatnonzero(~np.isfinite(stored) | (stored != np.round(stored)))
    if len(not_whole):
        row = int(not_whole[0])
        raise UserError(f"{path}: '{key}' holds {len(not_whole)} labels that are not whole numbers, e.g. "
                        f"{stored[row]} at index {row}; store the class indices as integers")
    return stored.astype(np.int64)
