"""MODEL.EMBED_DIM: a learned embedding between any zoo model's backbone and a new classifier.

    image ──► backbone.forward_features ──► backbone.forward_head (its dropout and head, resized
        to embed_dim outputs: the projection) ──► BatchNorm1d ──► embedding (N, embed_dim)
        ──► classifier: Linear(embed_dim, num_classes) ──► logits

The backbone's own head becomes the projection, so no layer of it sits unused. The BatchNorm
after it is the last step of ArcFace's "E" output head (Deng et al., CVPR 2019, section 3.2:
BN-Dropout-FC-BN), which they found gives the most discriminative face embeddings.
"""
from __future__ import annotations

import torch
from torch import nn

from models.classifier import ImageClassifier


class EmbeddingClassifier(ImageClassifier):
    """`backbone` (built with `embed_dim` outputs) projecting to a BatchNorm-ed embedding, then a
    linear classifier over `num_classes`."""

    def __init__(self, backbone: ImageClassifier, embed_dim: int, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.embedding_norm = nn.BatchNorm1d(embed_dim)
        self.classifier = nn.Linear(embed_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding_norm(self.backbone.forward_head(self.backbone.forward_features(x)))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)

    def get_classifier(self) -> nn.Linear:
        return self.classifier

    def no_weight_decay(self) -> set[str]:
        exempt = self.backbone.no_weight_decay() if hasattr(self.backbone, "no_weight_decay") else set()
        return {f"backbone.{name}" for name in exempt}
