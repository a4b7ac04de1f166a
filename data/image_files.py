"""Images stored as files (JPEG, PNG, WEBP), decoded in the loader workers: the store of the
imagefolder and csv data sets.

Each file is decoded by `torchvision.io.decode_image` as RGB (grayscale and palette images are
expanded, an alpha channel dropped), its shorter side resized to the store's size and the
centre cut square, so that every image comes out as uint8 (3, S, S) like the other stores'.
Its header is read first (by PIL, which reads no pixels), and a file of more pixels than the
store allows (DATA.MAX_IMAGE_PIXELS) counts as unreadable: a crafted file of a few kilobytes
can declare enough pixels to fill the memory when decoded. A file that cannot be read stops the
run in one line naming it, unless DATA.SKIP_BAD_IMAGES has every file tried once when the data
set opens, and the train and val files that fail left out.
"""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
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

# PIL warns of an image over its own limit as it opens it; the header check below says more, in one line.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# File name endings decode_image reads, in any case.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def list_image_files(folder: str) -> list[str]:
    """The image files directly in `folder`, sorted by name (hidden files left out)."""
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if is_image_file(name) and not name.startswith(".") and os.path.isfile(os.path.join(folder, name)))


def path_inside(root: str, name: str) -> str | None:
    """`root`/`name`, or None when that path leads outside `root` once links and `..` are followed
    (an absolute `name` included), or is not a path at all (a NUL character)."""
    if "\0" in name:
        return None
    path = os.path.join(root, name)
    real_root, real_path = os.path.realpath(root), os.path.realpath(path)
    if real_path == real_root or os.path.commonpath([real_root, real_path]) != real_root:
        return None
    return path


class UnreadableImage(Exception):
    """An image file that cannot be decoded, or declares too many pixels to be decoded safely; the
    message is the reason, in one line."""


# What the decoders raise for a file that is not a readable image.
DECODE_ERRORS = (RuntimeError, OSError, ValueError, SyntaxError)


def _reason(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def check_pixel_count(path: str, max_pixels: int) -> None:
    """Raise UnreadableImage when the header of the image file at `path` cannot be read or declares
    more than `max_pixels` pixels (width * height). Reads the header only, not the pixels."""
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        # PIL refuses to open an image of twice its own limit; a larger limit given here overrules it.
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # PIL's own check (or its warning, where warnings are errors) fires only beyond our limit.
        raise UnreadableImage(f"{_reason(error)} (over DATA.MAX_IMAGE_PIXELS = {max_pixels})") from error
    except DECODE_ERRORS as error:
        raise UnreadableImage(_reason(error)) from error
    if width * height > max_pixels:
        raise UnreadableImage(f"{width} x {height} = {width * height} pixels, over DATA.MAX_IMAGE_PIXELS = "
                              f"{max_pixels} (likely a file crafted to fill the memory; raise the limit if it is "
                              f"a real image)")


def read_rgb(path: str, max_pixels: int) -> torch.Tensor:
    """The image file at `path` as uint8 (3, H, W), its size checked first (`check_pixel_count`);
    UnreadableImage when it cannot be read."""
    check_pixel_count(path, max_pixels)
    try:
        return decode_image(path, mode=ImageReadMode.RGB)
    except DECODE_ERRORS as error:
        raise UnreadableImage(_reason(error)) from error


def decode_rgb(path: str, max_pixels: int) -> torch.Tensor:
    """The image file at `path` as uint8 (3, H, W); UserError naming it when it cannot be read or
    holds more than `max_pixels` pixels."""
    try:
        return read_rgb(path, max_pixels)
    except UnreadableImage as error:
        raise UserError(f"cannot read the image {path}: {error}; replace or delete the file, or set "
                        f"DATA.SKIP_BAD_IMAGES True to leave out every image that cannot be read") from error


def unreadable_files(paths: list[str], threads: int, max_pixels: int) -> list[tuple[str, str]]:
    """(path, reason) of every file in `paths` that does not decode or holds more than
    `max_pixels` pixels, trying them all once on `threads` threads (the decoders release the GIL)."""
    def failure(path: str) -> tuple[str, str] | None:
        try:
            read_rgb(path, max_pixels)
        except UnreadableImage as error:
            return path, str(error)
        return None

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(tqdm(pool.map(failure, paths), total=len(paths), desc="checking images", leave=False,
                            disable=None))
    return [result for result in results if result is not None]


def readable_only(paths: list[str], labels: np.ndarray, threads: int,
                  max_pixels: int) -> tuple[list[str], np.ndarray, list]:
    """(paths, labels) without the files that cannot be decoded or hold more than `max_pixels`
    pixels, and those as (path, reason)."""
    bad = unreadable_files(paths, threads, max_pixels)
    left_out = {path for path, _ in bad}
    keep = [row for row, path in enumerate(paths) if path not in left_out]
    return [paths[row] for row in keep], labels[keep], bad


def check_test_images(paths: list[str], threads: int, max_pixels: int) -> None:
    """UserError naming the first test image that cannot be decoded or holds more than
    `max_pixels` pixels: a submission needs every one."""
    bad = unreadable_files(paths, threads, max_pixels)
    if bad:
        path, reason = bad[0]
        raise UserError(f"cannot read the test image {path}: {reason} ({len(bad)} such test images); the "
                        f"submission needs a row for each, so DATA.SKIP_BAD_IMAGES leaves out train and val "
                        f"images only: replace the file")


def decode_square(path: str, size: int, interpolation: InterpolationMode, max_pixels: int) -> torch.Tensor:
    """The image file at `path` as uint8 (3, size, size): shorter side resized, centre cut;
    UserError naming it when it cannot be read or holds more than `max_pixels` pixels."""
    image = decode_rgb(path, max_pixels)
    if image.shape[-2:] != (size, size):
        image = F.resize(image, size, interpolation=interpolation, antialias=True)
        image = F.center_crop(image, [size, size])
    return image


class ImageFileStore:
    """The image files at `paths`, read as uint8 (B, 3, S, S) with S = `image_size`; a file of more
    than `max_pixels` pixels is refused before it is decoded. `ids` name them in a submission: the
    file names without their endings unless given."""

    def __init__(self, paths: list[str], image_size: int, interpolation: InterpolationMode, max_pixels: int,
                 ids: list[str] | None = None, left_out: list[tuple[str, str]] = ()):
        self.paths = list(paths)
        self.image_size = image_size
        self.interpolation = interpolation
        self.max_pixels = max_pixels
        self.ids = list(ids) if ids is not None else [os.path.splitext(os.path.basename(path))[0] for path in paths]
        self.left_out = list(left_out)  # (path, reason) of the split's files that could not be decoded

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, indices: np.ndarray) -> np.ndarray:
        images = np.empty((len(indices), 3, self.image_size, self.image_size), np.uint8)
        for row, index in enumerate(indices):
            images[row] = decode_square(self.paths[int(index)], self.image_size, self.interpolation,
                                        self.max_pixels).numpy()
        return images
