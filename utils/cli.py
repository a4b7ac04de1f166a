"""Command-line parsing shared by main.py and the scripts."""
from __future__ import annotations

import argparse


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a bad flag ends like every other user error: one line, exit code 2.

    `command` is how the user runs the program (e.g. "python main.py"), named in the hint.
    """

    def __init__(self, command: str, **kwargs):
        super().__init__(**kwargs)
        self.command = command

    def error(self, message: str):
        self.exit(2, f"error: {message}; see {self.command} --help\n")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expects a positive whole number, got {text!r}")
    return int(text)
