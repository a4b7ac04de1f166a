"""The training loss: a weighted sum of cross-entropy and metric-learning terms.

    logits, features, targets ──► w_ce·CE(logits) + w_arc·ArcFace(features) + w_cos·CosFace(features)
                                  + w_tri·Triplet(features)   [+ plain CE(logits) when ce is not a term]

The metric terms come from pytorch-metric-learning (PML); this module owns their class-centre
matrices, so they reach the optimizer through `parameters()` and the checkpoint through `state_dict()`.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from pytorch_metric_learning import losses, miners
from torch import nn

from utils.errors import UserError

LOSS_TERMS = ("ce", "arcface", "cosface", "triplet")
TRIPLET_MINERS = ("batch_hard", "semihard", "all")

_SPEC_HELP = f"valid terms: {', '.join(LOSS_TERMS)}, joined with + as in ce+arcface"


def parse_loss_terms(spec: str, weights: Sequence[float]) -> list[tuple[str, float]]:
    """TRAIN.LOSS ("ce+arcface", case-insensitive, spaces allowed around +) and TRAIN.LOSS_WEIGHTS
    (one per term, in order; empty means 1.0 each) as [(term, weight), ...]. Mistakes are UserErrors."""
    if not spec.strip():
        raise UserError(f"TRAIN.LOSS is empty; {_SPEC_HELP}")
    names = [name.strip().lower() for name in spec.split("+")]
    for name in names:
        if not name:
            raise UserError(f"TRAIN.LOSS '{spec}' has an empty term; {_SPEC_HELP}")
        if name not in LOSS_TERMS:
            raise UserError(f"TRAIN.LOSS '{spec}' has an unknown term '{name}'; {_SPEC_HELP}")
        if names.count(name) > 1:
            raise UserError(f"TRAIN.LOSS '{spec}' repeats the term '{name}'; "
                            "give each term once and set its weight in TRAIN.LOSS_WEIGHTS")
    weights = [float(weight) for weight in weights] or [1.0] * len(names)
    if len(weights) != len(names):
        raise UserError(f"TRAIN.LOSS_WEIGHTS has {len(weights)} weight{'s' if len(weights) != 1 else ''} "
                        f"for {len(names)} term{'s' if len(names) != 1 else ''} in TRAIN.LOSS '{spec}'; "
                        "give one weight per term, in order, or none for 1.0 each")
    for name, weight in zip(names, weights):
        if not (math.isfinite(weight) and weight >= 0):
            raise UserError(f"TRAIN.LOSS_WEIGHTS gives the term '{name}' the weight {weight:g}; "
                            "weights must be finite and >= 0")
    return list(zip(names, weights))


def build_triplet_miner(name: str, margin: float) -> miners.BaseMiner | None:
    """The PML miner that picks each batch's triplets; None ("all") uses every valid triplet."""
    if name == "batch_hard":
        return miners.BatchHardMiner()
    if name == "semihard":
        return miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard")
    if name == "all":
        return None
    raise ValueError(f"unknown triplet miner {name!r}; valid miners: {', '.join(TRIPLET_MINERS)}")


class TrainingLoss(nn.Module):
    """forward(logits, targets, features) = the weighted sum of `terms`, a scalar.

    - ce: `nn.CrossEntropyLoss(label_smoothing)` on `logits`; takes hard or soft (mixup) targets.
    - arcface / cosface: PML's ArcFaceLoss / CosFaceLoss on `features`, margins in radians / cosine
      units as in the papers; their class centres `W` (embedding_size x num_classes) are parameters here.
    - triplet: PML's TripletMarginLoss on `features`, triplets picked by `triplet_miner`.

    Without a ce term the metric terms alone shape the backbone, and forward adds an unweighted plain
    CE on `logits`: a linear probe. The caller computes those logits from *detached* features, so this
    CE trains only the classifier head, which keeps tracking the embedding; validation accuracy and
    submission.csv stay meaningful. `trains_through_head` says which of the two the caller must do.
    """

    def __init__(self, terms: list[tuple[str, float]], num_classes: int, embedding_size: int,
                 label_smoothing: float = 0.0, arcface_margin: float = 0.5, arcface_scale: float = 64.0,
                 cosface_margin: float = 0.35, cosface_scale: float = 64.0,
                 triplet_margin: float = 0.2, triplet_miner: str = "batch_hard"):
        # Defaults: ArcFace m = 0.5 rad, s = 64 (Deng et al., 2019); CosFace m = 0.35, s = 64 (Wang et al.,
        # 2018); triplet margin 0.2 is FaceNet's alpha (Schroff et al., 2015).
        super().__init__()
        names = [name for name, _ in terms]
        if not terms or len(set(names)) != len(names) or not set(names) <= set(LOSS_TERMS):
            raise ValueError(f"terms must be distinct names from {LOSS_TERMS}, got {names}")
        self.terms = list(terms)
        self.label_smoothing = label_smoothing
        self.triplet_miner_name = triplet_miner
        miner = build_triplet_miner(triplet_miner, triplet_margin)  # refuses an unknown name with or without triplet
        self.cross_entropy = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.probe_cross_entropy = nn.CrossEntropyLoss()
        if "arcface" in names:
            # PML takes the ArcFace margin in degrees.
            self.arcface = losses.ArcFaceLoss(num_classes, embedding_size, margin=math.degrees(arcface_margin),
                                              scale=arcface_scale)
        if "cosface" in names:
            self.cosface = losses.CosFaceLoss(num_classes, embedding_size, margin=cosface_margin, scale=cosface_scale)
        if "triplet" in names:
            self.triplet = losses.TripletMarginLoss(margin=triplet_margin)
            self.triplet_miner = miner
        self.arcface_margin, self.arcface_scale = arcface_margin, arcface_scale
        self.cosface_margin, self.cosface_scale = cosface_margin, cosface_scale
        self.triplet_margin = triplet_margin

    @property
    def needs_features(self) -> bool:
        """Whether forward needs the backbone's features (any term other than ce)."""
        return any(name != "ce" for name, _ in self.terms)

    @property
    def trains_through_head(self) -> bool:
        """Whether ce is a term; if not, the caller must compute the logits from detached features."""
        return any(name == "ce" for name, _ in self.terms)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor,
                features: torch.Tensor | None = None) -> torch.Tensor:
        """The weighted sum as a scalar. `features` (N, embedding_size) is required when needs_features,
        and then targets must be hard labels (int64, shape (N,))."""
        if self.needs_features:
            if features is None:
                raise ValueError(f"the loss {self.describe()} needs the backbone's features")
            if targets.ndim != 1 or targets.dtype != torch.long:
                raise ValueError(f"targets of shape {tuple(targets.shape)} and dtype {targets.dtype}: "
                                 "metric losses need hard labels; turn off mixup/cutmix")
        total = torch.zeros((), device=logits.device)
        for name, weight in self.terms:
            if name == "ce":
                term = self.cross_entropy(logits, targets)
            else:
                term = self._metric_term(name, features, targets)
            total = total + weight * term
        if not self.trains_through_head:
            total = total + self.probe_cross_entropy(logits, targets)
        return total

    def _metric_term(self, name: str, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # In float32 with autocast off: PML's cast_types would otherwise cast W in place to the features'
        # dtype (bf16/fp16), and the cosine matmul would run in low precision against a scale of 64.
        with torch.autocast(device_type=features.device.type, enabled=False):
            features = features.float()
            if name == "triplet":
                mined = self.triplet_miner(features, targets) if self.triplet_miner is not None else None
                return self.triplet(features, targets, mined)
            return getattr(self, name)(features, targets)

    def describe(self) -> str:
        """The loss in one line for the run's log, e.g. "ce 1 + arcface 0.5 (m 0.5 rad, s 64)"."""
        details = {
            "ce": f" (label smoothing {self.label_smoothing:g})" if self.label_smoothing else "",
            "arcface": f" (m {self.arcface_margin:g} rad, s {self.arcface_scale:g})",
            "cosface": f" (m {self.cosface_margin:g}, s {self.cosface_scale:g})",
            "triplet": f" (margin {self.triplet_margin:g}, {self.triplet_miner_name} miner)",
        }
        parts = [f"{name} {weight:g}{details[name]}" for name, weight in self.terms]
        if not self.trains_through_head:
            parts.append("linear-probe ce on detached features")
        return " + ".join(parts)
