"""The interface every model in the zoo shares."""
from __future__ import annotations

import torch
from torch import nn


class ImageClassifier(nn.Module):
    """An image classifier split into a backbone and a head: forward = forward_head(forward_features(x)).

    Subclasses define `forward_features(x)` (the pooled penultimate embedding, shape (N, D)),
    `forward_head(features)` (the logits) and `get_classifier()` (the final nn.Linear, which
    pretrained loading replaces and a linear probe trains).
    """

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_classifier(self) -> nn.Linear:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, return_features: bool = False,
                detach_head: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The logits; with `return_features`, (embedding, logits) for the metric losses.

        `detach_head` feeds the head a detached embedding, so that the classifier learns from
        it without its loss reaching the backbone (the linear probe of a metric-loss run). Both
        are arguments of forward, not calls of forward_features, so that DistributedDataParallel
        and torch.compile see the whole computation.
        """
        features = self.forward_features(x)
        logits = self.forward_head(features.detach() if detach_head else features)
        return (features, logits) if return_features else logits
