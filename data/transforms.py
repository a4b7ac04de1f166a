"""Per-image transforms on uint8 CHW tensors, run in the loader workers.

Images stay uint8 all the way to the training device, where `data.normalize.Normalize` turns
them into floats, so every step below works on uint8 pixels, never on normalised ones. The train
chain runs in a fixed order, each step switched on by its AUG key:

1. geometry: resize to the model's size (or a random-resized crop, which replaces it), random
   crop with padding, horizontal and vertical flips, rotation, perspective;
2. the policy family: AutoAugment, RandAugment, TrivialAugment, AugMix;
3. colour: jitter (brightness, contrast, saturation, hue), grayscale, gaussian blur;
4. random erasing.

Why this order: geometry comes first so that every later step works on the final frame at the
model's size, and the policies see what their papers searched and tuned them on, a cropped and
flipped image. The policies come before the colour steps for the same reason, rather than on
images that jitter has already shifted. Within colour, grayscale follows jitter so that jitter's
saturation and hue still count on the images that stay in colour, and blur comes last (SimCLR's
order). Erasing is last so that the erased patch holds exactly AUG.ERASE_VALUE in what the model
receives: any earlier, and geometry would move or crop it and colour would change its value.

Rotation, perspective and the policy family warp with torch's grid sampling, which has no
bicubic mode for tensors: those steps use bilinear when DATA.INTERPOLATION is bicubic (resizes
and random-resized crops keep bicubic). Each step of the train chain is wrapped in `Step`, so
that a step that fails raises one UserError line naming the transform and its AUG keys.
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import AutoAugmentPolicy, InterpolationMode

from utils.choices import resolve_choice
from utils.errors import UserError

INTERPOLATIONS = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
}

# AUG.AUTO_AUGMENT names: the data set whose searched policy torchvision ships.
AUTO_AUGMENT_POLICIES = {
    "imagenet": AutoAugmentPolicy.IMAGENET,
    "cifar10": AutoAugmentPolicy.CIFAR10,
    "svhn": AutoAugmentPolicy.SVHN,
}

# Fraction of the resized image kept by the ImageNet-style centre crop at eval.
EVAL_CROP_FRACTION = 0.875


def parse_rand_augment(spec: str) -> tuple[int, int]:
    """Read a timm-style "rand-m9-n2" string into (num_ops, magnitude).

    Only the m (magnitude, 0-30) and n (number of ops) fields have a torchvision equivalent;
    other timm fields such as mstd or inc are accepted and reported by the caller as unused.
    """
    fields = spec.split("-")
    if fields[0] != "rand":
        raise UserError(f"AUG.RAND_AUGMENT must look like 'rand-m9-n2', got {spec!r}")
    num_ops, magnitude = 2, 9
    for field in fields[1:]:
        match = re.fullmatch(r"([a-z]+)([0-9.]+)", field)
        if not match:
            raise UserError(f"AUG.RAND_AUGMENT field {field!r} in {spec!r} is not NAME+NUMBER, e.g. m9")
        name, number = match.groups()
        if name == "m":
            magnitude = int(float(number))
        elif name == "n":
            num_ops = int(float(number))
    if not 0 <= magnitude <= 30:
        raise UserError(f"AUG.RAND_AUGMENT magnitude must be in 0..30, got {magnitude}")
    return num_ops, magnitude


def unused_rand_augment_fields(spec: str) -> list[str]:
    """The timm fields of a RandAugment string that torchvision's RandAugment cannot honour."""
    return [f for f in spec.split("-")[1:] if not re.fullmatch(r"[mn][0-9.]+", f)]


class Step:
    """One transform of the train chain, tagged with the config keys that shape it.

    It calls `transform` unchanged; when that raises, it raises one UserError line naming the
    transform, the image size and the keys, instead of a traceback from inside torchvision.
    """

    def __init__(self, transform: Callable, keys: Sequence[str], name: str | None = None):
        self.transform = transform
        self.keys = tuple(keys)
        self.name = name or type(transform).__name__

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        try:
            return self.transform(image)
        except UserError:
            raise
        except Exception as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"{', '.join(self.keys)}: {self.name} failed on a {image.shape[-2]}x{image.shape[-1]} px "
                            f"image: {reason}; change {' or '.join(self.keys)}, or switch the step off") from e

    def __repr__(self) -> str:
        return f"Step({self.transform!r}, keys={self.keys})"


def build_train_transform(img_size: int, stored_size: int, crop_padding: int, hflip_prob: float,
                          color_jitter: float, rand_augment: str, interpolation: str, *,
                          rrc_scale: Sequence[float] = (), vflip_prob: float = 0.0, rotation: float = 0.0,
                          perspective_prob: float = 0.0, perspective_distortion: float = 0.5,
                          color_jitter_hue: float = 0.0, grayscale_prob: float = 0.0, blur_prob: float = 0.0,
                          blur_kernel: int = 3, blur_sigma: Sequence[float] = (0.1, 2.0), auto_augment: str = "",
                          trivial_augment: bool = False, augmix_severity: int = 0, erase_prob: float = 0.0,
                          erase_scale: Sequence[float] = (0.02, 0.33), erase_value: int = 0) -> v2.Compose | None:
    """Random augmentation for training, in the order of the module docstring; each argument
    is the AUG key of the same name (`augmix_severity` is AUG.AUGMIX), and off at 0, "" or ().

    None when every step is switched off and the size already matches.
    """
    resample = INTERPOLATIONS[interpolation]
    warp = _warp_interpolation(interpolation)
    steps = [
        *_geometry_steps(img_size, stored_size, resample, warp, rrc_scale, crop_padding, hflip_prob, vflip_prob,
                         rotation, perspective_prob, perspective_distortion),
        *_policy_steps(warp, auto_augment, rand_augment, trivial_augment, augmix_severity),
        *_colour_steps(color_jitter, color_jitter_hue, grayscale_prob, blur_prob, blur_kernel, blur_sigma),
    ]
    if erase_prob > 0:
        steps.append(Step(v2.RandomErasing(erase_prob, scale=tuple(erase_scale), value=erase_value),
                          ["AUG.ERASE_PROB", "AUG.ERASE_SCALE", "AUG.ERASE_VALUE"]))
    return v2.Compose(steps) if steps else None


def _warp_interpolation(interpolation: str) -> InterpolationMode:
    """The mode for steps that warp through grid sampling, which has no bicubic for tensors."""
    return INTERPOLATIONS["bilinear" if interpolation == "bicubic" else interpolation]


def _is_on(value_range: Sequence[float]) -> bool:
    """A (min, max) key is off when empty or (0, 0)."""
    return len(value_range) > 0 and max(value_range) > 0


def _geometry_steps(img_size: int, stored_size: int, resample: InterpolationMode, warp: InterpolationMode,
                    rrc_scale: Sequence[float], crop_padding: int, hflip_prob: float, vflip_prob: float,
                    rotation: float, perspective_prob: float, perspective_distortion: float) -> list[Step]:
    steps = []
    if _is_on(rrc_scale):
        steps.append(Step(v2.RandomResizedCrop(img_size, scale=tuple(rrc_scale), interpolation=resample,
                                               antialias=True), ["AUG.RRC_SCALE"]))
    elif stored_size != img_size:
        steps.append(Step(v2.Resize((img_size, img_size), interpolation=resample, antialias=True),
                          ["DATA.IMG_SIZE", "DATA.INTERPOLATION"]))
    if crop_padding > 0:
        steps.append(Step(v2.RandomCrop(img_size, padding=crop_padding), ["AUG.CROP_PADDING"]))
    if hflip_prob > 0:
        steps.append(Step(v2.RandomHorizontalFlip(hflip_prob), ["AUG.HFLIP_PROB"]))
    if vflip_prob > 0:
        steps.append(Step(v2.RandomVerticalFlip(vflip_prob), ["AUG.VFLIP_PROB"]))
    if rotation > 0:
        steps.append(Step(v2.RandomRotation(rotation, interpolation=warp), ["AUG.ROTATION"]))
    if perspective_prob > 0:
        steps.append(Step(v2.RandomPerspective(perspective_distortion, perspective_prob, interpolation=warp),
                          ["AUG.PERSPECTIVE_PROB", "AUG.PERSPECTIVE_DISTORTION"]))
    return steps


def _policy_steps(warp: InterpolationMode, auto_augment: str, rand_augment: str, trivial_augment: bool,
                  augmix_severity: int) -> list[Step]:
    steps = []
    if auto_augment:
        policy = AUTO_AUGMENT_POLICIES[resolve_choice("AUG.AUTO_AUGMENT", auto_augment, AUTO_AUGMENT_POLICIES)]
        steps.append(Step(v2.AutoAugment(policy, interpolation=warp), ["AUG.AUTO_AUGMENT"]))
    if rand_augment:
        num_ops, magnitude = parse_rand_augment(rand_augment)
        steps.append(Step(v2.RandAugment(num_ops=num_ops, magnitude=magnitude, interpolation=warp),
                          ["AUG.RAND_AUGMENT"]))
    if trivial_augment:
        steps.append(Step(v2.TrivialAugmentWide(interpolation=warp), ["AUG.TRIVIAL_AUGMENT"]))
    if augmix_severity > 0:
        steps.append(Step(v2.AugMix(severity=augmix_severity, interpolation=warp), ["AUG.AUGMIX"]))
    return steps


def _colour_steps(color_jitter: float, hue: float, grayscale_prob: float, blur_prob: float, blur_kernel: int,
                  blur_sigma: Sequence[float]) -> list[Step]:
    steps = []
    if color_jitter > 0 or hue > 0:
        steps.append(Step(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter,
                                         hue=hue), ["AUG.COLOR_JITTER", "AUG.COLOR_JITTER_HUE"]))
    if grayscale_prob > 0:
        steps.append(Step(v2.RandomGrayscale(grayscale_prob), ["AUG.GRAYSCALE_PROB"]))
    if blur_prob > 0:
        blur = v2.GaussianBlur(blur_kernel, sigma=tuple(blur_sigma))
        steps.append(Step(v2.RandomApply([blur], p=blur_prob), ["AUG.BLUR_PROB", "AUG.BLUR_KERNEL", "AUG.BLUR_SIGMA"],
                          name="GaussianBlur"))
    return steps


def build_eval_transform(img_size: int, stored_size: int, center_crop: bool, interpolation: str) -> v2.Compose | None:
    """Deterministic resizing for val and test: straight to img_size, or resize then centre-crop.

    None when the stored images already have the model's size and no crop is asked for.
    """
    mode = INTERPOLATIONS[interpolation]
    if center_crop:
        resize_to = int(round(img_size / EVAL_CROP_FRACTION))
        return v2.Compose([v2.Resize(resize_to, interpolation=mode, antialias=True), v2.CenterCrop(img_size)])
    if stored_size != img_size:
        return v2.Compose([v2.Resize((img_size, img_size), interpolation=mode, antialias=True)])
    return None
