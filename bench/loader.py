"""How many images per second the train loader delivers, without a model in the way.

Writes a synthetic MediumImageNet-layout HDF5 file (or reads a real one with --hdf5), builds the
train loader exactly as main.py does, and times full batches. Compare the number with the
images/s a training run logs: if the loader's rate is not well above it, the loader is the
bottleneck. Usage:

    python bench/loader.py                       # synthetic 96 px file, 2 and all-core workers
    python bench/loader.py --hdf5 /data/medium-imagenet/medium-imagenet-nmep-96.hdf5 --workers 8 16
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from config import get_config  # noqa: E402
from data import build_loader  # noqa: E402


def write_synthetic_hdf5(path: str, num_train: int, size: int) -> None:
    import h5py

    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for split, count in (("train", num_train), ("val", 64), ("test", 64)):
            f.create_dataset(f"images-{split}", data=rng.integers(0, 256, (count, 3, size, size), dtype=np.uint8))
            if split != "test":
                f.create_dataset(f"labels-{split}", data=rng.integers(0, 200, count))


def images_per_second(path: str, workers: int, batch_size: int, img_size: int, batches: int) -> float:
    cfg = get_config(None, ["DATA.DATASET", "medium_imagenet", "DATA.DATA_PATH", repr(path),
                            "DATA.IMG_SIZE", str(img_size), "DATA.BATCH_SIZE", str(batch_size),
                            "DATA.NUM_WORKERS", str(workers), "DATA.PERSISTENT_WORKERS", "False", "DEVICE", "cpu"])
    loader = build_loader(cfg).train_loader
    iterator = iter(loader)
    next(iterator)  # worker start-up is not throughput
    start, seen = time.perf_counter(), 0
    for _, (images, _) in zip(range(batches), iterator):
        seen += images.shape[0]
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hdf5", help="a real MediumImageNet file (default: a synthetic one)")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, os.cpu_count() or 1])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--img-size", type=int, default=96)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.hdf5
        if path is None:
            path = os.path.join(tmp, "synthetic-96.hdf5")
            write_synthetic_hdf5(path, num_train=args.batch_size * (args.batches + 2), size=96)
        for workers in args.workers:
            rate = images_per_second(path, workers, args.batch_size, args.img_size, args.batches)
            print(f"workers={workers:<3d} batch={args.batch_size} img_size={args.img_size}: {rate:,.0f} images/s")


if __name__ == "__main__":
    main()
