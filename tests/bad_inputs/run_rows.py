"""Bad-input rows: run (a run folder another live run holds)."""
import os
import socket
from pathlib import Path

from engine.run_lock import RunClaim, claim_run_dir
from tests.bad_inputs.row import BadInput, quickstart_argv

# The claims the rows hold for the "other" run, for as long as this test process lives. flock is
# per open file, so the command, run in this same process, is refused as a second process would be.
HELD: list[RunClaim] = []
HOLDER = (f"pid {os.getpid()}", socket.gethostname())


def held_by_another_run(workspace: Path, tag: str) -> None:
    HELD.append(claim_run_dir(str(workspace / "out" / "lenet_digits" / tag)))


def new_run_on_a_live_folder(workspace: Path, finished_run: Path) -> list[str]:
    held_by_another_run(workspace, "live")
    return quickstart_argv(workspace, tag="live")


def resume_of_a_live_run(workspace: Path, finished_run: Path) -> list[str]:
    held_by_another_run(workspace, finished_run.name)
    return quickstart_argv(workspace, "TRAIN.EPOCHS", "2", tag=finished_run.name, flags=("--resume", "auto"))


ROWS: list[BadInput] = [
    BadInput("run-folder-held-by-a-live-run", new_run_on_a_live_folder,
             (*HOLDER, os.path.join("lenet_digits", "live"))),
    BadInput("resume-auto-of-a-run-a-live-run-holds", resume_of_a_live_run, (*HOLDER, ".run.lock")),
]
