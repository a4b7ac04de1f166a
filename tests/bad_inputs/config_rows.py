"""Bad-input rows: the config (YAML files, --opts, flags)."""
from tests.bad_inputs.row import BadInput, quickstart_argv, write

# A "billion laughs" document inside a list key: nine levels of nine aliases, a few hundred bytes
# that stand for 9**9 (387 million) names.
ALIAS_BOMB = "DATA:\n  HOLDOUT_CLASSES: [&a [lol,lol,lol,lol,lol,lol,lol,lol,lol],\n" + "".join(
    f"    &{level} [{','.join([f'*{previous}'] * 9)}],\n" for previous, level in zip("abcdefgh", "bcdefghi")
).rstrip(",\n") + "]\n"


def config_file_argv(workspace, name: str, text: str | bytes) -> list[str]:
    """main.py training with the config file `name` holding `text`."""
    return ["--cfg", str(write(workspace / name, text)), "--output", str(workspace / "out"), "--device", "cpu"]


ROWS: list[BadInput] = [
    BadInput("opts-unknown-key", lambda ws, run: quickstart_argv(ws, "TRAIN.LRR", "1e-3"), ("TRAIN.LRR",)),
    BadInput("opts-wrong-type", lambda ws, run: quickstart_argv(ws, "TRAIN.EPOCHS", "many"), ("TRAIN.EPOCHS",)),
    BadInput("yaml-unknown-key",
             lambda ws, run: ["--cfg", str(write(ws / "typo.yaml", "TRAIN:\n  EPOHCS: 3\n")), "--output",
                              str(ws / "out")], ("TRAIN.EPOHCS",)),
    BadInput("yaml-base-a-number", lambda ws, run: config_file_argv(ws, "base5.yaml", "BASE: 5\n"),
             ("base5.yaml", "BASE")),
    BadInput("yaml-base-a-list-of-numbers", lambda ws, run: config_file_argv(ws, "base1.yaml", "BASE: [1]\n"),
             ("base1.yaml", "BASE")),
    BadInput("yaml-not-utf8", lambda ws, run: config_file_argv(ws, "latin1.yaml", "TAG: café\n".encode("latin-1")),
             ("latin1.yaml", "UTF-8")),
    BadInput("yaml-alias-bomb-in-a-list-key", lambda ws, run: config_file_argv(ws, "bomb.yaml", ALIAS_BOMB),
             ("bomb.yaml",)),
    BadInput("opts-milestones-of-text", lambda ws, run: quickstart_argv(ws, "TRAIN.LR_SCHEDULER.MILESTONES", "('a',)"),
             ("TRAIN.LR_SCHEDULER.MILESTONES",)),
    BadInput("opts-betas-of-text", lambda ws, run: quickstart_argv(ws, "TRAIN.OPTIMIZER.BETAS", "('a','b')"),
             ("TRAIN.OPTIMIZER.BETAS",)),
    BadInput("opts-betas-out-of-range", lambda ws, run: quickstart_argv(ws, "TRAIN.OPTIMIZER.BETAS", "(0.9, 1.5)"),
             ("TRAIN.OPTIMIZER.BETAS",)),
]
