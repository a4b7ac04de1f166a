#!/bin/bash
# Train on a SLURM cluster with torchrun: one task per node, torchrun starts one process per GPU,
# and the job survives preemption and time limits by requeueing itself.
#
#   sbatch --nodes 2 --gpus-per-node 4 scripts/slurm.sh configs/resnet50_cifar10.yaml [--opts KEY VALUE ...]
#
# How it survives: SLURM sends this batch shell SIGUSR1 120 s before it stops the job (--signal).
# The trap passes SIGTERM to every torchrun, which hands it to its workers: each finishes the
# update in flight, rank 0 writes last.pth with the position inside the epoch, and they exit.
# The job then requeues itself; the requeued job runs this script again with the same TAG and
# --resume auto, so it continues from the next batch. A rank that crashes is restarted with its
# whole group by torchrun (--max-restarts), which also resumes from last.pth by itself.
# Several nodes need an OUTPUT folder on a disk that all of them share.
#SBATCH --job-name=vision-zoo
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=16
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -uo pipefail

CFG=${1:?usage: sbatch scripts/slurm.sh CONFIG [main.py flags and --opts ...]}
shift
GPUS_PER_NODE=${SLURM_GPUS_ON_NODE:-$(nvidia-smi -L | wc -l)}
HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
# The job id survives a requeue, so the requeued job finds its own run folder.
TAG=${TAG:-slurm-$SLURM_JOB_ID}

stop_and_requeue() {
    echo "$(date '+%F %T') SIGUSR1: saving and requeueing job $SLURM_JOB_ID"
    scancel --signal=TERM "$SLURM_JOB_ID"  # every job step's tasks (torchrun), not this shell
    wait "$TRAIN_PID"
    scontrol requeue "$SLURM_JOB_ID"
    exit 0
}
trap stop_and_requeue USR1
# A requeued job continues its run; the first start has none yet, which --resume auto refuses.
RESUME=()
if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then RESUME=(--resume auto); fi

srun --kill-on-bad-exit=1 torchrun \
    --nnodes "$SLURM_NNODES" --nproc_per_node "$GPUS_PER_NODE" \
    --rdzv-backend c10d --rdzv-endpoint "$HEAD_NODE:29500" --rdzv-id "$SLURM_JOB_ID" \
    --max-restarts 3 \
    main.py --cfg "$CFG" --tag "$TAG" ${RESUME[@]+"${RESUME[@]}"} "$@" &
TRAIN_PID=$!
# `wait` returns early when the trap fires; the trap then waits for training to finish saving.
wait "$TRAIN_PID"
