"""Bad-input rows: the competition metrics (TEST.METRICS names, a TEST.SELECT_METRIC that is not
scored, TEST.TOP_K)."""
from tests.bad_inputs.row import BadInput, quickstart_argv

ROWS: list[BadInput] = [
    BadInput("metrics-unknown-name", lambda ws, run: quickstart_argv(ws, "TEST.METRICS", "['macro_f1','logloss']"),
             ("TEST.METRICS", "logloss", "log_loss")),
    BadInput("metrics-not-a-list", lambda ws, run: quickstart_argv(ws, "TEST.METRICS", "macro_f1"),
             ("TEST.METRICS",)),
    BadInput("select-metric-not-scored", lambda ws, run: quickstart_argv(ws, "TEST.SELECT_METRIC", "val_log_loss"),
             ("TEST.SELECT_METRIC", "val_log_loss", "TEST.METRICS")),
    BadInput("select-metric-misspelt", lambda ws, run: quickstart_argv(ws, "TEST.SELECT_METRIC", "val_logloss"),
             ("TEST.SELECT_METRIC", "val_logloss", "val_log_loss")),
    BadInput("top-k-zero", lambda ws, run: quickstart_argv(ws, "TEST.METRICS", "['top_k_accuracy']", "TEST.TOP_K", "0"),
             ("TEST.TOP_K",)),
]
