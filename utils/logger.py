"""Logging for a run: INFO to the console, everything to the run folder's log.txt."""
from __future__ import annotations

import logging
import os
import sys

from tqdm import tqdm

FORMAT = "[%(asctime)s] %(message)s"


class _TqdmConsoleHandler(logging.Handler):
    """Console output that does not tear through an active tqdm progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stdout)
        except Exception:
            self.handleError(record)


def create_logger(run_dir: str | None, quiet: bool = False) -> logging.Logger:
    """Route log records to the console (INFO and up; warnings only when `quiet`, as for torchrun's
    ranks other than 0) and to run_dir/log.txt, and return the run's logger.

    The handlers go on the root logger, so module loggers such as `data.build` reach both
    places too. Calling it again (a second run in one process) replaces the handlers.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.INFO)
    console = _TqdmConsoleHandler(logging.WARNING if quiet else logging.INFO)
    console.setFormatter(logging.Formatter(FORMAT, "%H:%M:%S"))
    root.addHandler(console)
    if run_dir is not None:
        file_handler = logging.FileHandler(os.path.join(run_dir, "log.txt"), encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(FORMAT, "%Y-%m-%d %H:%M:%S"))
        root.addHandler(file_handler)
    logger = logging.getLogger("vision_zoo")
    # Per-iteration lines are DEBUG records: they pass this logger and reach log.txt only.
    logger.setLevel(logging.DEBUG)
    return logger
