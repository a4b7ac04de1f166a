#!/bin/bash
# A search on a SLURM cluster: an array job whose every task is a worker of one Optuna study.
#
#   sbatch --array=0-7 --gpus-per-task 1 scripts/slurm_search.sh --storage postgresql://USER:PASS@HOST/optuna \
#       --cfg configs/resnet18_cifar10.yaml --space TRAIN.LR=loguniform:1e-4:1e-1 --trials 64 --name rn18-lr
#
# Each task runs scripts/search.py with the same arguments: it asks the shared study for trials until
# the study holds --trials of them, training each on its own GPUs (--devices auto). The study lives in
# the database of --storage, which every node must reach (PostgreSQL or MySQL; SQLite files are not
# safe for several machines at once), and OUTPUT must be a disk all nodes share, with file locks: a
# trial's run folder is held by the worker training it. SLURM sends SIGUSR1 120 s before a task's
# time limit (--signal); the trap passes SIGINT to the search, whose trials in flight save last.pth and
# stay RUNNING in the study; the next worker to start (a requeued task, or a second sbatch) resumes them.
#SBATCH --job-name=vision-zoo-search
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%A_%a.out
set -uo pipefail

if [ $# -eq 0 ]; then
    echo "usage: sbatch --array=0-N scripts/slurm_search.sh --storage URL --cfg CONFIG --space KEY=DIST ... --trials N" >&2
    exit 2
fi
cd "${SLURM_SUBMIT_DIR:-.}"
python scripts/search.py --devices auto "$@" &
SEARCH=$!
trap 'kill -INT "$SEARCH"' USR1 TERM
wait "$SEARCH"
STATUS=$?
if [ "$STATUS" -gt 128 ]; then  # interrupted by the time limit: wait for the trials to save, then requeue
    wait "$SEARCH"
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$STATUS"
