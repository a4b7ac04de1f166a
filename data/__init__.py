"""Data sets, samplers, augmentation and loaders; `build_loader(cfg)` is the entry point.
Imports only utils (and data/build.py alone reads the config)."""
from data.build import Loaders, build_loader
from data.registry import DATASETS, get_dataset_spec

__all__ = ["DATASETS", "Loaders", "build_loader", "get_dataset_spec"]
