"""Images stored as files (JPEG, PNG, WEBP), decoded in the loader workers: the store of the
imagefolder and csv data sets.

Each file is decoded by `torchvision.io.decode_image` as RGB (grayscale and palette images are
expanded, an alpha channel dropped), its shorter side resized to the store's size and the
centre cut square, so that every image comes out as uint8 (3, S, S) like the other stores'.
A file that does not decode stops the run in one line naming it, unless DATA.SKIP_BAD_IMAGES
has every file tried once when the data set opens, and the train and val files that fail left out.
"""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F
from tqdm import tqdm

from utils.errors import UserError

# torchvision 0.29 deprecates its image decoders in favour of TorchCodec, which needs FFmpeg; they
# still decode every format here, on both torchvision versions the project runs on, so the
# warning (once per worker) is kept out of the logs.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning)

# File name endings decode_image reads, in any case.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def list_image_files(folder: str) -> list[str]:
    """The image files directly in `folder`, sorted by name (hidden files left out)."""
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if is_image_file(name) and not name.startswith(".") and os.path.isfile(os.path.join(folder, name)))


# What the decoders raise for a file that is not a readable image.
DECODE_ERRORS = (RuntimeError, OSError, ValueError)


def _reason(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def decode_rgb(path: str) -> torch.Tensor:
    """The image file at `path` as uint8 (3, H, W); UserError naming it when it cannot be decoded."""
    try:
        return decode_image(path, mode=ImageReadMode.RGB)
    except DECODE_ERRORS as error:
        raise UserError(f"cannot read the image {path}: {_reason(error)}; replace or delete the file, or set "
                        f"DATA.SKIP_BAD_IMAGES True to leave out every image that cannot be read") from error


def unreadable_files(paths: list[str], threads: int) -> list[tuple[str, str]]:
    """(path, reason) of every file in `paths` that does not decode, trying them all once on
    `threads` threads (the decoders release the GIL)."""
    def failure(path: str) -> tuple[str, str] | None:
        try:
            decode_image(path, mode=ImageReadMode.RGB)
        except DECODE_ERRORS as error:
            return path, _reason(error)
        return None

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(tqdm(pool.map(failure, paths), total=len(paths), desc="checking images", leave=False,
                            disable=None))
    return [result for result in results if result is not None]


def readable_only(paths: list[str], labels: np.ndarray, threads: int) -> tuple[list[str], np.ndarray, list]:
    """(paths, labels) without the files that cannot be decoded, and those as (path, reason)."""
    bad = unreadable_files(paths, threads)
    left_out = {path for path, _ in bad}
    keep = [row for row, path in enumerate(paths) if path not in left_out]
    return [paths[row] for row in keep], labels[keep], bad


def check_test_images(paths: list[str], threads: int) -> None:
    """UserError naming the first test image that cannot be decoded: a submission needs every one."""
    bad = unreadable_files(paths, threads)
    if bad:
        path, reason = bad[0]
        raise UserError(f"cannot read the test image {path}: {reason} ({len(bad)} such test images); the "
                        f"submission needs a row for each, so DATA.SKIP_BAD_IMAGES leaves out train and val "
                        f"images only: replace the file")


def decode_square(path: str, size: int, interpolation: InterpolationMode) -> torch.Tensor:
    """The image file at `path` as uint8 (3, size, size): shorter side resized, centre cut."""
    image = decode_rgb(path)
    if image.shape[-2:] != (size, size):
        image = F.resize(image, size, interpolation=interpolation, antialias=True)
        image = F.center_crop(image, [size, size])
    return image


class ImageFileStore:
    """The image files at `paths`, read as uint8 (B, 3, S, S) with S = `image_size`. `ids` name
    them in a submission: the file names without their endings unless given."""

    def __init__(self, paths: list[str], image_size: int, interpolation: InterpolationMode,
                 ids: list[str] | None = None, left_out: list[tuple[str, str]] = ()):
        self.paths = list(paths)
        self.image_size = image_size
        self.interpolation = interpolation
        self.ids = list(ids) if ids is not None else [os.path.splitext(os.path.basename(path))[0] for path in paths]
        self.left_out = list(left_out)  # (path, reason) of the split's files that could not be decoded

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, indices: np.ndarray) -> np.ndarray:
        images = np.empty((len(indices), 3, self.image_size, self.image_size), np.uint8)
        for row, index in enumerate(indices):
            images[row] = decode_square(self.paths[int(index)], self.image_size, self.interpolation).numpy()
        return images
