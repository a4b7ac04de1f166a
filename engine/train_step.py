"""One training step, shared by the training loop, the throughput scan and the LR range test:
uint8 images in, normalised on the device, forward under autocast, scaled backward, update."""
from __future__ import annotations

import torch
from torch import nn

from utils.device import DeviceSetup

# Weight of each auxiliary classifier's loss (GoogLeNet, Szegedy et al., 2014).
AUX_LOSS_WEIGHT = 0.3


def training_loss(outputs, targets: torch.Tensor, criterion) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, loss). Models with auxiliary classifiers (GoogLeNet) return (logits, [aux_logits, ...])
    in training; each auxiliary loss is added with weight AUX_LOSS_WEIGHT."""
    if isinstance(outputs, tuple):
        logits, aux_outputs = outputs
        loss = criterion(logits, targets) + AUX_LOSS_WEIGHT * sum(criterion(aux, targets) for aux in aux_outputs)
        return logits, loss
    return outputs, criterion(outputs, targets)


def forward(model: nn.Module, normalize: nn.Module, images: torch.Tensor, targets: torch.Tensor, criterion,
            setup: DeviceSetup, mix=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move a uint8 batch to the device and run it forward: (logits, loss, targets on the device).

    `mix(images, targets)` (a data.mix.BatchMixer bound to the batch's epoch and index) mixes the
    normalised batch; the loss then takes its soft targets, and the returned targets are each
    row's dominant label, which train accuracy is measured on.
    """
    images = normalize(images.to(setup.device, non_blocking=True))
    targets = targets.to(setup.device, non_blocking=True)
    loss_targets = targets
    if mix is not None:
        images, loss_targets = mix(images, targets)
        targets = loss_targets.argmax(dim=1)
    with setup.autocast():
        if getattr(criterion, "needs_features", False):
            # Metric losses (models.losses.TrainingLoss) act on the embedding; without a ce term
            # the head learns on it detached, as a linear probe.
            features, logits = model(images, return_features=True, detach_head=not criterion.trains_through_head)
            loss = criterion(logits, loss_targets, features)
        else:
            logits, loss = training_loss(model(images), loss_targets, criterion)
    return logits, loss, targets


def backward(loss: torch.Tensor, scaler: torch.amp.GradScaler, loss_divisor: int = 1) -> None:
    """Accumulate the gradients of loss / loss_divisor, so that gradients summed over that many
    batches average them."""
    scaler.scale(loss / loss_divisor).backward()


def forward_backward(model: nn.Module, normalize: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                     criterion, scaler: torch.amp.GradScaler, setup: DeviceSetup,
                     loss_divisor: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`forward`, then `backward`; gradients accumulate. Returns (logits, loss, targets on the device)."""
    logits, loss, targets = forward(model, normalize, images, targets, criterion, setup)
    backward(loss, scaler, loss_divisor)
    return logits, loss, targets


def optimizer_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, clip_grad: float = 0.0) -> None:
    """Apply the accumulated gradients (clipped to norm `clip_grad` when > 0) and clear them."""
    if clip_grad > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], clip_grad)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def train_step(model: nn.Module, normalize: nn.Module, images: torch.Tensor, targets: torch.Tensor, criterion,
               optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, setup: DeviceSetup) -> torch.Tensor:
    """One whole update on one batch; returns the loss (still on the device)."""
    _, loss, _ = forward_backward(model, normalize, images, targets, criterion, scaler, setup)
    optimizer_step(optimizer, scaler)
    return loss
