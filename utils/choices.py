"""Match a name a user typed against the valid ones: case-insensitively, with a "did you mean"."""
from __future__ import annotations

import difflib
from typing import Iterable

from utils.errors import UserError


def resolve_choice(what: str, name: str, choices: Iterable[str]) -> str:
    """The valid choice that `name` names, or UserError with the closest one and the full list.

    An exact match wins; otherwise a case-insensitive match is taken when exactly one choice
    fits (`AlexNet` -> alexnet). `what` names the setting in the message, e.g. "MODEL.NAME".
    """
    choices = list(choices)
    if name in choices:
        return name
    folded = [choice for choice in choices if choice.lower() == str(name).lower()]
    if len(folded) == 1:
        return folded[0]
    close = difflib.get_close_matches(str(name).lower(), [choice.lower() for choice in choices], n=1, cutoff=0.6)
    hint = f"did you mean {next(c for c in choices if c.lower() == close[0])}? " if close else ""
    raise UserError(f"unknown {what} {name!r}; {hint}choose one of: {', '.join(choices)}")
