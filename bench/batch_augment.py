"""Images per second of the batched train augmentation: this project's `data.batch_augment`
against `kornia.augmentation`, on the same uint8 batches and the same recipe (padded crop, flip,
colour jitter, random erasing), on the CPU and, when there is one, on CUDA.

    python bench/batch_augment.py                 # 512 at 32 px and 256 at 96 px
    python bench/batch_augment.py --hue 0.1 --repeats 20

Kornia works on floats in [0, 1], so its timing includes the uint8 -> float -> uint8 conversion
that our module does internally; both return uint8 batches. kornia is not a project requirement
(BENCHMARKS.md says why): `pip install kornia==0.8.1` to run its column.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from typing import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data.batch_augment import BatchAugment  # noqa: E402

# (batch size, image side, crop padding): CIFAR at 32 px and MediumImageNet at 96 px.
SHAPES = ((512, 32, 4), (256, 96, 8))


def build_kornia(size: int, padding: int, args: argparse.Namespace) -> Callable:
    import kornia.augmentation as K

    pipeline = K.AugmentationSequential(
        K.RandomCrop((size, size), padding=padding),
        K.RandomHorizontalFlip(p=args.hflip),
        K.ColorJitter(args.jitter, args.jitter, args.jitter, args.hue, p=1.0),
        K.RandomErasing(p=args.erase, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0),
    )

    def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # kornia draws from torch's global generator; it takes no generator argument.
        out = pipeline(images.float().div_(255))
        return out.mul_(255).round_().clamp_(0, 255).to(torch.uint8)

    return augment


def images_per_second(augment: Callable, images: torch.Tensor, repeats: int) -> float:
    generator = torch.Generator(device=images.device).manual_seed(0)
    synchronize = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    for _ in range(3):
        augment(images, generator)
    synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        augment(images, generator)
    synchronize()
    return images.shape[0] * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hflip", type=float, default=0.5)
    parser.add_argument("--jitter", type=float, default=0.4, help="brightness, contrast and saturation")
    parser.add_argument("--hue", type=float, default=0.0)
    parser.add_argument("--erase", type=float, default=0.25, help="random erasing probability")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; hflip {args.hflip}, jitter "
          f"{args.jitter}, hue {args.hue}, erase {args.erase}")
    print("| device | batch | px | own images/s | kornia images/s | own / kornia |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for device in devices:
        for batch_size, size, padding in SHAPES:
            images = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, device=device)
            own = BatchAugment(size, padding, args.hflip, args.jitter, args.jitter, args.jitter, args.hue,
                               args.erase)
            own_rate = images_per_second(own, images, args.repeats)
            if importlib.util.find_spec("kornia") is None:
                print(f"| {device} | {batch_size} | {size} | {own_rate:,.0f} | not installed | |", flush=True)
                continue
            kornia_rate = images_per_second(build_kornia(size, padding, args), images, args.repeats)
            print(f"| {device} | {batch_size} | {size} | {own_rate:,.0f} | {kornia_rate:,.0f} | "
                  f"{own_rate / kornia_rate:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
