"""CIFAR-10 and CIFAR-100 through torchvision, read from its pickled batches into memory."""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass

import numpy as np
from torchvision.datasets import CIFAR10, CIFAR100

from utils.errors import UserError


def _without_file_checksums(cifar_class: type) -> type:
    """torchvision's CIFAR class, accepting any well-formed pickled batches.

    torchvision compares every extracted batch with the official MD5 sums, which rejects the
    small fixtures the tests write in the same format. The downloaded archive is still verified
    (tgz_md5 is kept), and a corrupt batch still fails when it is unpickled.
    """
    return type(cifar_class.__name__, (cifar_class,), {
        "train_list": [[name, None] for name, _ in cifar_class.train_list],
        "test_list": [[name, None] for name, _ in cifar_class.test_list],
        "meta": {**cifar_class.meta, "md5": None},
    })


@dataclass(frozen=True)
class CifarVariant:
    torchvision_class: type
    folder: str  # what torchvision unpacks under DATA_PATH
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CIFAR_VARIANTS = {
    "cifar10": CifarVariant(_without_file_checksums(CIFAR10), "cifar-10-batches-py", 10,
                            (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": CifarVariant(_without_file_checksums(CIFAR100), "cifar-100-python", 100,
                             (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def load_cifar_arrays(name: str, root: str,
                      download: bool) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """({"train": (images, labels), "test": (images, labels)}, class names from the meta file),
    images uint8 (N, 3, 32, 32).

    `root` is the folder that holds (or will hold) torchvision's extracted folder; naming the
    extracted folder itself works too.
    """
    variant = CIFAR_VARIANTS[name]
    root = os.path.expanduser(root)
    if os.path.basename(os.path.normpath(root)) == variant.folder:
        root = os.path.dirname(os.path.normpath(root))
    expected = os.path.join(root, variant.folder)
    splits = {}
    for split in ("train", "test"):
        try:
            dataset = variant.torchvision_class(root, train=split == "train", download=download)
        except RuntimeError:
            how = ("set DATA.DOWNLOAD True (or pass --opts DATA.DOWNLOAD True)" if not download
                   else "the download failed; fetch it on a machine with internet and copy it there")
            raise UserError(f"{name} not found or corrupt at {expected}; {how}, or point --data-path "
                            f"at the folder holding {variant.folder}") from None
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError):
            raise UserError(f"{name} files under {expected} are corrupt; delete the folder and download "
                            f"again (DATA.DOWNLOAD True)") from None
        except OSError as e:
            raise UserError(f"{name} could not be downloaded to {root} ({e.__class__.__name__}: {e}); "
                            f"copy {variant.folder} there by hand, or check the network") from None
        images = np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2))
        splits[split] = images, np.asarray(dataset.targets, dtype=np.int64)
    return splits, [class_name(name) for name in dataset.classes]


def class_name(stored: str | bytes) -> str:
    """A class name of the meta file as text. Pickles written by Python 3 from bytes hold bytes,
    which are decoded as latin-1, as the official Python 2 pickles are read."""
    return stored.decode("latin-1") if isinstance(stored, bytes) else str(stored)
