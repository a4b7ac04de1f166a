"""Freeze a model's backbone for a linear probe: only the classifier trains."""
from __future__ import annotations

from torch import nn


def freeze_backbone(model: nn.Module) -> None:
    """Stop gradients everywhere but `model.get_classifier()`, and keep the frozen norms in eval mode.

    BatchNorm layers would otherwise keep updating their running statistics in train mode, so
    `model.train()` is wrapped to put them back into eval mode every time.
    """
    classifier_parameters = {id(p) for p in model.get_classifier().parameters()}
    for parameter in model.parameters():
        parameter.requires_grad = id(parameter) in classifier_parameters
    frozen_norms = [module for module in model.modules()
                    if isinstance(module, nn.modules.batchnorm._BatchNorm)
                    and not any(p.requires_grad for p in module.parameters())]
    train_all = model.train

    def train_keeping_frozen_norms_in_eval(mode: bool = True) -> nn.Module:
        train_all(mode)
        for norm in frozen_norms:
            norm.eval()
        return model

    model.train = train_keeping_frozen_norms_in_eval
