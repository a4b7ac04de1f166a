"""The train augmentations of `data.transforms` on whole uint8 batches, on any device.

    uint8 (B, 3, In, In) ─► random-resized crop to S (two matmuls) ─► padded crop + horizontal and
    vertical flips (one gather) ─► colour jitter (float, per-sample order) ─► grayscale ─►
    random erasing ─► uint8 (B, 3, S, S)

Each sample gets its own random parameters, drawn from the same distributions as the per-image
torchvision v2 transforms that `build_train_transform` chains (RandomResizedCrop, RandomCrop
with padding, RandomHorizontalFlip, RandomVerticalFlip, ColorJitter, RandomGrayscale,
RandomErasing), and applied with the same uint8 arithmetic: every colour step truncates to whole
intensity levels, as torchvision's uint8 kernels do, so the batch path equals the per-image path
on the same parameters to within one level. The random-resized crop resamples each crop with
the weights of torchvision's antialiased bilinear resize (a triangle filter as wide as the
scale, renormalised at the crop's edges), as two batched matrix products: within one level too.

All draws come from the `torch.Generator` passed in, on the batch's device, and no step reads a
value back to the host, so a step on CUDA never waits for the GPU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Sequence

import torch
from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv

# The colour steps, numbered as v2.ColorJitter numbers them in its random order.
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)

# v2.RandomErasing's default aspect-ratio range; it draws the ratio log-uniformly within it.
ERASE_RATIO = (0.3, 3.3)
# v2.RandomErasing tries this many (area, ratio) draws for a box that fits, then erases nothing.
ERASE_ATTEMPTS = 10
# v2.RandomResizedCrop's default aspect-ratio range (log-uniform), and its tries for a crop that
# fits before it falls back to the central crop (the whole image, for square images).
RRC_RATIO = (3 / 4, 4 / 3)
RRC_ATTEMPTS = 10


@dataclass
class AugmentParams:
    """One batch's random parameters, one entry (or row) per sample; see `BatchAugment`."""

    top: torch.Tensor  # (B,) crop offset into the zero-padded image, in [0, 2 * padding]
    left: torch.Tensor  # (B,) likewise, drawn after `top` as v2.RandomCrop does
    flip: torch.Tensor  # (B,) bool: mirror left-right
    colour_order: torch.Tensor  # (B, 4) a permutation of BRIGHTNESS, CONTRAST, SATURATION, HUE
    brightness: torch.Tensor  # (B,) float64 factors; 1 (or 0 for hue) where the step is off
    contrast: torch.Tensor
    saturation: torch.Tensor
    hue: torch.Tensor
    erase: torch.Tensor  # (B,) bool: erase a box
    erase_top: torch.Tensor  # (B,) the box, in pixels of the output image
    erase_left: torch.Tensor
    erase_height: torch.Tensor
    erase_width: torch.Tensor
    vflip: torch.Tensor  # (B,) bool: mirror top-bottom
    gray: torch.Tensor  # (B,) bool: make grayscale
    crop_top: torch.Tensor  # (B,) the random-resized crop's box, in pixels of the input image
    crop_left: torch.Tensor
    crop_height: torch.Tensor
    crop_width: torch.Tensor

    def rows(self, index: torch.Tensor | slice) -> "AugmentParams":
        """The parameters of the samples at `index` (a slice or an index tensor on their device)."""
        return AugmentParams(*(getattr(self, field.name)[index] for field in fields(self)))


class BatchAugment:
    """Per-sample random-resized crop, padded crop, flips, colour jitter, grayscale and random
    erasing on a uint8 (B, 3, In, In) batch, giving (B, 3, S, S) with S = `image_size`. In is
    `input_size`, which may differ from S only with the random-resized crop on. Each other
    argument is the AUG key of the same name (`brightness`, `contrast` and `saturation` all take
    AUG.COLOR_JITTER), off at 0 or ().

    Call it as `augment(images, generator)`; `sample_params` and `apply` are the two halves, for
    callers (and tests) that need the parameters.
    """

    def __init__(self, image_size: int, crop_padding: int = 0, hflip_prob: float = 0.0, brightness: float = 0.0,
                 contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0, erase_prob: float = 0.0,
                 erase_scale: Sequence[float] = (0.02, 0.33), erase_value: int = 0, *, input_size: int | None = None,
                 rrc_scale: Sequence[float] = (), vflip_prob: float = 0.0, grayscale_prob: float = 0.0):
        self.image_size = image_size
        self.input_size = input_size or image_size
        self.rrc_scale = tuple(rrc_scale) if len(rrc_scale) and max(rrc_scale) > 0 else ()
        if self.input_size != image_size and not self.rrc_scale:
            raise ValueError(f"{self.input_size} px input for {image_size} px output needs the random-resized crop; "
                             f"resize before the batch augmentation")
        self.crop_padding = crop_padding
        self.hflip_prob = hflip_prob
        self.vflip_prob = vflip_prob
        self.grayscale_prob = grayscale_prob
        # v2.ColorJitter's ranges: factors in [max(0, 1 - j), 1 + j], hue in [-h, h].
        self.colour_ranges = {
            BRIGHTNESS: (max(0.0, 1.0 - brightness), 1.0 + brightness) if brightness > 0 else None,
            CONTRAST: (max(0.0, 1.0 - contrast), 1.0 + contrast) if contrast > 0 else None,
            SATURATION: (max(0.0, 1.0 - saturation), 1.0 + saturation) if saturation > 0 else None,
            HUE: (-hue, hue) if hue > 0 else None,
        }
        self.erase_prob = erase_prob
        self.erase_scale = tuple(erase_scale)
        self.erase_value = erase_value

    @property
    def is_identity(self) -> bool:
        """Every step is off: batches come out as they went in."""
        return (not self.rrc_scale and self.crop_padding == 0 and self.hflip_prob == 0 and self.vflip_prob == 0
                and not any(self.colour_ranges.values()) and self.grayscale_prob == 0 and self.erase_prob == 0)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(images, self.sample_params(images.shape[0], generator))

    def sample_params(self, batch_size: int, generator: torch.Generator) -> AugmentParams:
        """Draw every sample's parameters from `generator`, on the generator's device."""
        device = generator.device

        def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
            draw = torch.rand(batch_size, *shape, generator=generator, device=device, dtype=torch.float64)
            return low + (high - low) * draw

        def factors(step: int) -> torch.Tensor:
            value_range = self.colour_ranges[step]
            identity = 0.0 if step == HUE else 1.0
            return uniform(*value_range) if value_range else torch.full((batch_size,), identity, device=device,
                                                                          dtype=torch.float64)

        offsets = torch.randint(0, 2 * self.crop_padding + 1, (2, batch_size), generator=generator, device=device)
        flip = torch.rand(batch_size, generator=generator, device=device) < self.hflip_prob
        # argsort of uniform keys is a uniformly random permutation, like v2.ColorJitter's randperm(4).
        colour_order = torch.rand(batch_size, 4, generator=generator, device=device).argsort(dim=1)
        brightness, contrast, saturation, hue = (factors(step) for step in (BRIGHTNESS, CONTRAST, SATURATION, HUE))
        erase, box = self._sample_erase_boxes(batch_size, generator, uniform)
        # Drawn after the others, so that adding them changed no earlier draw.
        vflip = torch.rand(batch_size, generator=generator, device=device) < self.vflip_prob
        gray = torch.rand(batch_size, generator=generator, device=device) < self.grayscale_prob
        crop = self._sample_crop_boxes(batch_size, generator, uniform)
        return AugmentParams(offsets[0], offsets[1], flip, colour_order, brightness, contrast, saturation, hue,
                             erase, *box, vflip, gray, *crop)

    def _sample_crop_boxes(self, batch_size: int, generator: torch.Generator, uniform):
        """v2.RandomResizedCrop's box: the first of RRC_ATTEMPTS draws of (area fraction,
        log-uniform aspect ratio) whose rounded box fits, else the whole (square) image."""
        size = self.input_size
        device = generator.device
        if not self.rrc_scale:
            zero, whole = (torch.full((batch_size,), value, device=device, dtype=torch.long) for value in (0, size))
            return zero, zero, whole, whole
        area = size * size * uniform(*self.rrc_scale, RRC_ATTEMPTS)
        ratio = torch.exp(uniform(math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1]), RRC_ATTEMPTS))
        widths = torch.sqrt(area * ratio).round().long()
        heights = torch.sqrt(area / ratio).round().long()
        fits = (widths > 0) & (widths <= size) & (heights > 0) & (heights <= size)
        first_fit = fits.long().argmax(dim=1, keepdim=True)
        any_fit = fits.any(dim=1)
        height = torch.where(any_fit, heights.gather(1, first_fit)[:, 0], size)
        width = torch.where(any_fit, widths.gather(1, first_fit)[:, 0], size)
        position = torch.rand(2, batch_size, generator=generator, device=device, dtype=torch.float64)
        top = (position[0] * (size - height + 1)).floor().long()
        left = (position[1] * (size - width + 1)).floor().long()
        return top, left, height, width

    def _sample_erase_boxes(self, batch_size: int, generator: torch.Generator, uniform):
        """v2.RandomErasing's box: with probability erase_prob, the first of ERASE_ATTEMPTS draws
        of (area fraction, log-uniform aspect ratio) whose rounded box fits strictly inside."""
        size = self.image_size
        device = generator.device
        area = size * size * uniform(*self.erase_scale, ERASE_ATTEMPTS)
        ratio = torch.exp(uniform(math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1]), ERASE_ATTEMPTS))
        heights = torch.sqrt(area * ratio).round().long()  # round half to even, as Python's round
        widths = torch.sqrt(area / ratio).round().long()
        fits = (heights < size) & (widths < size)
        first_fit = fits.long().argmax(dim=1, keepdim=True)
        height, width = heights.gather(1, first_fit)[:, 0], widths.gather(1, first_fit)[:, 0]
        erase = (torch.rand(batch_size, generator=generator, device=device) < self.erase_prob) & fits.any(dim=1)
        position = torch.rand(2, batch_size, generator=generator, device=device, dtype=torch.float64)
        top = (position[0] * (size - height + 1)).floor().long()
        left = (position[1] * (size - width + 1)).floor().long()
        return erase, (top, left, height, width)

    def apply(self, images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Augment a uint8 (B, 3, S, S) batch with the given parameters; returns a new uint8 batch."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected a uint8 (B, 3, H, W) batch, got {tuple(images.shape)} {images.dtype}")
        if images.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"expected {self.input_size}x{self.input_size} images, got "
                             f"{images.shape[-2]}x{images.shape[-1]}: resize before the batch augmentation")
        if self.rrc_scale:
            images = self._resized_crop(images, params)
        images = self._crop_and_flip(images, params)
        if any(self.colour_ranges.values()) or self.grayscale_prob > 0:
            images = self._change_colour(images, params)
        if self.erase_prob > 0:
            images = self._erase(images, params)
        return images

    def _resized_crop(self, images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Each sample's crop box resized to image_size: rows, then columns, each a matrix of
        resize weights per sample; rounded to whole levels, as the uint8 resize does."""
        row_weights = _resize_weights(params.crop_top, params.crop_height, self.input_size, self.image_size)
        column_weights = _resize_weights(params.crop_left, params.crop_width, self.input_size, self.image_size)
        out = row_weights[:, None] @ images.float() @ column_weights[:, None].transpose(-1, -2)
        return out.round_().clamp_(0, 255).to(torch.uint8)

    def _crop_and_flip(self, images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Crop from the zero-padded batch by gathering each sample's rows and columns; a flip
        reverses the gathered columns (or rows), so all three steps cost one pass over the pixels."""
        if self.crop_padding == 0 and self.hflip_prob == 0 and self.vflip_prob == 0:
            return images
        size, padded_size = self.image_size, self.image_size + 2 * self.crop_padding
        padded = torch.nn.functional.pad(images, (self.crop_padding,) * 4)
        steps = torch.arange(size, device=images.device)
        rows = params.top[:, None] + torch.where(params.vflip[:, None], steps.flip(0), steps)
        columns = params.left[:, None] + torch.where(params.flip[:, None], steps.flip(0), steps)
        flat_index = (rows[:, :, None] * padded_size + columns[:, None, :]).view(-1, 1, size * size)
        pixels = padded.view(images.shape[0], 3, padded_size * padded_size)
        return pixels.gather(2, flat_index.expand(-1, 3, -1)).view(-1, 3, size, size)

    def _change_colour(self, images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Colour jitter, then grayscale (v2.RandomGrayscale: the truncated luma in all three channels)."""
        pixels = self._jitter_colour(images.float(), params) if any(self.colour_ranges.values()) else images.float()
        if self.grayscale_prob > 0:
            pixels = torch.where(params.gray[:, None, None, None], _grayscale_levels(pixels), pixels)
        return pixels.to(torch.uint8)

    def _jitter_colour(self, pixels: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """v2.ColorJitter with a random order per sample, without reading the orders back to the
        host. Brightness, contrast and saturation are all one blend, pixels * f + other * (1 - f),
        with other = 0, the grayscale mean or the grayscale image: so at each of the four
        positions one blend serves the whole batch, each sample with the step its order puts
        there (f = 1, the identity, where that step is hue or off). Hue, when on, runs on the
        whole batch at each position and is kept where it is the sample's step. Takes and
        returns float pixels holding whole levels."""
        factors = torch.stack((params.brightness, params.contrast, params.saturation, params.hue), dim=1)
        # Unused steps keep their identity factor (1; hue is never blended), so gathering is enough.
        factors[:, HUE] = 1.0
        for position in range(4):
            step = params.colour_order[:, position]
            factor = factors.gather(1, step[:, None])[:, 0]
            gray = _grayscale_levels(pixels)
            mean = gray.mean(dim=(1, 2, 3), keepdim=True)
            other = gray.mul_(_per_sample(step == SATURATION)).add_(mean * _per_sample(step == CONTRAST))
            pixels.mul_(_per_sample(factor)).addcmul_(other, _per_sample(1.0 - factor)).clamp_(0, 255).floor_()
            if self.colour_ranges[HUE]:
                on_hue = (step == HUE)[:, None, None, None]
                pixels = torch.where(on_hue, _adjust_hue(pixels, params.hue), pixels)
        return pixels

    def _erase(self, images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        steps = torch.arange(self.image_size, device=images.device)
        in_rows = (steps >= params.erase_top[:, None]) & (steps < (params.erase_top + params.erase_height)[:, None])
        in_columns = ((steps >= params.erase_left[:, None])
                      & (steps < (params.erase_left + params.erase_width)[:, None]))
        box = in_rows[:, :, None] & in_columns[:, None, :] & params.erase[:, None, None]
        return images.masked_fill(box[:, None], self.erase_value)


# The colour helpers below take float pixels holding whole levels in [0, 255] and reproduce
# torchvision's uint8 kernels (v2.functional.adjust_*): the same formulas, float32 arithmetic,
# and truncation back to a whole level after every step (its blend is
# image * ratio + other * (1 - ratio), clamped to [0, 255] and cast to uint8).

def _resize_weights(start: torch.Tensor, length: torch.Tensor, in_size: int, out_size: int) -> torch.Tensor:
    """(B, out_size, in_size): row k of sample b averages input pixels start[b] ... start[b] +
    length[b] - 1 into output pixel k, with the antialiased bilinear filter of torch's resize:
    a triangle centred on the output pixel's centre, `max(1, length / out_size)` input pixels
    wide on each side, its taps outside the crop dropped and the rest normalised to sum 1."""
    scale = (length.double() / out_size)[:, None, None]
    support = scale.clamp(min=1.0)
    centres = start[:, None, None] + (torch.arange(out_size, device=start.device)[None, :, None] + 0.5) * scale
    pixels = torch.arange(in_size, device=start.device)[None, None, :]
    weights = (1 - ((pixels + 0.5 - centres) / support).abs()).clamp_(min=0)
    inside = (pixels >= start[:, None, None]) & (pixels < (start + length)[:, None, None])
    weights = weights * inside
    return (weights / weights.sum(dim=2, keepdim=True)).float()


def _per_sample(factor: torch.Tensor) -> torch.Tensor:
    return factor.float()[:, None, None, None]


def _grayscale_levels(pixels: torch.Tensor) -> torch.Tensor:
    """torchvision's luma weights, floored as its uint8 contrast and saturation kernels do."""
    red, green, blue = pixels.unbind(dim=1)
    return red.mul(0.2989).add_(green, alpha=0.587).add_(blue, alpha=0.114).floor_().unsqueeze(1)


def _adjust_hue(pixels: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Shift the hue through HSV with torchvision's own conversions; back to levels as its
    to_dtype does (scale by 256 - 1e-3 and truncate)."""
    hue, saturation, value = _rgb_to_hsv(pixels.mul(1.0 / 255)).unbind(dim=1)
    hue = (hue + factor.float()[:, None, None]).remainder_(1.0)
    rgb = _hsv_to_rgb(torch.stack((hue, saturation, value), dim=1))
    return rgb.mul_(255.0 + 1.0 - 1e-3).floor_()
