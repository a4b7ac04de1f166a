"""Images stored as files (data/image_files.py): the pixel limit read from each file's header before
its pixels are decoded, and the paths that must stay inside their folder."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision.transforms.v2 import InterpolationMode

from config import get_config
from data import build_loader
from data.image_files import ImageFileStore, UnreadableImage, check_pixel_count, path_inside, readable_only
from tests.conftest import write_image_folder, write_png_bomb
from utils.errors import UserError

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")
PIL_LIMIT = 89_478_485  # PIL's own, the default of DATA.MAX_IMAGE_PIXELS


def folder_cfg(root: Path, *opts: str):
    return get_config(opts=["DEVICE", "cpu", "DATA.DATASET", "imagefolder", "DATA.DATA_PATH", str(root),
                            "DATA.NUM_WORKERS", "0", "DATA.PERSISTENT_WORKERS", "False", "DATA.IMG_SIZE", "16",
                            "AUG.CROP_PADDING", "0", "AUG.HFLIP_PROB", "0", "AUG.COLOR_JITTER", "0", *opts])


@pytest.fixture
def pil_limit_restored(monkeypatch):
    """PIL's own limit as it was before the test, whatever the test raises it to."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)


def test_a_decompression_bomb_is_refused_from_its_header_naming_the_file(tmp_path):
    root = write_image_folder(tmp_path / "data", per_class=2, val_per_class=1, num_test=1)
    # 10000 x 10000 = 100 M pixels in 12 KB: decoded, 300 MB of RGB.
    bomb = write_png_bomb(root / "train" / "dog" / "bomb.png", 10_000, 10_000)
    store = build_loader(folder_cfg(root)).train_dataset.store
    with pytest.raises(UserError) as refusal:
        store.read(np.array([store.paths.index(str(bomb))]))
    message = str(refusal.value)
    assert str(bomb) in message and "DATA.MAX_IMAGE_PIXELS" in message and "100000000" in message
    assert "\n" not in message


def test_skip_bad_images_leaves_a_bomb_out_like_an_unreadable_file(tmp_path):
    root = write_image_folder(tmp_path / "data", per_class=2, val_per_class=1, num_test=1)
    bomb = write_png_bomb(root / "train" / "dog" / "bomb.png", 10_000, 10_000)
    loaders = build_loader(folder_cfg(root, "DATA.SKIP_BAD_IMAGES", "True"))
    assert str(bomb) not in loaders.train_dataset.store.paths
    assert len(loaders.train_dataset.store) == 3 * 2 + 2
    assert str(bomb) in loaders.notes[0] and "DATA.MAX_IMAGE_PIXELS" in loaders.notes[0]


def test_a_test_image_over_the_limit_is_refused_even_with_skip_bad_images(tmp_path):
    root = write_image_folder(tmp_path / "data", per_class=2, num_test=1)
    bomb = write_png_bomb(root / "test" / "bomb.png", 10_000, 10_000)
    with pytest.raises(UserError, match=f"cannot read the test image {bomb}: .*DATA.MAX_IMAGE_PIXELS"):
        build_loader(folder_cfg(root, "DATA.SKIP_BAD_IMAGES", "True"))


@pytest.mark.parametrize("limit, kept", [(399, []), (400, ["square.png"]), (420, ["square.png", "wide.png"])])
def test_the_limit_is_on_width_times_height(tmp_path, limit, kept):
    paths = [str(write_png_bomb(tmp_path / "square.png", 20, 20)), str(write_png_bomb(tmp_path / "wide.png", 21, 20))]
    readable, labels, left_out = readable_only(paths, np.array([0, 1]), 1, limit)
    assert [Path(path).name for path in readable] == kept
    assert labels.tolist() == [["square.png", "wide.png"].index(name) for name in kept]
    assert len(left_out) == 2 - len(kept)


def test_the_configured_limit_reaches_the_image_files(tmp_path):
    root = write_image_folder(tmp_path / "data", per_class=2, val_per_class=1, num_test=1)
    loaders = build_loader(folder_cfg(root, "DATA.MAX_IMAGE_PIXELS", "479"))  # the images are 24 x 20 = 480
    with pytest.raises(UserError, match="480 pixels, over DATA.MAX_IMAGE_PIXELS = 479"):
        loaders.val_dataset.store.read(np.array([0]))


def test_pils_own_bomb_error_beyond_twice_its_limit_is_a_refusal_too(tmp_path, pil_limit_restored):
    huge = write_png_bomb(tmp_path / "huge.png", 20_000, 20_000, with_pixels=False)  # 400 M pixels
    with pytest.raises(UnreadableImage, match="DATA.MAX_IMAGE_PIXELS"):
        check_pixel_count(str(huge), PIL_LIMIT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's warning, raised as an exception where warnings are errors
        with pytest.raises(UnreadableImage, match="DATA.MAX_IMAGE_PIXELS"):
            check_pixel_count(str(write_png_bomb(tmp_path / "big.png", 10_000, 10_000, with_pixels=False)),
                              PIL_LIMIT)


def test_a_limit_above_pils_own_lets_such_an_image_through(tmp_path, pil_limit_restored):
    huge = write_png_bomb(tmp_path / "huge.png", 20_000, 20_000, with_pixels=False)
    check_pixel_count(str(huge), 400_000_000)
    with pytest.raises(UnreadableImage, match="400000000 pixels, over DATA.MAX_IMAGE_PIXELS = 399999999"):
        check_pixel_count(str(huge), 399_999_999)


def test_a_file_whose_header_cannot_be_read_is_unreadable(tmp_path):
    store = ImageFileStore([str(tmp_path / "a.png")], 16, InterpolationMode.BILINEAR, PIL_LIMIT)
    (tmp_path / "a.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match=f"cannot read the image {tmp_path / 'a.png'}: "):
        store.read(np.array([0]))


@pytest.mark.parametrize("name, inside", [
    ("a.jpg", True), ("sub/a.jpg", True), ("sub/../a.jpg", True), ("./a.jpg", True),
    ("../a.jpg", False), ("sub/../../a.jpg", False), ("/etc/passwd", False), ("", False), (".", False),
    ("a\0.jpg", False), ("out/a.jpg", False),
])
def test_path_inside_follows_dots_links_and_absolute_names(tmp_path, name, inside):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "out").symlink_to(tmp_path / "elsewhere")
    assert (path_inside(str(root), name) is not None) == inside
