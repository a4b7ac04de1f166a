"""How many images per second the train loader delivers, without a model in the way.

Writes a synthetic MediumImageNet-layout HDF5 file (or reads a real one with --hdf5, or a folder
of JPEG class folders with --folder), builds the train loader exactly as main.py does, and times
full batches. Compare the number with the images/s a training run logs: if the loader's rate is
not well above it, the loader is the bottleneck. Usage:

    python bench/loader.py                       # synthetic 96 px file, 2 and all-core workers
    python bench/loader.py --hdf5 /data/medium-imagenet/medium-imagenet-nmep-96.hdf5 --workers 8 16
    python bench/loader.py --folder /data/faces  # class folders of JPEGs, decoded every epoch
    python bench/loader.py --jpeg-vs-hdf5        # synthetic JPEG folder against its scripts/to_hdf5.py
                                                 # conversions, with 1 image per chunk, 64, and contiguous
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


def write_jpeg_folder(root: str, num_images: int, size: int, num_classes: int = 10) -> None:
    """`num_images` random JPEGs of `size` px (quality 90) in train/<class>/, and a few in val/."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", num_images), ("val", 2 * num_classes)):
        for index in range(count):
            folder = os.path.join(root, split, f"class{index % num_classes:02d}")
            os.makedirs(folder, exist_ok=True)
            # Smooth noise, so that the files have a photograph's size rather than noise's.
            pixels = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
            image = Image.fromarray(pixels).resize((size, size), Image.BILINEAR)
            image.save(os.path.join(folder, f"{index:06d}.jpg"), quality=90)


# The AUG keys that switch the default augmentation off, for --plain.
NO_AUGMENTATION = ["AUG.CROP_PADDING", "0", "AUG.HFLIP_PROB", "0", "AUG.COLOR_JITTER", "0"]


def images_per_second(path: str, workers: int, batch_size: int, img_size: int, batches: int,
                      dataset: str = "medium_imagenet", plain: bool = False) -> float:
    cfg = get_config(None, ["DATA.DATASET", dataset, "DATA.DATA_PATH", repr(path),
                            "DATA.IMG_SIZE", str(img_size), "DATA.BATCH_SIZE", str(batch_size),
                            "DATA.NUM_WORKERS", str(workers), "DATA.PERSISTENT_WORKERS", "False", "DEVICE", "cpu",
                            "DATA.VAL_SPLIT", "0.01" if dataset == "imagefolder" else "0",
                            *(NO_AUGMENTATION if plain else [])])
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
    parser.add_argument("--folder", help="a folder of JPEG class folders (DATA.DATASET imagefolder)")
    parser.add_argument("--jpeg-vs-hdf5", action="store_true",
                        help="time a synthetic JPEG folder against its HDF5 conversions")
    parser.add_argument("--plain", action="store_true",
                        help="no augmentation: time reading (and decoding) alone")
    args = parser.parse_args()
    num_images = args.batch_size * (args.batches + 2)
    with tempfile.TemporaryDirectory() as tmp:
        if args.jpeg_vs_hdf5:
            sources = jpeg_and_hdf5_sources(tmp, num_images, args.img_size)
        elif args.folder:
            sources = [("JPEG folder", args.folder, "imagefolder")]
        else:
            path = args.hdf5
            if path is None:
                path = os.path.join(tmp, "synthetic-96.hdf5")
                write_synthetic_hdf5(path, num_train=num_images, size=96)
            sources = [("HDF5", path, "medium_imagenet")]
        for name, path, dataset in sources:
            for workers in args.workers:
                rate = images_per_second(path, workers, args.batch_size, args.img_size, args.batches, dataset,
                                         args.plain)
                print(f"{name}: workers={workers:<3d} batch={args.batch_size} img_size={args.img_size}"
                      f"{' no augmentation' if args.plain else ''}: {rate:,.0f} images/s")


def jpeg_and_hdf5_sources(tmp: str, num_images: int, size: int) -> list[tuple[str, str, str]]:
    """A synthetic JPEG folder of `size` px images and its conversions by scripts/to_hdf5.py."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
    import to_hdf5

    folder = os.path.join(tmp, "jpegs")
    write_jpeg_folder(folder, num_images, size)
    sources = [("JPEG folder", folder, "imagefolder")]
    for chunk_images, name in ((1, "HDF5, 1 image per chunk"), (64, "HDF5, 64 images per chunk"),
                               (0, "HDF5, contiguous")):
        path = os.path.join(tmp, f"converted-{chunk_images}.hdf5")
        to_hdf5.convert(to_hdf5.parse_args(["--src", folder, "--out", path, "--size", str(size),
                                            "--chunk-images", str(chunk_images)]))
        sources.append((name, path, "medium_imagenet"))
    return sources


if __name__ == "__main__":
    main()
