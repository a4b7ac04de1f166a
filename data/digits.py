"""scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), bundled with scikit-learn.

Real data that needs no download: the quickstart and the end-to-end tests train on it. The 8x8
grey images (values 0-16) are upscaled once to the model's size and replicated to 3 channels.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

NUM_CLASSES = 10
CLASS_NAMES = [str(digit) for digit in range(NUM_CLASSES)]
MEAN = (0.31, 0.31, 0.31)
STD = (0.32, 0.32, 0.32)


def load_digits_arrays(img_size: int) -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as uint8 images (N, 3, img_size, img_size) and int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    grey = torch.from_numpy(digits.images.astype(np.float32) * (255.0 / 16.0)).unsqueeze(1)
    upscaled = F.interpolate(grey, size=(img_size, img_size), mode="bilinear", align_corners=False)
    images = upscaled.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    return images.numpy(), digits.target.astype(np.int64)
