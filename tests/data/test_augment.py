"""The train augmentation keys (AUG.*): each switch and its shaping keys, the fixed order of the
chain, the value checks, eval left alone, and scripts/show_augmentations.py's preview."""
import importlib.util
import os

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from config import get_config, get_default_config
from data import build_loader
from data.transforms import build_eval_transform, build_train_transform
from utils.errors import UserError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Today's default steps switched off, so that each key is seen alone.
NO_AUG = ["AUG.CROP_PADDING", "0", "AUG.HFLIP_PROB", "0", "AUG.COLOR_JITTER", "0"]
BATCH = 16

# A value that switches each step on.
SWITCHES = [
    ("AUG.RRC_SCALE", "(0.25, 0.5)"),
    ("AUG.VFLIP_PROB", "1.0"),
    ("AUG.ROTATION", "30"),
    ("AUG.PERSPECTIVE_PROB", "1.0"),
    ("AUG.COLOR_JITTER_HUE", "0.3"),
    ("AUG.GRAYSCALE_PROB", "1.0"),
    ("AUG.BLUR_PROB", "1.0"),
    ("AUG.AUTO_AUGMENT", "imagenet"),
    ("AUG.AUTO_AUGMENT", "cifar10"),
    ("AUG.AUTO_AUGMENT", "svhn"),
    ("AUG.TRIVIAL_AUGMENT", "True"),
    ("AUG.AUGMIX", "3"),
    ("AUG.ERASE_PROB", "1.0"),
]
# Keys that shape a step: (the switch that turns it on, the key, a value other than its default).
SHAPERS = [
    (["AUG.PERSPECTIVE_PROB", "1.0"], "AUG.PERSPECTIVE_DISTORTION", "0.9"),
    (["AUG.BLUR_PROB", "1.0"], "AUG.BLUR_KERNEL", "9"),
    (["AUG.BLUR_PROB", "1.0"], "AUG.BLUR_SIGMA", "(3.0, 4.0)"),
    (["AUG.ERASE_PROB", "1.0"], "AUG.ERASE_SCALE", "(0.4, 0.5)"),
    (["AUG.ERASE_PROB", "1.0"], "AUG.ERASE_VALUE", "255"),
]
EVERYTHING_ON = ["AUG.RRC_SCALE", "(0.5, 1.0)", "AUG.VFLIP_PROB", "0.5", "AUG.ROTATION", "10",
                 "AUG.PERSPECTIVE_PROB", "0.5", "AUG.COLOR_JITTER_HUE", "0.1", "AUG.GRAYSCALE_PROB", "0.2",
                 "AUG.BLUR_PROB", "0.5", "AUG.AUTO_AUGMENT", "cifar10", "AUG.RAND_AUGMENT", "rand-m9-n2",
                 "AUG.TRIVIAL_AUGMENT", "True", "AUG.AUGMIX", "3", "AUG.ERASE_PROB", "0.5"]


def cifar_opts(root) -> list[str]:
    return ["DATA.DATASET", "cifar10", "DATA.DATA_PATH", repr(str(root)), "DATA.BATCH_SIZE", str(BATCH),
            "DATA.NUM_WORKERS", "0", "DEVICE", "cpu"]


def cifar_cfg(root, *opts):
    return get_config(opts=[*cifar_opts(root), *opts])


def first_batch(cfg) -> torch.Tensor:
    images, _ = next(iter(build_loader(cfg).train_loader))
    return images


def step_names(transform) -> list[str]:
    return [step.name for step in transform.transforms]


# --- every key: uint8 (B, 3, S, S), reproducible under the seed, and it changes the images ---------

@pytest.mark.parametrize("key, value", SWITCHES)
def test_each_switch_gives_uint8_batches_that_repeat_under_the_seed_and_change_the_images(cifar10, key, value):
    off = first_batch(cifar_cfg(cifar10.root, *NO_AUG))
    on = cifar_cfg(cifar10.root, *NO_AUG, key, value)
    first, second = first_batch(on), first_batch(on)
    assert first.dtype == torch.uint8 and first.shape == (BATCH, 3, 32, 32)
    assert torch.equal(first, second)
    assert not torch.equal(first, off)


@pytest.mark.parametrize("switch, key, value", SHAPERS)
def test_each_shaping_key_changes_the_images_of_its_step(cifar10, switch, key, value):
    default = first_batch(cifar_cfg(cifar10.root, *NO_AUG, *switch))
    changed_cfg = cifar_cfg(cifar10.root, *NO_AUG, *switch, key, value)
    changed = first_batch(changed_cfg)
    assert changed.dtype == torch.uint8 and changed.shape == (BATCH, 3, 32, 32)
    assert torch.equal(changed, first_batch(changed_cfg))
    assert not torch.equal(changed, default)


def test_everything_on_gives_reproducible_uint8_batches_that_change_with_the_seed(cifar10):
    cfg = cifar_cfg(cifar10.root, *EVERYTHING_ON)
    first = first_batch(cfg)
    assert first.dtype == torch.uint8 and first.shape == (BATCH, 3, 32, 32)
    assert torch.equal(first, first_batch(cfg))
    # Another seed shuffles differently too, so compare the same images: the dataset, item by item.
    dataset = build_loader(cfg).train_dataset
    draws = [torch.stack([image for image, _ in dataset.__getitems__([(i, seed) for i in range(8)])])
             for seed in (1, 2)]
    assert not torch.equal(draws[0], draws[1])


# --- defaults and order ---------------------------------------------------------------------------

def test_defaults_build_todays_chain_with_todays_pixels():
    defaults = get_default_config().AUG
    transform = build_train_transform(32, 32, defaults.CROP_PADDING, defaults.HFLIP_PROB, defaults.COLOR_JITTER,
                                      defaults.RAND_AUGMENT, "bilinear")
    assert step_names(transform) == ["RandomCrop", "RandomHorizontalFlip", "ColorJitter"]
    today = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(0.5),
                        v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4)])
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for seed, image in enumerate(images):
        torch.manual_seed(seed)
        ours = transform(image)
        torch.manual_seed(seed)
        assert torch.equal(ours, today(image))


def test_the_chain_runs_geometry_then_policies_then_colour_then_erasing(cifar10):
    transform = build_loader(cifar_cfg(cifar10.root, *EVERYTHING_ON)).train_dataset.transform
    assert step_names(transform) == [
        "RandomResizedCrop", "RandomCrop", "RandomHorizontalFlip", "RandomVerticalFlip", "RandomRotation",
        "RandomPerspective", "AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix", "ColorJitter",
        "RandomGrayscale", "GaussianBlur", "RandomErasing"]


def test_random_resized_crop_replaces_the_resize():
    transform = build_train_transform(24, 16, 0, 0.0, 0.0, "", "bicubic", rrc_scale=(0.5, 1.0))
    assert step_names(transform) == ["RandomResizedCrop"]
    assert transform(torch.zeros(3, 16, 16, dtype=torch.uint8)).shape == (3, 24, 24)
    assert build_train_transform(24, 16, 0, 0.0, 0.0, "", "bilinear", rrc_scale=(0, 0)).transforms[0].name == "Resize"


def test_vertical_flip_grayscale_and_erasing_do_what_they_say():
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(build_train_transform(32, 32, 0, 0.0, 0.0, "", "bilinear", vflip_prob=1.0)(image),
                       image.flip(-2))
    gray = build_train_transform(32, 32, 0, 0.0, 0.0, "", "bilinear", grayscale_prob=1.0)(image)
    assert gray.shape == (3, 32, 32) and torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    flat = torch.full((3, 32, 32), 10, dtype=torch.uint8)
    erased = build_train_transform(32, 32, 0, 0.0, 0.0, "", "bilinear", erase_prob=1.0, erase_value=200)(flat)
    rows, columns = torch.nonzero(erased[0] == 200, as_tuple=True)
    assert set(erased.unique().tolist()) == {10, 200}
    # One filled rectangle, in every channel.
    box = erased[:, rows.min():rows.max() + 1, columns.min():columns.max() + 1]
    assert bool((box == 200).all())


def test_warping_steps_run_with_bicubic_which_torch_grid_sampling_lacks():
    transform = build_train_transform(32, 32, 0, 0.0, 0.0, "rand-m9-n2", "bicubic", rotation=20.0,
                                      perspective_prob=1.0, auto_augment="svhn", trivial_augment=True,
                                      augmix_severity=5)
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for seed in range(30):
        torch.manual_seed(seed)
        assert transform(image).dtype == torch.uint8


def test_a_step_that_fails_raises_one_line_naming_the_transform_and_its_keys():
    # Past the config's check: torchvision's reflect padding needs the kernel below twice the side.
    transform = build_train_transform(8, 8, 0, 0.0, 0.0, "", "bilinear", blur_prob=1.0, blur_kernel=17)
    with pytest.raises(UserError) as info:
        transform(torch.zeros(3, 8, 8, dtype=torch.uint8))
    message = str(info.value)
    assert message.startswith("AUG.BLUR_PROB, AUG.BLUR_KERNEL, AUG.BLUR_SIGMA: GaussianBlur failed on a 8x8 px image: ")
    assert "Padding size" in message and "\n" not in message


# --- eval stays as it is ---------------------------------------------------------------------------

@pytest.mark.parametrize("eval_opts", [[], ["TEST.CROP", "True"], ["DATA.IMG_SIZE", "24"]])
def test_eval_transforms_are_untouched_by_the_augmentation_keys(cifar10, eval_opts):
    plain = build_loader(cifar_cfg(cifar10.root, *eval_opts))
    augmented = build_loader(cifar_cfg(cifar10.root, *eval_opts, *EVERYTHING_ON))
    size = int(eval_opts[1]) if eval_opts[:1] == ["DATA.IMG_SIZE"] else 32
    expected = build_eval_transform(size, 32, center_crop=bool(eval_opts[:1] == ["TEST.CROP"]),
                                    interpolation="bilinear")
    assert repr(augmented.val_dataset.transform) == repr(expected)
    for split in ("val_loader", "test_loader"):
        for (a, _), (b, _) in zip(getattr(plain, split), getattr(augmented, split)):
            assert torch.equal(a, b)


# --- value checks: one line, before anything runs --------------------------------------------------

@pytest.mark.parametrize("opts, message", [
    (["AUG.AUTO_AUGMENT", "imagnet"],
     "unknown AUG.AUTO_AUGMENT 'imagnet'; did you mean imagenet? choose one of: imagenet, cifar10, svhn"),
    (["AUG.VFLIP_PROB", "1.5"], "AUG.VFLIP_PROB must be in [0, 1]"),
    (["AUG.PERSPECTIVE_PROB", "-0.1"], "AUG.PERSPECTIVE_PROB must be in [0, 1]"),
    (["AUG.GRAYSCALE_PROB", "2"], "AUG.GRAYSCALE_PROB must be in [0, 1]"),
    (["AUG.BLUR_PROB", "-1"], "AUG.BLUR_PROB must be in [0, 1]"),
    (["AUG.ERASE_PROB", "1.01"], "AUG.ERASE_PROB must be in [0, 1]"),
    (["AUG.RRC_SCALE", "(0.5, 0.1)"], "AUG.RRC_SCALE must be (min, max) with 0 < min <= max <= 1"),
    (["AUG.RRC_SCALE", "(0.08,)"], "AUG.RRC_SCALE must be (min, max)"),
    (["AUG.RRC_SCALE", "(0.2, 1.5)"], "AUG.RRC_SCALE must be (min, max)"),
    (["AUG.ROTATION", "-10"], "AUG.ROTATION must be in [0, 180] degrees"),
    (["AUG.PERSPECTIVE_DISTORTION", "1.5"], "AUG.PERSPECTIVE_DISTORTION must be in [0, 1]"),
    (["AUG.COLOR_JITTER_HUE", "0.6"], "AUG.COLOR_JITTER_HUE must be in [0, 0.5]"),
    (["AUG.COLOR_JITTER_HUE", "-0.1"], "AUG.COLOR_JITTER_HUE must be in [0, 0.5]"),
    (["AUG.BLUR_KERNEL", "4"], "AUG.BLUR_KERNEL must be odd and below 2 * DATA.IMG_SIZE = 64; got 4"),
    (["AUG.BLUR_KERNEL", "65"], "AUG.BLUR_KERNEL must be odd"),
    (["AUG.BLUR_KERNEL", "-1"], "AUG.BLUR_KERNEL must be odd"),
    (["AUG.BLUR_SIGMA", "(0, 1)"], "AUG.BLUR_SIGMA must be (min, max) with 0 < min <= max"),
    (["AUG.AUGMIX", "11"], "AUG.AUGMIX must be a severity from 1 to 10, or 0 to disable"),
    (["AUG.AUGMIX", "-1"], "AUG.AUGMIX must be a severity"),
    (["AUG.ERASE_SCALE", "(0.5, 0.1)"], "AUG.ERASE_SCALE must be (min, max) with 0 < min <= max <= 1"),
    (["AUG.ERASE_VALUE", "256"], "AUG.ERASE_VALUE must be a uint8 pixel value, 0 to 255"),
    (["AUG.ERASE_VALUE", "-1"], "AUG.ERASE_VALUE must be a uint8 pixel value"),
    (["AUG.ERASE_VALUE", "'random'"], "AUG.ERASE_VALUE expects an integer"),
])
def test_bad_augmentation_values_are_one_line_user_errors(opts, message):
    with pytest.raises(UserError) as info:
        get_config(opts=opts)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_policy_names_match_in_any_case_and_ranges_switch_off_at_zero():
    cfg = get_config(opts=["AUG.AUTO_AUGMENT", "CIFAR10", "AUG.RRC_SCALE", "(0, 0)"])
    assert cfg.AUG.AUTO_AUGMENT == "cifar10"
    assert get_config(opts=["AUG.RRC_SCALE", "[0.08, 1]"]).AUG.RRC_SCALE == (0.08, 1)


# --- scripts/show_augmentations.py ------------------------------------------------------------------

@pytest.fixture
def preview(monkeypatch):
    """The script as a module, with the figures it saves recorded by file name."""
    spec = importlib.util.spec_from_file_location("show_augmentations",
                                                  os.path.join(REPO, "scripts", "show_augmentations.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.figures = {}
    real_save = module.save_figure

    def save(figure, path, **kwargs):
        module.figures[os.path.basename(path)] = figure
        real_save(figure, path, **kwargs)

    monkeypatch.setattr(module, "save_figure", save)
    return module


@pytest.mark.parametrize("recipe_text", [
    "AUG:\n  ROTATION: 20\n  ERASE_PROB: 0.5\n  ERASE_VALUE: 128\n",  # per image, in the workers
    "DATA:\n  CACHE: ram\nAUG:\n  ERASE_PROB: 0.5\n  ERASE_VALUE: 128\n",  # whole batches, on the device
], ids=["per_image", "batched"])
def test_preview_draws_8_images_beside_7_draws_exactly_as_the_loader_delivers_them(preview, cifar10, tmp_path,
                                                                                   capsys, recipe_text):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(recipe_text)
    out = tmp_path / "preview"
    assert preview.main(["--cfg", str(recipe), "--out", str(out), "--opts", *cifar_opts(cifar10.root),
                         "DATA.BATCH_SIZE", "64"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "augmentations.png")
    assert (out / "augmentations.png").is_file()

    figure = preview.figures["augmentations.png"]
    assert len(figure.axes) == 64 and all(len(axis.get_images()) == 1 for axis in figure.axes)
    grid = np.asarray(figure.axes).reshape(8, 8)
    assert [axis.get_title() for axis in grid[0]] == ["original"] + [f"draw {k}" for k in range(1, 8)]
    pixels = [[axis.get_images()[0].get_array().transpose(2, 0, 1) for axis in row] for row in grid]

    # Column 0 is the stored image; column k is the loader's output for that image in epoch k - 1.
    # The 50 train images in one batch.
    loaders = build_loader(get_config(str(recipe), [*cifar_opts(cifar10.root), "DATA.BATCH_SIZE", "64"]))
    positions = np.unique(np.linspace(0, 49, 8).round().astype(int))
    assert [grid[row, 0].get_ylabel() for row in range(8)] == [
        loaders.class_names[label] for label in cifar10.train_labels[positions]]
    for epoch in (0, 6):
        loaders.train_loader.sampler.set_epoch(epoch)
        order = [index for index, _ in loaders.train_loader.sampler]
        images, _ = next(iter(loaders.train_loader))
        for row, position in enumerate(positions):
            np.testing.assert_array_equal(pixels[row][0], cifar10.train_images[position])
            np.testing.assert_array_equal(pixels[row][epoch + 1], images[order.index(position)].numpy())
            assert pixels[row][epoch + 1].dtype == np.uint8


def test_preview_of_a_step_that_fails_is_one_line_naming_it(preview, cifar10, tmp_path, capsys, monkeypatch):
    def fail(self, image, params):
        raise RuntimeError("grid_sample: input too small")

    monkeypatch.setattr(v2.RandomRotation, "transform", fail)
    out = tmp_path / "preview"
    assert preview.main(["--out", str(out), "--opts", *cifar_opts(cifar10.root), "AUG.ROTATION", "20"]) == 2
    assert capsys.readouterr().err == (
        "error: AUG.ROTATION: RandomRotation failed on a 32x32 px image: grid_sample: input too small; "
        "change AUG.ROTATION, or switch the step off\n")
    assert not out.exists()


def test_preview_of_a_bad_config_is_one_line(preview, tmp_path, capsys):
    assert preview.main(["--out", str(tmp_path), "--opts", "AUG.AUTO_AUGMENT", "cifar"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: unknown AUG.AUTO_AUGMENT 'cifar'") and error.count("\n") == 1
    assert not os.listdir(tmp_path)
