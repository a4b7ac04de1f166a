"""What one row of the bad-input matrix is, and the pieces rows are built from."""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent.parent
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
# Opts that keep a quickstart run to a second or two on a CPU.
FAST_OPTS = ["DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled", "PRINT_FREQ", "5"]


@dataclass(frozen=True)
class BadInput:
    """One mistake and what it must produce.

    `prepare(workspace, finished_run)` writes the bad input under `workspace` (a fresh folder the row
    owns; `finished_run` is a copy, inside it, of a finished one-epoch quickstart run,
    `workspace/out/lenet_digits/done`) and returns the command's argv. The one stderr line must
    contain every string of `names` (the key, file, id or line the mistake is in)."""
    id: str
    prepare: Callable[[Path, Path], list[str]]
    names: tuple[str, ...]
    command: str = "main.py"  # or a script under scripts/, e.g. "scripts/sweep.py"


def quickstart_argv(workspace: Path, *opts: str, tag: str = "bad", flags: tuple[str, ...] = ()) -> list[str]:
    """main.py training the quickstart into `workspace/out` under `tag`, with `opts` last."""
    return ["--cfg", QUICKSTART, "--output", str(workspace / "out"), "--tag", tag, "--device", "cpu", *flags,
            "--opts", *FAST_OPTS, "TRAIN.EPOCHS", "1", *opts]


def write(path: Path, text: str | bytes) -> Path:
    """Write `text` (or bytes) to `path`, making its folder; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def command_main(command: str) -> Callable[[list[str]], int]:
    """The `main(argv)` of main.py or of a script under scripts/."""
    if command == "main.py":
        import main
        return main.main
    spec = importlib.util.spec_from_file_location(f"bad_input_{Path(command).stem}", os.path.join(REPO, command))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main
