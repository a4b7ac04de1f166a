"""Batched train augmentation: what it returns, and that it draws from the same distributions and
computes the same pixels as the per-image torchvision v2 chain of `data.transforms`.

The statistical tests run one check on both paths: the batch module over many samples, and
`build_train_transform` image by image (fewer samples, as it is slower), each against the
distribution the v2 transforms document.
"""
import math

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from data.batch_augment import BRIGHTNESS, CONTRAST, HUE, SATURATION, BatchAugment
from data.transforms import build_train_transform

BATCH_SAMPLES = 20000
PER_IMAGE_SAMPLES = 2000
# Chi-square with 4 degrees of freedom exceeds this with probability 0.001.
CHI_SQUARE_4_DOF_P001 = 18.47


def augment_copies(path: str, image: torch.Tensor, **settings) -> torch.Tensor:
    """Augment many copies of one uint8 (3, S, S) image with the batch module or the v2 chain.

    settings: crop_padding, hflip_prob, jitter (brightness = contrast = saturation), erase_prob.
    """
    size = image.shape[-1]
    padding, hflip, jitter = settings.get("crop_padding", 0), settings.get("hflip_prob", 0.0), settings.get("jitter", 0.0)
    erase = settings.get("erase_prob", 0.0)
    if path == "batch":
        augment = BatchAugment(size, padding, hflip, jitter, jitter, jitter, erase_prob=erase)
        return augment(image.expand(BATCH_SAMPLES, -1, -1, -1).contiguous(), torch.Generator().manual_seed(0))
    transform = build_train_transform(size, size, padding, hflip, jitter, "", "bilinear", erase_prob=erase)
    torch.manual_seed(0)
    return torch.stack([transform(image) for _ in range(PER_IMAGE_SAMPLES)])


def position_coded_image(size: int) -> torch.Tensor:
    """Channel 0 holds 1 + row * size + column, so any pixel says where it came from (0 is padding)."""
    codes = torch.arange(1, size * size + 1, dtype=torch.uint8).view(size, size)
    return torch.stack([codes, codes, codes])


def chi_square(counts: torch.Tensor) -> float:
    expected = counts.sum() / len(counts)
    return float(((counts - expected) ** 2 / expected).sum())


def standard_error(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


def test_output_is_a_uint8_batch_of_the_image_size_and_reproducible_by_seed():
    augment = BatchAugment(16, crop_padding=4, hflip_prob=0.5, brightness=0.4, contrast=0.4, saturation=0.4,
                           hue=0.1, erase_prob=0.5)
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    first = augment(images, torch.Generator().manual_seed(1))
    assert first.dtype == torch.uint8 and first.shape == (8, 3, 16, 16)
    assert torch.equal(first, augment(images, torch.Generator().manual_seed(1)))
    assert not torch.equal(first, augment(images, torch.Generator().manual_seed(2)))


def test_with_every_step_off_the_batch_comes_back_unchanged():
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    assert torch.equal(BatchAugment(16)(images, torch.Generator().manual_seed(0)), images)


def test_a_batch_of_another_size_is_refused():
    with pytest.raises(ValueError, match="16x16"):
        BatchAugment(16, crop_padding=4)(torch.zeros(2, 3, 20, 20, dtype=torch.uint8), torch.Generator())


@pytest.mark.parametrize("path", ["batch", "per_image"])
def test_crop_offsets_are_uniform_over_twice_the_padding_in_each_axis(path):
    size, padding = 8, 2
    out = augment_copies(path, position_coded_image(size), crop_padding=padding)
    # The output's centre pixel lies inside the original image for every offset in [0, 2 * padding].
    code = out[:, 0, size // 2, size // 2].long() - 1
    top, left = code // size - size // 2 + padding, code % size - size // 2 + padding
    for offsets in (top, left):
        counts = torch.bincount(offsets, minlength=2 * padding + 1).float()
        assert len(counts) == 2 * padding + 1 and counts.min() > 0
        assert chi_square(counts) < CHI_SQUARE_4_DOF_P001


@pytest.mark.parametrize("path", ["batch", "per_image"])
def test_flip_rate_is_the_flip_probability(path):
    image = position_coded_image(8)
    out = augment_copies(path, image, hflip_prob=0.3)
    flipped = (out[:, 0, 0, 0] == image[0, 0, -1]).float()
    assert torch.equal(out[flipped.bool()][0], image.flip(-1))
    assert abs(flipped.mean().item() - 0.3) < 4 * standard_error(0.3, len(out))


@pytest.mark.parametrize("path", ["batch", "per_image"])
def test_brightness_factors_are_uniform_over_one_plus_or_minus_the_jitter(path):
    level, jitter = 150, 0.4
    # A gray image: saturation and hue leave it gray and contrast leaves it flat, so its level
    # over the original is the brightness factor, give or take the truncation of each step.
    out = augment_copies(path, torch.full((3, 8, 8), level, dtype=torch.uint8), jitter=jitter)
    factors = out[:, 0, 0, 0].double() / level
    assert 1 - jitter - 0.03 < factors.min() < 1 - jitter + 0.02
    assert 1 + jitter - 0.02 < factors.max() <= 1 + jitter
    frequencies = torch.histc(factors, bins=8, min=1 - jitter, max=1 + jitter) / len(factors)
    assert (frequencies - 1 / 8).abs().max() < 4 * standard_error(1 / 8, len(factors)) + 0.01


@pytest.mark.parametrize("path", ["batch", "per_image"])
def test_erasing_rate_and_area_follow_the_probability_and_scale(path):
    size = 32
    out = augment_copies(path, torch.full((3, size, size), 7, dtype=torch.uint8), erase_prob=0.5)
    erased_area = (out[:, 0] == 0).float().mean(dim=(1, 2))
    erased = erased_area > 0
    assert abs(erased.float().mean().item() - 0.5) < 4 * standard_error(0.5, len(out))
    # Rounding the box's sides to whole pixels widens the (0.02, 0.33) area range a little.
    assert 0.01 < erased_area[erased].min() and erased_area[erased].max() < 0.40
    assert abs(erased_area[erased].mean().item() - (0.02 + 0.33) / 2) < 0.012


def test_colour_orders_are_uniform_permutations_per_sample():
    params = BatchAugment(8, brightness=0.4).sample_params(BATCH_SAMPLES, torch.Generator().manual_seed(0))
    orders = params.colour_order
    assert torch.equal(orders.sort(dim=1).values, torch.arange(4).expand_as(orders))
    first_steps = torch.bincount(orders[:, 0], minlength=4).float()
    assert chi_square(first_steps) < 16.27  # 3 degrees of freedom, p = 0.001


def per_image_reference(images: torch.Tensor, params, padding: int, erase_value: int) -> torch.Tensor:
    """The v2 functional ops, image by image, with the batch's parameters."""
    adjust = {BRIGHTNESS: (F.adjust_brightness, params.brightness), CONTRAST: (F.adjust_contrast, params.contrast),
              SATURATION: (F.adjust_saturation, params.saturation), HUE: (F.adjust_hue, params.hue)}
    size = images.shape[-1]
    out = []
    for i, image in enumerate(images):
        image = F.crop(F.pad(image, [padding] * 4), int(params.top[i]), int(params.left[i]), size, size)
        if params.flip[i]:
            image = F.horizontal_flip(image)
        for step in params.colour_order[i].tolist():
            function, factors = adjust[step]
            image = function(image, float(factors[i]))
        if params.erase[i]:
            image = F.erase(image, int(params.erase_top[i]), int(params.erase_left[i]), int(params.erase_height[i]),
                            int(params.erase_width[i]), torch.tensor([erase_value])[:, None, None])
        out.append(image)
    return torch.stack(out)


def test_crop_flip_and_erasing_equal_the_v2_functional_ops_on_the_same_parameters():
    augment = BatchAugment(12, crop_padding=3, hflip_prob=0.5, erase_prob=0.5, erase_value=9)
    images = torch.randint(0, 256, (64, 3, 12, 12), dtype=torch.uint8)
    params = augment.sample_params(64, torch.Generator().manual_seed(0))
    assert params.flip.any() and params.erase.any() and (params.top != params.left).any()
    assert torch.equal(augment.apply(images, params), per_image_reference(images, params, 3, 9))


def test_colour_jitter_is_within_one_level_of_the_v2_functional_ops_on_the_same_parameters():
    augment = BatchAugment(12, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2)
    images = torch.randint(0, 256, (64, 3, 12, 12), dtype=torch.uint8)
    params = augment.sample_params(64, torch.Generator().manual_seed(0))
    difference = augment.apply(images, params).int() - per_image_reference(images, params, 0, 0).int()
    assert difference.abs().max() <= 1


# --- vertical flip, grayscale and the random-resized crop -----------------------------------------

def augment_copies_with(path: str, image: torch.Tensor, output_size: int | None = None, samples: int | None = None,
                        **settings) -> torch.Tensor:
    """Like `augment_copies`, for the steps passed by their BatchAugment keyword: vflip_prob,
    grayscale_prob, rrc_scale (then `output_size` may differ from the image's)."""
    size = image.shape[-1]
    output_size = output_size or size
    if path == "batch":
        augment = BatchAugment(output_size, input_size=size, **settings)
        count = samples or BATCH_SAMPLES
        return augment(image.expand(count, -1, -1, -1).contiguous(), torch.Generator().manual_seed(0))
    transform = build_train_transform(output_size, size, 0, 0.0, 0.0, "", "bilinear", **settings)
    torch.manual_seed(0)
    return torch.stack([transform(image) for _ in range(samples or PER_IMAGE_SAMPLES)])


@pytest.mark.parametrize("path", ["batch", "per_image"])
def test_vertical_flip_rate_is_its_probability(path):
    image = position_coded_image(8)
    out = augment_copies_with(path, image, vflip_prob=0.3)
    flipped = out[:, 0, 0, 0] == image[0, -1, 0]
    assert torch.equal(out[flipped][0], image.flip(-2))
    assert abs(flipped.float().mean().item() - 0.3) < 4 * standard_error(0.3, len(out))


@pytest.mark.parametrize("path", ["batch", "per_image"])
def test_grayscale_rate_is_its_probability_and_gives_torchvisions_luma(path):
    image = torch.stack([torch.full((4, 4), level, dtype=torch.uint8) for level in (200, 50, 10)])
    out = augment_copies_with(path, image, grayscale_prob=0.2)
    gray = (out[:, 0] == out[:, 1]).all(dim=(1, 2))
    assert abs(gray.float().mean().item() - 0.2) < 4 * standard_error(0.2, len(out))
    assert torch.equal(out[gray][0], F.rgb_to_grayscale(image, num_output_channels=3))


def ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs."""
    values = torch.cat([a, b]).sort().values
    ecdf = [torch.searchsorted(x.sort().values, values, right=True).double() / len(x) for x in (a, b)]
    return float((ecdf[0] - ecdf[1]).abs().max())


def test_random_resized_crop_boxes_follow_the_v2_distribution_of_area_and_aspect_ratio():
    size, per_image = 96, 4000
    params = BatchAugment(32, input_size=size, rrc_scale=(0.08, 1.0)).sample_params(
        BATCH_SAMPLES, torch.Generator().manual_seed(0))
    batch_area = (params.crop_height * params.crop_width).double() / size**2
    batch_ratio = (params.crop_width.double() / params.crop_height).log()
    torch.manual_seed(0)
    reference = v2.RandomResizedCrop(32, scale=(0.08, 1.0))
    boxes = [reference.make_params([torch.zeros(3, size, size)]) for _ in range(per_image)]
    v2_area = torch.tensor([box["height"] * box["width"] for box in boxes], dtype=torch.float64) / size**2
    v2_ratio = torch.tensor([box["width"] / box["height"] for box in boxes], dtype=torch.float64).log()
    # KS at p = 0.001 for these sample sizes.
    threshold = 1.95 * math.sqrt((BATCH_SAMPLES + per_image) / (BATCH_SAMPLES * per_image))
    assert ks_statistic(batch_area, v2_area) < threshold
    assert ks_statistic(batch_ratio, v2_ratio) < threshold
    assert 0.075 < batch_area.min() and batch_area.max() <= 1.0
    assert ((params.crop_top + params.crop_height) <= size).all()
    assert ((params.crop_left + params.crop_width) <= size).all()
    # Where the box fits, every position is possible: the tops of full-height boxes are 0, the others spread.
    assert params.crop_top.unique().numel() > size // 2


@pytest.mark.parametrize("input_size, output_size", [(40, 16), (12, 16), (16, 16)])
def test_random_resized_crop_is_within_one_level_of_v2_resized_crop_on_the_same_boxes(input_size, output_size):
    augment = BatchAugment(output_size, input_size=input_size, rrc_scale=(0.08, 1.0))
    images = torch.randint(0, 256, (64, 3, input_size, input_size), dtype=torch.uint8)
    params = augment.sample_params(64, torch.Generator().manual_seed(0))
    reference = torch.stack([F.resized_crop(image, int(params.crop_top[i]), int(params.crop_left[i]),
                                            int(params.crop_height[i]), int(params.crop_width[i]),
                                            [output_size, output_size], antialias=True)
                             for i, image in enumerate(images)])
    out = augment.apply(images, params)
    assert out.shape == (64, 3, output_size, output_size)
    assert (out.int() - reference.int()).abs().max() <= 1


def test_vertical_flip_and_grayscale_equal_the_v2_functional_ops_on_the_same_parameters():
    augment = BatchAugment(12, crop_padding=2, hflip_prob=0.5, vflip_prob=0.5, grayscale_prob=0.5)
    images = torch.randint(0, 256, (64, 3, 12, 12), dtype=torch.uint8)
    params = augment.sample_params(64, torch.Generator().manual_seed(0))
    assert params.vflip.any() and params.gray.any() and not params.gray.all()
    reference = []
    for i, image in enumerate(images):
        image = F.crop(F.pad(image, [2] * 4), int(params.top[i]), int(params.left[i]), 12, 12)
        image = F.horizontal_flip(image) if params.flip[i] else image
        image = F.vertical_flip(image) if params.vflip[i] else image
        reference.append(F.rgb_to_grayscale(image, num_output_channels=3) if params.gray[i] else image)
    assert torch.equal(augment.apply(images, params), torch.stack(reference))


def test_an_input_of_another_size_needs_the_random_resized_crop():
    with pytest.raises(ValueError, match="96 px input for 32 px output needs the random-resized crop"):
        BatchAugment(32, input_size=96)
