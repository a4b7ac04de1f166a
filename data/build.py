"""Build the train, val and test loaders from the config: the only data code that reads it."""
from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

import numpy as np
import torch
from torch.utils.data import Sampler, SequentialSampler

from data import csv_labels
from data.batch_augment import BatchAugment
from data.cache import CachedLoader, available_bytes, cache_split, cached_bytes, check_cache_fits
from data.dataset import ImageDataset
from data.device_loader import DeviceLoader
from data.folds import fold_log_line, fold_split
from data.holdout import held_out_mask, kept_class_labels, kept_positions
from data.registry import DataSource, Splits, get_dataset_spec
from data.image_files import ImageFileStore
from data.pairs import VerificationPairs, draw_pairs, read_pairs_file
from data.sampler import ClassBalancedSampler, EpochShuffleSampler, ShardSampler, eligible_classes
from data.seeded_loader import SeededDataLoader
from data.subset import choose_subset, subset_log_line
from data.transforms import INTERPOLATIONS, build_eval_transform, build_train_transform, unused_rand_augment_fields
from utils.errors import UserError

logger = logging.getLogger(__name__)


def data_source(cfg) -> DataSource:
    """The DATA keys that say where DATA.DATASET is and how to open it."""
    data = cfg.DATA
    # Decoded images are stored at the model's size, or at DATA.STORED_SIZE when larger and the
    # random-resized crop has more pixels to crop from.
    decode_size = max(data.IMG_SIZE, data.STORED_SIZE) if random_resized_crop_on(cfg.AUG) else data.IMG_SIZE
    layout = csv_labels.CsvLayout.under(data.DATA_PATH, data.TRAIN_CSV, data.IMAGE_DIR, data.TEST_CSV, data.TEST_DIR,
                                        data.CSV_ID, data.CSV_LABEL, data.IMAGE_EXT)
    return DataSource(data.DATA_PATH, data.STORED_SIZE, data.IMG_SIZE, data.DOWNLOAD, decode_size,
                      INTERPOLATIONS[data.INTERPOLATION], layout, data.SKIP_BAD_IMAGES,
                      resolve_num_workers(-1), data.MAX_IMAGE_PIXELS)


def dataset_num_classes(cfg) -> int:
    """How many classes the model learns: DATA.DATASET's (fixed, or counted in the data at
    DATA.DATA_PATH) less DATA.HOLDOUT_CLASSES."""
    spec = get_dataset_spec(cfg.DATA.DATASET)
    count = spec.num_classes if spec.num_classes is not None else spec.count_classes(data_source(cfg))
    # The held-out names are checked against the data when it is opened (data.holdout).
    return count - len({str(name) for name in cfg.DATA.HOLDOUT_CLASSES})


@dataclass
class Loaders:
    """What `build_loader` returns: three loaders, their datasets, the normalisation stats, the
    name of each class (the class index as text where the data set has no names), and
    `make_loader(split, sampler, batch_size)`, which builds another loader of "train", "val" or
    "test" the way these were built (workers or cache, augmentation) with another sampler."""
    train_loader: Iterable
    val_loader: Iterable
    test_loader: Iterable
    train_dataset: ImageDataset
    val_dataset: ImageDataset
    test_dataset: ImageDataset
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    class_names: list[str]
    make_loader: Callable[[str, Sampler, int], Iterable]
    pipeline: str = ""  # for the log: where train images come from and where they are augmented
    # Every val and test image's id, in split order, the same in every run (`image_ids`): val_probs.csv's
    # rows, which the rows of K fold runs are assembled by, and test_probs.csv's
    val_ids: list[str] = field(default_factory=list)
    test_ids: list[str] = field(default_factory=list)
    test_ids_from_data: bool = False  # the test ids name files (or an HDF5 file's ids-test), for SUBMISSION.ID file
    notes: list[str] = field(default_factory=list)  # for the run's log: images left out, the cache
    verify_pairs: VerificationPairs | None = None  # labelled pairs scored every epoch
    verify_test_pairs: VerificationPairs | None = None  # unlabelled pairs for verify_submission.csv
    holdout_dataset: ImageDataset | None = None  # DATA.HOLDOUT_CLASSES' train images, with their own labels
    # {"val"/"test": (images chosen, images in the split)} for DATA.VAL_SUBSET and DATA.TEST_SUBSET,
    # so that every report of a score can say it came from part of the split
    subsets: dict[str, tuple[int, int]] = field(default_factory=dict)


def left_out_notes(splits: Splits) -> list[str]:
    """One warning per split whose store left out files it could not decode, listing them."""
    notes = []
    for split, (store, _) in splits.items():
        left_out = getattr(store, "left_out", [])
        if left_out:
            listing = "".join(f"\n  {path}: {reason}" for path, reason in left_out)
            notes.append(f"DATA.SKIP_BAD_IMAGES: left out {len(left_out)} {split} images that cannot be read:{listing}")
    return notes


def image_ids(dataset: ImageDataset, stored_split: str, data_path: str) -> list[str]:
    """The id of every image of `dataset`, the same in every run whatever the split it lands in:
    for images read from files, the file's path relative to `data_path` (with / between folders,
    e.g. train/cat/001.jpg); for images held in arrays (digits, CIFAR, an HDF5 file), the split
    they are stored in and their index there, e.g. train-123 or test-45."""
    store = dataset.store
    if isinstance(store, ImageFileStore):
        root = os.path.expanduser(data_path)
        return [os.path.relpath(store.paths[index], root).replace(os.sep, "/") for index in dataset.indices]
    return [f"{stored_split}-{index}" for index in dataset.indices]


def test_image_ids(dataset: ImageDataset, data_path: str) -> tuple[list[str], bool]:
    """(the id of every test image, whether the data named them): the ids a store holds (a file's
    name without its ending, a test CSV's ids, an HDF5 file's ids-test), else `image_ids`'."""
    named = getattr(dataset.store, "ids", None)
    if named is not None:
        return [named[index] for index in dataset.indices], True
    return image_ids(dataset, "test", data_path), False


def stored_split(splits: Splits, dataset: ImageDataset) -> str:
    """The split of `splits` whose store `dataset` reads (val may be part of train, or the test split)."""
    return next(split for split, (store, _) in splits.items() if store is dataset.store)


def split_train_val(num_images: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) index arrays holding out `val_fraction` of range(num_images), from `seed`."""
    order = np.random.default_rng(seed).permutation(num_images)
    num_val = max(1, int(round(num_images * val_fraction)))
    return np.sort(order[num_val:]), np.sort(order[:num_val])


def split_train_folds(labels: np.ndarray, held_out: np.ndarray | None, num_folds: int, fold: int, seed: int,
                      class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) index arrays into the train split: its fold `fold` of `num_folds`
    validates (data.folds). The folds are cut from the images of the classes `held_out` keeps, so
    that DATA.HOLDOUT_CLASSES changes which images there are, not how the rest are stratified."""
    kept = np.arange(len(labels)) if held_out is None else np.flatnonzero(~held_out[labels])
    train, val = fold_split(labels[kept], num_folds, fold, seed, class_names)
    return kept[train], kept[val]


def resolve_num_workers(requested: int) -> int:
    """-1 means min(8, CPU cores this process may use)."""
    if requested >= 0:
        return requested
    return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: leave SIGINT, SIGTERM and SIGUSR1 to the main process.

    The main process catches them to save a checkpoint before it exits. Ctrl-C and a scheduler's
    preemption signal reach every process of the job, workers included; a worker that died of
    one would make the loader raise in the main process before that checkpoint is written.
    """
    for signal_number in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signal_number, signal.SIG_IGN)


@atexit.register
def _kill_leftover_workers() -> None:
    """At exit, kill the loader workers still alive (an iterator kept alive by a traceback, say).

    multiprocessing stops daemonic children at exit with SIGTERM and then waits for them, which
    would wait forever on workers that ignore SIGTERM (`ignore_stop_signals`). Registered after
    multiprocessing's own handler, so it runs first.
    """
    leftover = [child for child in multiprocessing.active_children() if child.daemon]
    if leftover:
        # torch's SIGCHLD handler would report these deaths as a loader failure.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for child in leftover:
        child.kill()


def build_eval_samplers(val_length: int, test_length: int, shuffle_val: bool, seed: int,
                        rank: int, world_size: int) -> tuple[Sampler[int], Sampler[int]]:
    """(val sampler, test sampler): the whole splits for one process, else this rank's shards.

    Val is shuffled from `seed` when `shuffle_val`, in one order for every epoch and every world
    size, so that a resumed run reads it as the run it continues; test is always in order, for the
    submission.
    """
    val_order = (torch.randperm(val_length, generator=torch.Generator().manual_seed(seed)).tolist()
                 if shuffle_val else None)
    if world_size == 1:
        val_sampler = ShardSampler(val_length, 0, 1, val_order) if shuffle_val else SequentialSampler(range(val_length))
        return val_sampler, SequentialSampler(range(test_length))
    return (ShardSampler(val_length, rank, world_size, val_order),
            ShardSampler(test_length, rank, world_size))


def random_resized_crop_on(aug) -> bool:
    return len(aug.RRC_SCALE) > 0 and max(aug.RRC_SCALE) > 0


def unbatched_aug_keys(aug, interpolation: str) -> list[str]:
    """The AUG keys switched on in `aug` (the config's AUG node) that `BatchAugment` has no
    batched form of: they run per image, in the loader workers. Its random-resized crop
    resamples bilinearly, so it counts as unbatched for another DATA.INTERPOLATION."""
    switched_on = {
        "AUG.RRC_SCALE": random_resized_crop_on(aug) and interpolation != "bilinear",
        "AUG.ROTATION": aug.ROTATION > 0,
        "AUG.PERSPECTIVE_PROB": aug.PERSPECTIVE_PROB > 0,
        "AUG.BLUR_PROB": aug.BLUR_PROB > 0,
        "AUG.AUTO_AUGMENT": bool(aug.AUTO_AUGMENT),
        "AUG.RAND_AUGMENT": bool(aug.RAND_AUGMENT),
        "AUG.TRIVIAL_AUGMENT": bool(aug.TRIVIAL_AUGMENT),
        "AUG.AUGMIX": aug.AUGMIX > 0,
    }
    return [key for key, on in switched_on.items() if on]


def augments_on_device(aug_device: str, cache: str, device: torch.device, unbatched: list[str]) -> bool:
    """Whether the train batches are augmented whole on `device` (else per image in the workers).

    DATA.AUG_DEVICE auto means on the device when it is a GPU, or when DATA.CACHE leaves no
    workers, unless an augmentation in `unbatched` has no batched form: then per image, with a
    log line. A cache, or DATA.AUG_DEVICE device, with such an augmentation is refused.
    """
    keys = ", ".join(unbatched)
    if cache != "none":
        if aug_device == "cpu":
            raise UserError(f"DATA.CACHE {cache} draws whole batches without loader workers, so the augmentation "
                            f"runs on those batches on the device; set DATA.AUG_DEVICE device or auto, or "
                            f"DATA.CACHE none")
        if unbatched:
            raise UserError(f"DATA.CACHE {cache} augments whole batches on the device, which cannot do {keys}; "
                            f"switch {'those' if len(unbatched) > 1 else 'it'} off, or set DATA.CACHE none")
        return True
    if aug_device == "device" and unbatched:
        raise UserError(f"DATA.AUG_DEVICE device augments whole batches, which cannot do {keys}; switch "
                        f"{'those' if len(unbatched) > 1 else 'it'} off, or set DATA.AUG_DEVICE cpu (or auto)")
    if aug_device == "auto" and device.type == "cuda" and unbatched:
        logger.info("DATA.AUG_DEVICE auto: %s run per image, so the whole train augmentation runs in the loader "
                    "workers", keys)
    return aug_device == "device" or (aug_device == "auto" and device.type == "cuda" and not unbatched)


def cache_splits(datasets: dict[str, ImageDataset], sizes: dict[str, int], mode: str, device: torch.device,
                 threads: int) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], str]:
    """(each split of `datasets` as cached (images, labels) tensors with images of `sizes[split]`
    px, on `device` for DATA.CACHE device, else in host memory; a line for the log). Refused in
    one line when they would not fit."""
    where = device if mode == "device" else torch.device("cpu")
    needed = sum(cached_bytes(dataset, sizes[split]) for split, dataset in datasets.items())
    check_cache_fits(needed, available_bytes(where), mode, "the GPU" if where.type == "cuda" else "host memory")
    start = time.perf_counter()
    cached = {split: cache_split(dataset, sizes[split], where, threads) for split, dataset in datasets.items()}
    counts = " + ".join(f"{len(dataset)} {split}" for split, dataset in datasets.items())
    return cached, (f"DATA.CACHE {mode}: {counts} images ({needed / 2**30:.2f} GiB) cached on {where} in "
                    f"{time.perf_counter() - start:.1f} s")


@dataclass(frozen=True)
class TrainAugmentation:
    """Where the train augmentation runs, as DATA.AUG_DEVICE and DATA.CACHE place the AUG steps."""
    transform: Callable | None  # per image, in the workers (on the device path: only a resize)
    batch_augment: BatchAugment | None  # on whole batches on the device
    input_size: int  # side of the images the workers (or the cache) hand on
    description: str  # for the log


def build_train_augmentation(cfg, stored_size: int, device: torch.device) -> TrainAugmentation:
    """The AUG keys as a per-image transform for the workers, or as a BatchAugment for the device
    with only the resize left to the workers; images are stored at `stored_size` px."""
    aug, img_size = cfg.AUG, cfg.DATA.IMG_SIZE
    if aug.RAND_AUGMENT and unused_rand_augment_fields(aug.RAND_AUGMENT):
        logger.warning("AUG.RAND_AUGMENT: %s not supported by torchvision's RandAugment; using only m and n",
                       "-".join(unused_rand_augment_fields(aug.RAND_AUGMENT)))
    on_device = augments_on_device(cfg.DATA.AUG_DEVICE, cfg.DATA.CACHE, device,
                                   unbatched_aug_keys(aug, cfg.DATA.INTERPOLATION))
    if not on_device:
        transform = build_train_transform(
            img_size, stored_size, aug.CROP_PADDING, aug.HFLIP_PROB, aug.COLOR_JITTER, aug.RAND_AUGMENT,
            cfg.DATA.INTERPOLATION, rrc_scale=aug.RRC_SCALE, vflip_prob=aug.VFLIP_PROB, rotation=aug.ROTATION,
            perspective_prob=aug.PERSPECTIVE_PROB, perspective_distortion=aug.PERSPECTIVE_DISTORTION,
            color_jitter_hue=aug.COLOR_JITTER_HUE, grayscale_prob=aug.GRAYSCALE_PROB, blur_prob=aug.BLUR_PROB,
            blur_kernel=aug.BLUR_KERNEL, blur_sigma=aug.BLUR_SIGMA, auto_augment=aug.AUTO_AUGMENT,
            trivial_augment=aug.TRIVIAL_AUGMENT, augmix_severity=aug.AUGMIX, erase_prob=aug.ERASE_PROB,
            erase_scale=aug.ERASE_SCALE, erase_value=aug.ERASE_VALUE)
        return TrainAugmentation(transform, None, img_size, "augmented per image" if transform else "not augmented")
    # The workers (or the cache) hand on the images resized to IMG_SIZE, or as stored when the
    # random-resized crop, which resizes, runs on the device too.
    input_size = stored_size if random_resized_crop_on(aug) else img_size
    resize = (build_train_transform(img_size, stored_size, 0, 0.0, 0.0, "", cfg.DATA.INTERPOLATION)
              if input_size == img_size else None)
    batch_augment = BatchAugment(img_size, aug.CROP_PADDING, aug.HFLIP_PROB, aug.COLOR_JITTER, aug.COLOR_JITTER,
                                 aug.COLOR_JITTER, aug.COLOR_JITTER_HUE, aug.ERASE_PROB, aug.ERASE_SCALE,
                                 aug.ERASE_VALUE, input_size=input_size, rrc_scale=aug.RRC_SCALE,
                                 vflip_prob=aug.VFLIP_PROB, grayscale_prob=aug.GRAYSCALE_PROB)
    if batch_augment.is_identity:
        return TrainAugmentation(resize, None, input_size, "not augmented")
    return TrainAugmentation(resize, batch_augment, input_size, f"augmented as whole batches on {device}")


def describe_source(cache: str, device: torch.device, num_workers: int) -> str:
    """For the log: where the train images come from."""
    if cache != "none":
        return f"cached in {'GPU memory' if cache == 'device' and device.type == 'cuda' else 'host memory'}"
    return f"read by {num_workers} loader workers" if num_workers else "read in the main process"


def build_eval_transforms(cfg, splits: Splits) -> dict[str, Callable | None]:
    """The deterministic resize of each split of `splits` to DATA.IMG_SIZE, planned from the size
    that split's images are stored at: an HDF5 file may store val at another size than train."""
    return {split: build_eval_transform(cfg.DATA.IMG_SIZE, store.image_size, cfg.TEST.CROP, cfg.DATA.INTERPOLATION)
            for split, (store, _) in splits.items()}


def split_datasets(cfg, splits: Splits, class_names: list[str], held_out: np.ndarray | None,
                   train_transform: Callable | None,
                   eval_transforms: dict[str, Callable | None]) -> dict[str, ImageDataset]:
    """{"train", "val", "test"[, "holdout"]: ImageDataset}: val is fold DATA.FOLD of DATA.FOLDS of
    train, or DATA.VAL_SPLIT of train, when set (train then keeps the rest), else the data set's
    val split, else its test split; train is reduced to DATA.TRAIN_SUBSET (after the folds, so
    that a fold's val stays whole). Every split but train is read through the eval transform of the
    split of `splits` its images come from. With DATA.HOLDOUT_CLASSES, those classes' images leave
    every split (the rest renumbered, data.holdout), `held_out` marking them per class, and their
    train images form "holdout"."""
    train_store, train_labels = splits["train"]
    test_store, test_labels = splits["test"]
    if cfg.DATA.FOLDS:
        val_source = "train"
        train_indices, val_indices = split_train_folds(train_labels, held_out, cfg.DATA.FOLDS, cfg.DATA.FOLD,
                                                       cfg.SEED, class_names)
    elif cfg.DATA.VAL_SPLIT > 0:
        val_source = "train"
        train_indices, val_indices = split_train_val(len(train_store), cfg.DATA.VAL_SPLIT, cfg.SEED)
    else:
        val_source = "val" if "val" in splits else "test"
        train_indices, val_indices = np.arange(len(train_store)), np.arange(len(splits[val_source][0]))
    val_store, val_labels = splits[val_source]
    if val_labels is None:
        raise UserError(f"{cfg.DATA.DATASET} has no val labels; set DATA.VAL_SPLIT to hold out part of train")
    test_indices = np.arange(len(test_store))
    num_classes, holdout = len(class_names), None
    if held_out is not None:
        num_classes = int((~held_out).sum())
        holdout = ImageDataset(train_store, train_labels, len(class_names),
                               np.flatnonzero(held_out[train_labels]), eval_transforms["train"])
        train_indices = kept_positions(train_indices, train_labels, held_out)
        val_indices = kept_positions(val_indices, val_labels, held_out)
        if test_labels is not None:
            test_indices = kept_positions(test_indices, test_labels, held_out)
            test_labels = kept_class_labels(test_labels, held_out)
        # Relabelled after the val split is taken, so that it may share train's labels.
        train_labels, val_labels = (kept_class_labels(labels, held_out) for labels in (train_labels, val_labels))
    train_indices = choose_subset(train_indices, cfg.DATA.TRAIN_SUBSET, cfg.SEED, "train")
    datasets = {"train": ImageDataset(train_store, train_labels, num_classes, train_indices, train_transform),
                "val": ImageDataset(val_store, val_labels, num_classes, val_indices, eval_transforms[val_source]),
                "test": ImageDataset(test_store, test_labels, num_classes, test_indices, eval_transforms["test"])}
    if holdout is not None:
        datasets["holdout"] = holdout
    return datasets


def build_train_sampler(cfg, train_dataset: ImageDataset, rank: int,
                        world_size: int) -> tuple[EpochShuffleSampler | ClassBalancedSampler, str | None]:
    """(the train sampler DATA.SAMPLER names, a note for the log or None)."""
    if cfg.DATA.SAMPLER == "random":
        return EpochShuffleSampler(len(train_dataset), cfg.SEED, rank, world_size), None
    per_class = cfg.DATA.IMAGES_PER_CLASS
    classes_per_batch = cfg.DATA.BATCH_SIZE // per_class
    labels = train_dataset.labels[train_dataset.indices]
    eligible = len(eligible_classes(labels, per_class))
    if eligible < classes_per_batch * world_size:
        raise UserError(f"DATA.SAMPLER pk fills each batch with {classes_per_batch} classes of "
                        f"DATA.IMAGES_PER_CLASS = {per_class} images, but only {eligible} classes of the train split "
                        f"have {per_class} images{f' for {world_size} processes' if world_size > 1 else ''}; "
                        f"lower DATA.IMAGES_PER_CLASS or DATA.BATCH_SIZE")
    sampler = ClassBalancedSampler(labels, classes_per_batch, per_class, cfg.SEED, rank, world_size)
    note = (f"DATA.SAMPLER pk: batches of {classes_per_batch} classes x {per_class} images"
            + (f"; {sampler.left_out_classes} classes with fewer images are left out" if sampler.left_out_classes
               else ""))
    return sampler, note


def verification_pairs(cfg, datasets: dict[str, ImageDataset], stored_size: int, eval_transform: Callable | None
                       ) -> tuple[VerificationPairs | None, VerificationPairs | None]:
    """(the labelled pairs scored every epoch, the unlabelled pairs of the verification
    submission), each None when not configured. Pairs files add the images they name to
    `datasets` as the splits "verify" and "verify_test", decoded at `stored_size` px and read
    through `eval_transform`; drawn pairs index the "holdout" split (DATA.HOLDOUT_CLASSES), else "val"."""
    data_path = os.path.expanduser(cfg.DATA.DATA_PATH)

    def from_file(key: str, split: str, labelled: bool) -> VerificationPairs:
        path = os.path.join(data_path, cfg.DATA[key])
        pairs = read_pairs_file(path, data_path, labelled)
        if labelled and (pairs.same.all() or not pairs.same.any()):
            raise UserError(f"DATA.{key} {path} labels every pair {int(pairs.same[0])}, so no ROC curve can be drawn; "
                            f"it needs pairs of the same identity (1) and of different ones (0)")
        store = ImageFileStore([os.path.join(data_path, image) for image in pairs.images], stored_size,
                               INTERPOLATIONS[cfg.DATA.INTERPOLATION], cfg.DATA.MAX_IMAGE_PIXELS)
        datasets[split] = ImageDataset(store, None, datasets["train"].num_classes, None, eval_transform)
        return VerificationPairs(split, pairs.first, pairs.second, pairs.same if labelled else None, pairs.names)

    scored = None
    if cfg.DATA.VERIFY_PAIRS:
        scored = from_file("VERIFY_PAIRS", "verify", labelled=True)
    elif cfg.TEST.VERIFY_NUM_PAIRS:
        split = "holdout" if "holdout" in datasets else "val"
        dataset = datasets[split]
        try:
            first, second, same = draw_pairs(dataset.labels[dataset.indices], cfg.TEST.VERIFY_NUM_PAIRS, cfg.SEED)
        except ValueError as e:
            raise UserError(f"TEST.VERIFY_NUM_PAIRS cannot draw pairs from the {split} split: {e}; verify on "
                            f"another split, or set DATA.VERIFY_PAIRS") from None
        scored = VerificationPairs(split, first, second, same, None)
    submitted = from_file("VERIFY_TEST_PAIRS", "verify_test", labelled=False) if cfg.DATA.VERIFY_TEST_PAIRS else None
    return scored, submitted


def choose_eval_subsets(cfg, datasets: dict[str, ImageDataset], verify_pairs: VerificationPairs | None
                        ) -> tuple[dict[str, tuple[int, int]], VerificationPairs | None]:
    """Reduce "val" and "test" of `datasets` to DATA.VAL_SUBSET and DATA.TEST_SUBSET (chosen from
    SEED, as DATA.TRAIN_SUBSET is). Returns ({split: (images chosen, images in the split)} for
    each split reduced, the labelled pairs). Pairs drawn from a reduced split keep indexing the
    whole of it, added to `datasets` as "verify": the subsets shorten scoring, not verification."""
    subsets = {}
    for split, subset in (("val", cfg.DATA.VAL_SUBSET), ("test", cfg.DATA.TEST_SUBSET)):
        if subset == 0:
            continue
        whole = datasets[split]
        indices = choose_subset(whole.indices, subset, cfg.SEED, split)
        if verify_pairs is not None and verify_pairs.split == split:
            datasets["verify"] = whole
            verify_pairs = replace(verify_pairs, split="verify")
        datasets[split] = ImageDataset(whole.store, whole.labels, whole.num_classes, indices, whole.transform)
        subsets[split] = (len(indices), len(whole))
    return subsets, verify_pairs


def loader_factory(datasets: dict[str, ImageDataset], cached: dict, batch_augment: BatchAugment | None,
                   device: torch.device, default_batch_size: int, num_workers: int, pin_memory: bool,
                   persistent_workers: bool, seed: int) -> Callable[..., Iterable]:
    """`make_loader(split, sampler, batch_size=default_batch_size, drop_last=False)`: batches of
    a split in the sampler's order, from its cache when `cached` holds the splits, else from
    loader workers (their base seed drawn from `seed` and the epoch, never from torch's global
    generator); train batches are augmented on the device by `batch_augment` when given."""

    def make_loader(split: str, sampler: Sampler, batch_size: int = default_batch_size,
                    drop_last: bool = False) -> Iterable:
        if cached:
            batches = CachedLoader(*cached[split], sampler, batch_size, drop_last, pin_batches=pin_memory)
        else:
            batches = SeededDataLoader(datasets[split], batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                                       num_workers=num_workers, pin_memory=pin_memory,
                                       worker_init_fn=ignore_stop_signals,
                                       persistent_workers=persistent_workers and num_workers > 0, seed=seed)
        augment = batch_augment if split == "train" else None
        # On a GPU every loader copies on a side stream; on the CPU only augmentation needs the wrapper.
        return DeviceLoader(batches, device, augment) if augment is not None or device.type == "cuda" else batches

    return make_loader


def split_notes(cfg, splits: Splits, num_val: int, subsets: dict[str, tuple[int, int]]) -> list[str]:
    """The log's lines on how the splits were cut: the fold that validates, images left out, subsets."""
    fold = [fold_log_line(cfg.DATA.FOLD, cfg.DATA.FOLDS, num_val)] if cfg.DATA.FOLDS else []
    return fold + left_out_notes(splits) + [subset_log_line(split, *counts) for split, counts in subsets.items()]


def build_loader(cfg, rank: int = 0, world_size: int = 1, device: torch.device | None = None) -> Loaders:
    """Load DATA.DATASET and wrap its train, val and test splits in loaders for process `rank`
    of `world_size`, training on `device` (the CPU when None).

    Images come out as uint8 (B, 3, IMG_SIZE, IMG_SIZE); normalise them on the device with
    `data.normalize.Normalize(loaders.mean, loaders.std)`. With several processes each gets
    DATA.BATCH_SIZE images of every global train batch, and an interleaved share of val and test
    that `data.sampler.unshard` puts back in order.

    The train augmentation runs per image in the loader workers, or on whole batches on the
    device (DATA.AUG_DEVICE); the images come from the data set's store through workers, or
    from a cache of each whole split (DATA.CACHE).
    """
    device = device or torch.device("cpu")
    spec = get_dataset_spec(cfg.DATA.DATASET)
    splits, class_names = spec.load(data_source(cfg))
    stored_size = splits["train"][0].image_size
    augmentation = build_train_augmentation(cfg, stored_size, device)
    eval_transforms = build_eval_transforms(cfg, splits)

    held_out = held_out_mask(class_names, cfg.DATA.HOLDOUT_CLASSES) if cfg.DATA.HOLDOUT_CLASSES else None
    datasets = split_datasets(cfg, splits, class_names, held_out, augmentation.transform, eval_transforms)
    if held_out is not None:
        class_names = [name for name, out in zip(class_names, held_out) if not out]
    verify_pairs, verify_test_pairs = verification_pairs(cfg, datasets, stored_size, eval_transforms["train"])
    subsets, verify_pairs = choose_eval_subsets(cfg, datasets, verify_pairs)
    train_dataset, val_dataset, test_dataset = datasets["train"], datasets["val"], datasets["test"]
    num_classes = train_dataset.num_classes
    cache = cfg.DATA.CACHE
    # Every split but train is read at the model's size.
    sizes = {split: augmentation.input_size if split == "train" else cfg.DATA.IMG_SIZE for split in datasets}
    num_workers = resolve_num_workers(cfg.DATA.NUM_WORKERS)
    # The cache is filled once, before training, on every core the loader workers would have had.
    cache_threads = resolve_num_workers(-1)
    cached, cache_note = (cache_splits(datasets, sizes, cache, device, cache_threads) if cache != "none"
                          else ({}, None))
    make_loader = loader_factory(datasets, cached, augmentation.batch_augment, device, cfg.DATA.BATCH_SIZE,
                                 num_workers, cfg.DATA.PIN_MEMORY and device.type == "cuda",
                                 cfg.DATA.PERSISTENT_WORKERS, cfg.SEED)
    shuffle_val = cfg.TEST.SHUFFLE and not cfg.TEST.SEQUENTIAL
    val_sampler, test_sampler = build_eval_samplers(len(val_dataset), len(test_dataset), shuffle_val, cfg.SEED,
                                                    rank, world_size)
    train_sampler, sampler_note = build_train_sampler(cfg, train_dataset, rank, world_size)
    # Dropping a ragged last batch keeps BatchNorm away from batches of one image.
    drop_last = len(train_sampler) > cfg.DATA.BATCH_SIZE
    test_ids, test_ids_from_data = test_image_ids(test_dataset, cfg.DATA.DATA_PATH)
    return Loaders(
        train_loader=make_loader("train", train_sampler, drop_last=drop_last),
        val_loader=make_loader("val", val_sampler),
        test_loader=make_loader("test", test_sampler),
        train_dataset=train_dataset, val_dataset=val_dataset, test_dataset=test_dataset,
        num_classes=num_classes, mean=spec.mean, std=spec.std, class_names=list(class_names),
        make_loader=make_loader,
        pipeline=f"train images {describe_source(cache, device, num_workers)}, {augmentation.description}",
        val_ids=image_ids(val_dataset, stored_split(splits, val_dataset), cfg.DATA.DATA_PATH),
        test_ids=test_ids, test_ids_from_data=test_ids_from_data,
        notes=(split_notes(cfg, splits, len(val_dataset), subsets)
               + [note for note in (cache_note, sampler_note) if note]),
        verify_pairs=verify_pairs, verify_test_pairs=verify_test_pairs,
        holdout_dataset=datasets.get("holdout"), subsets=subsets)
