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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
