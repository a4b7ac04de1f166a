"""Per-image transforms on uint8 CHW tensors, run in the loader workers.

Images stay uint8 all the way to the training device, where `data.normalize.Normalize` turns
them into floats. So the order is: resize to the model's size, random crop with padding,
horizontal flip, colour jitter, RandAugment, all on uint8 pixels, never on normalised ones.
"""
from __future__ import annotations

import re

from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode

from utils.errors import UserError

INTERPOLATIONS = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
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


def build_train_transform(img_size: int, stored_size: int, crop_padding: int, hflip_prob: float,
                          color_jitter: float, rand_augment: str, interpolation: str) -> v2.Compose | None:
    """Random augmentation for training, in the order resize, crop, flip, jitter, RandAugment.

    None when every step is switched off and the size already matches.
    """
    steps = []
    if stored_size != img_size:
        steps.append(v2.Resize((img_size, img_size), interpolation=INTERPOLATIONS[interpolation], antialias=True))
    if crop_padding > 0:
        steps.append(v2.RandomCrop(img_size, padding=crop_padding))
    if hflip_prob > 0:
        steps.append(v2.RandomHorizontalFlip(hflip_prob))
    if color_jitter > 0:
        steps.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    if rand_augment:
        num_ops, magnitude = parse_rand_augment(rand_augment)
        steps.append(v2.RandAugment(num_ops=num_ops, magnitude=magnitude,
                                    interpolation=INTERPOLATIONS[interpolation]))
    return v2.Compose(steps) if steps else None


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
