"""Bad-input rows: checkpoint."""
from pathlib import Path
from typing import Any

import torch

from tests.bad_inputs.row import BadInput, quickstart_argv


def crafted(workspace: Path, finished_run: Path, **fields: Any) -> str:
    """The finished run's best.pth with `fields` replaced, written as workspace/crafted.pth."""
    state = torch.load(finished_run / "best.pth", map_location="cpu", weights_only=True)
    state.update(fields)
    path = workspace / "crafted.pth"
    torch.save(state, path)
    return str(path)


def eval_argv(checkpoint: str) -> list[str]:
    return ["--eval", "--resume", checkpoint, "--device", "cpu", "--opts", "DATA.NUM_WORKERS", "0"]


def resume_argv(workspace: Path, checkpoint: str) -> list[str]:
    return quickstart_argv(workspace, "TRAIN.EPOCHS", "3", tag="fork", flags=("--resume", checkpoint))


ROWS: list[BadInput] = [
    BadInput("checkpoint-config-not-yaml-eval",
             lambda ws, run: eval_argv(crafted(ws, run, config="MODEL: [lenet\n")), ("crafted.pth", "config")),
    BadInput("checkpoint-config-not-yaml-resume",
             lambda ws, run: resume_argv(ws, crafted(ws, run, config="MODEL: [lenet\n")), ("crafted.pth", "config")),
    BadInput("checkpoint-config-not-a-mapping-eval",
             lambda ws, run: eval_argv(crafted(ws, run, config="- lenet\n- digits\n")), ("crafted.pth", "config")),
    BadInput("checkpoint-config-not-text-resume",
             lambda ws, run: resume_argv(ws, crafted(ws, run, config=7)), ("crafted.pth", "config")),
    BadInput("checkpoint-epoch-not-an-int-resume",
             lambda ws, run: resume_argv(ws, crafted(ws, run, epoch="0")), ("crafted.pth", "epoch")),
    BadInput("checkpoint-epoch-not-an-int-eval",
             lambda ws, run: eval_argv(crafted(ws, run, epoch=0.5)), ("crafted.pth", "epoch")),
]
