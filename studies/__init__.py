"""What compares runs or probes a model: run comparisons, the throughput scan, the LR range test
and the model table, with their modes of main.py. The top library layer: imports everything
below it (utils, data, models, optimizer, config, evaluation, engine), never main.py."""
