"""Convert an imagefolder or csv data set into one HDF5 file in the MediumImageNet layout.

    python scripts/to_hdf5.py --src data/faces --out faces-96.hdf5 --size 96 [--layout chw|hwc]
    python scripts/to_hdf5.py --src data/leaves --out leaves-64.hdf5 --size 64 --opts DATA.IMAGE_EXT .jpg

The file holds `images-{train,val,test}` (uint8, (N, 3, S, S) with --layout chw, (N, S, S, 3)
with hwc), `labels-{train,val}`, `class-names` and `ids-test` (the test images' ids), and trains
with `DATA.DATASET medium_imagenet DATA.DATA_PATH FILE`: the images are decoded and resized once,
here, instead of every epoch.

The source is read as training reads it (`--dataset`, default: csv when SRC holds train.csv,
else imagefolder; `--opts` sets the DATA keys of its layout). Without a val split of its own,
--val-split of train is held out, chosen from --seed. Images are decoded and resized on
--workers threads, in order. Each image is one chunk of the file: with contiguous storage the
layout bench/loader.py reads fastest, where 64 images per chunk read 2-3x slower
(BENCHMARKS.md). The file is written under a temporary name and renamed when complete, so an
interrupted conversion leaves nothing that looks like a finished file.
"""
from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from config import get_config  # noqa: E402
from data.build import data_source, split_train_val  # noqa: E402
from data.medium_imagenet import CLASS_NAME_KEYS, TEST_IDS_KEY  # noqa: E402
from data.registry import get_dataset_spec  # noqa: E402
from utils.cli import OneLineErrorParser  # noqa: E402
from utils.errors import UserError  # noqa: E402

# Images decoded per task of the thread pool, and written to the file at once.
BLOCK = 256


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser("python scripts/to_hdf5.py", description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, help="the data set's folder (DATA.DATA_PATH)")
    parser.add_argument("--out", required=True, help="the .hdf5 file to write")
    parser.add_argument("--size", type=int, required=True, help="side of the stored square images, in pixels")
    parser.add_argument("--layout", choices=("chw", "hwc"), default="chw", help="channels first (default) or last")
    parser.add_argument("--dataset", choices=("imagefolder", "csv"), help="the source's layout (default: guessed)")
    parser.add_argument("--val-split", type=float, default=0.1,
                        help="fraction of train held out as val when the source has no val split (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="chooses the held-out val images")
    parser.add_argument("--chunk-images", type=int, default=1,
                        help="images per HDF5 chunk; 0 stores each split contiguously (default 1)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decoding threads")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="DATA keys of the source, e.g. DATA.CSV_ID image DATA.IMAGE_EXT .jpg")
    args = parser.parse_args(argv)
    if args.size < 8:
        parser.error(f"--size must be at least 8 pixels, got {args.size}")
    if not 0 < args.val_split < 1:
        parser.error(f"--val-split must be in (0, 1), got {args.val_split}")
    if args.chunk_images < 0:
        parser.error(f"--chunk-images must be 0 (contiguous) or more, got {args.chunk_images}")
    return args


def source_splits(args: argparse.Namespace):
    """({"train", "val", "test": (store, labels or None, positions to write)}, class names, test ids)."""
    dataset = args.dataset or ("csv" if os.path.isfile(os.path.join(args.src, "train.csv")) else "imagefolder")
    cfg = get_config(opts=["DATA.DATASET", dataset, "DATA.DATA_PATH", args.src, "DATA.IMG_SIZE", str(args.size),
                           "DATA.STORED_SIZE", str(args.size), *args.opts])
    splits, class_names = get_dataset_spec(dataset).load(data_source(cfg))
    train_store, train_labels = splits["train"]
    if "val" in splits:
        val_store, val_labels = splits["val"]
        train = (train_store, train_labels, np.arange(len(train_store)))
        val = (val_store, val_labels, np.arange(len(val_store)))
    else:
        kept, held_out = split_train_val(len(train_store), args.val_split, args.seed)
        train, val = (train_store, train_labels, kept), (train_store, train_labels, held_out)
    test_store, _ = splits["test"]
    test = (test_store, None, np.arange(len(test_store)))
    return {"train": train, "val": val, "test": test}, class_names, test_store.ids


def write_split(file, split: str, store, labels, positions: np.ndarray, args: argparse.Namespace, pool) -> None:
    from tqdm import tqdm

    size = args.size
    shape = (len(positions), 3, size, size) if args.layout == "chw" else (len(positions), size, size, 3)
    chunks = None
    if args.chunk_images and len(positions):
        chunks = (min(args.chunk_images, len(positions)), *shape[1:])
    images = file.create_dataset(f"images-{split}", shape=shape, dtype=np.uint8, chunks=chunks)
    blocks = [positions[start:start + BLOCK] for start in range(0, len(positions), BLOCK)]
    with tqdm(total=len(positions), desc=f"{split} images", unit="img", disable=None) as bar:
        start = 0
        # map keeps the blocks in order; each is decoded on a pool thread while earlier ones are written.
        for block in pool.map(store.read, blocks):
            images[start:start + len(block)] = block if args.layout == "chw" else block.transpose(0, 2, 3, 1)
            start += len(block)
            bar.update(len(block))
    if labels is not None:
        file.create_dataset(f"labels-{split}", data=np.asarray(labels)[positions].astype(np.int64))


def convert(args: argparse.Namespace) -> str:
    import h5py

    splits, class_names, test_ids = source_splits(args)
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    partial = f"{out}.partial-{os.getpid()}"
    try:
        with h5py.File(partial, "w") as file, ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
            for split in ("train", "val", "test"):
                store, labels, positions = splits[split]
                write_split(file, split, store, labels, positions, args, pool)
            text = h5py.string_dtype("utf-8")
            file.create_dataset(CLASS_NAME_KEYS[0], data=np.array(class_names, dtype=text))
            file.create_dataset(TEST_IDS_KEY, data=np.array(test_ids, dtype=text))
        os.replace(partial, out)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        out = convert(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the output folder cannot be written: full disk, no permission
        print(f"error: cannot write {args.out}: {error.strerror or error}; choose another --out", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
