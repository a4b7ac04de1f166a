"""The run's machinery: building its parts, the train step and epoch loop, checkpoints and run
folders, resume, preemption, torchrun, EMA/SWA, tracking (files and W&B), and the modes that
start from a checkpoint. Imports utils, data, models, optimizer, config and evaluation; never
studies or main.py."""
