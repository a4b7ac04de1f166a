"""Build the model from the config: the only model code that reads it."""
from __future__ import annotations

from torch import nn

from data.build import get_dataset_spec
from models.registry import create_model
from utils.errors import UserError


def resolve_num_classes(cfg) -> int:
    """MODEL.NUM_CLASSES, or the data set's class count when it is 0."""
    dataset_classes = get_dataset_spec(cfg.DATA.DATASET).num_classes
    if cfg.MODEL.NUM_CLASSES == 0:
        return dataset_classes
    if cfg.MODEL.NUM_CLASSES < dataset_classes:
        raise UserError(f"MODEL.NUM_CLASSES is {cfg.MODEL.NUM_CLASSES} but {cfg.DATA.DATASET} has "
                        f"{dataset_classes} classes; set it to 0 to follow the data set")
    return cfg.MODEL.NUM_CLASSES


def build_model(cfg) -> nn.Module:
    """The model named MODEL.NAME, sized for the data set."""
    return create_model(cfg.MODEL.NAME, num_classes=resolve_num_classes(cfg), drop_rate=cfg.MODEL.DROP_RATE)
