#!/usr/bin/env bash
# Train ResNet-18 on CIFAR-10 at three learning rates, one run folder per rate.
# Each --opts pair overrides one config key; --opts comes last and wins over the YAML file.
# Usage: scripts/sweep_lr.sh [DATA_PATH]
set -euo pipefail
data_path=${1:-datasets}
for lr in 0.05 0.1 0.2; do
  python main.py --cfg configs/resnet18_cifar10.yaml --data-path "$data_path" --tag "lr${lr}" \
    --opts TRAIN.LR "$lr" TRAIN.EPOCHS 30 WANDB.MODE offline
done
