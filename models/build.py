"""Build the model from the config: the only model code that reads it."""
from __future__ import annotations

import inspect
import logging

import torch
from torch import nn

from data.build import dataset_num_classes
from models.complexity import count_macs, count_parameters
from models.embedding import EmbeddingClassifier
from models.freeze import freeze_backbone
from models.init import apply_init
from models.losses import TrainingLoss, parse_loss_terms
from models.pretrained import load_pretrained
from models.registry import get_model_constructor
from utils.errors import UserError

logger = logging.getLogger(__name__)

# Inputs at most this size get the small-image stem when MODEL.STEM is auto.
SMALL_INPUT_MAX_SIZE = 64


def resolve_num_classes(cfg) -> int:
    """MODEL.NUM_CLASSES, or the data set's class count when it is 0."""
    dataset_classes = dataset_num_classes(cfg)
    if cfg.MODEL.NUM_CLASSES == 0:
        return dataset_classes
    if cfg.MODEL.NUM_CLASSES < dataset_classes:
        raise UserError(f"MODEL.NUM_CLASSES is {cfg.MODEL.NUM_CLASSES} but {cfg.DATA.DATASET} has "
                        f"{dataset_classes} classes; set it to 0 to follow the data set")
    return cfg.MODEL.NUM_CLASSES


def resolve_stem(cfg) -> str:
    if cfg.MODEL.STEM != "auto":
        return cfg.MODEL.STEM
    return "cifar" if cfg.DATA.IMG_SIZE <= SMALL_INPUT_MAX_SIZE else "imagenet"


def model_options(cfg) -> dict[str, tuple[str, object, bool]]:
    """Constructor argument -> (config key, value, whether the user asked for it explicitly).

    Options that only some models take; a model that lacks one ignores it, with a warning when
    the user set it.
    """
    return {
        "drop_rate": ("MODEL.DROP_RATE", cfg.MODEL.DROP_RATE, cfg.MODEL.DROP_RATE != -1.0),
        "drop_path_rate": ("MODEL.DROP_PATH_RATE", cfg.MODEL.DROP_PATH_RATE, cfg.MODEL.DROP_PATH_RATE != -1.0),
        "act": ("MODEL.ACT", cfg.MODEL.ACT, cfg.MODEL.ACT != ""),
        "drop_block_rate": ("MODEL.DROP_BLOCK_RATE", cfg.MODEL.DROP_BLOCK_RATE, cfg.MODEL.DROP_BLOCK_RATE != 0.0),
        "drop_block_size": ("MODEL.DROP_BLOCK_SIZE", cfg.MODEL.DROP_BLOCK_SIZE, cfg.MODEL.DROP_BLOCK_SIZE != 7),
        "stem": ("MODEL.STEM", resolve_stem(cfg), cfg.MODEL.STEM != "auto"),
        "zero_init_residual": ("MODEL.ZERO_INIT_RESIDUAL", cfg.MODEL.ZERO_INIT_RESIDUAL, cfg.MODEL.ZERO_INIT_RESIDUAL),
        "aux_logits": ("MODEL.AUX_LOGITS", cfg.MODEL.AUX_LOGITS, cfg.MODEL.AUX_LOGITS),
        "width_mult": ("MODEL.WIDTH_MULT", cfg.MODEL.WIDTH_MULT, cfg.MODEL.WIDTH_MULT != 1.0),
        "norm": ("MODEL.CONVNEXT.NORM", cfg.MODEL.CONVNEXT.NORM, cfg.MODEL.CONVNEXT.NORM != "layernorm"),
    }


def build_model(cfg) -> nn.Module:
    """The model named MODEL.NAME, sized for the data set, initialised, loaded and frozen as configured."""
    name = cfg.MODEL.NAME
    constructor = get_model_constructor(name)
    accepted = inspect.signature(constructor).parameters
    num_classes = resolve_num_classes(cfg)
    # With MODEL.EMBED_DIM the model's own head becomes the projection to the embedding.
    kwargs = {"num_classes": cfg.MODEL.EMBED_DIM or num_classes}
    for argument, (key, value, explicit) in model_options(cfg).items():
        if argument in accepted and (explicit or argument == "stem"):
            kwargs[argument] = value
        elif explicit:
            logger.warning("%s has no %s option, so %s %r changes nothing", name, argument, key, value)
    model = constructor(**kwargs)
    if cfg.MODEL.EMBED_DIM:
        model = EmbeddingClassifier(model, cfg.MODEL.EMBED_DIM, num_classes)
    apply_init(model, cfg.MODEL.INIT)
    if cfg.MODEL.PRETRAINED:
        load_pretrained(model, name, cfg.MODEL.PRETRAINED)
    if cfg.MODEL.FREEZE == "backbone":
        freeze_backbone(model)
    return model


def model_cost(cfg, name: str | None = None) -> tuple[int, int | None]:
    """(parameters, MACs per image at DATA.IMG_SIZE) of the configured model, or of the registered
    model `name` built as the config builds its own (classes, size, stem, width and the other
    options), measured on the meta device; MACs is None when the model cannot take that size."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.PRETRAINED, cfg.MODEL.FREEZE, cfg.MODEL.INIT = "", "none", "default"
    # Options the config sets for its own model say nothing about another one that lacks them.
    quiet = name is not None and name != cfg.MODEL.NAME
    cfg.MODEL.NAME = name or cfg.MODEL.NAME
    level = logger.level
    logger.setLevel(logging.ERROR if quiet else level)
    try:
        with torch.device("meta"):
            model = build_model(cfg)
    finally:
        logger.setLevel(level)
    try:
        macs = count_macs(model, cfg.DATA.IMG_SIZE)
    except RuntimeError:  # e.g. pooling a map smaller than its kernel
        macs = None
    return count_parameters(model), macs


def cost_setting(cfg) -> tuple[int, int, str]:
    """(classes, input side in px, stem) at which model_cost builds the configured models."""
    return resolve_num_classes(cfg), cfg.DATA.IMG_SIZE, resolve_stem(cfg)


def build_loss(cfg, model: nn.Module) -> TrainingLoss:
    """TRAIN.LOSS over the model's classes and its embedding (the classifier's input)."""
    train = cfg.TRAIN
    return TrainingLoss(parse_loss_terms(train.LOSS, train.LOSS_WEIGHTS), resolve_num_classes(cfg),
                        model.get_classifier().in_features, label_smoothing=train.LABEL_SMOOTHING,
                        arcface_margin=train.ARCFACE.MARGIN, arcface_scale=train.ARCFACE.SCALE,
                        cosface_margin=train.COSFACE.MARGIN, cosface_scale=train.COSFACE.SCALE,
                        triplet_margin=train.TRIPLET.MARGIN, triplet_miner=train.TRIPLET.MINER)
