"""The space a search draws configs from: `--space KEY=DIST` items, checked against the config.

    TRAIN.LR=loguniform:1e-4:1e-1       a float, uniform in log scale between the bounds
    TRAIN.WEIGHT_DECAY=uniform:0:0.1    a float, uniform between the bounds
    MODEL.DEPTH=int:2:8                 a whole number, both bounds included
    DATA.BATCH_SIZE=choice:64,128,256   one of the values (commas inside brackets stay, as in sweep.py)

Keys match in any case and are checked like --opts (the same did-you-mean); the bounds and every
choice are set on the config before the first trial, so that a value the key rejects costs one
line, not a failed trial.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import optuna

from config import get_default_config, resolve_key_path
from utils.errors import UserError
from utils.grid_values import split_values

KINDS = ("loguniform", "uniform", "int", "choice")


@dataclass(frozen=True)
class Dimension:
    """One key of the space and what it is drawn from: bounds (`low`, `high`) or `choices`."""
    key: str  # as the config spells it
    kind: str  # one of KINDS
    low: float = 0.0
    high: float = 0.0
    choices: tuple[str, ...] = ()

    def distribution(self) -> optuna.distributions.BaseDistribution:
        if self.kind == "choice":
            return optuna.distributions.CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high))
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.kind == "loguniform")

    def texts(self) -> list[str]:
        """The values to check against the config: the bounds, or every choice."""
        if self.kind == "choice":
            return list(self.choices)
        return [value_text(self.low, self.kind), value_text(self.high, self.kind)]


def value_text(value, kind: str) -> str:
    """A drawn value as --opts takes it: whole numbers for int, repr for floats (no digit lost)."""
    if kind == "int":
        return str(int(value))
    return repr(float(value)) if kind in ("loguniform", "uniform") else str(value)


def parse_dimension(item: str) -> Dimension:
    """`KEY=KIND:...` as a Dimension; UserError in one line for an unknown key, kind or malformed
    bounds."""
    key, sep, spec = item.partition("=")
    kind, colon, rest = spec.partition(":")
    if not sep or not key.strip() or not colon or not rest.strip():
        raise UserError(f"--space {item!r} must look like KEY=KIND:..., e.g. TRAIN.LR=loguniform:1e-4:1e-1 or "
                        f"DATA.BATCH_SIZE=choice:64,128; kinds: {', '.join(KINDS)}")
    _, key, _ = resolve_key_path(get_default_config(), key.strip())
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise UserError(f"--space {item}: unknown distribution {kind!r}; use one of {', '.join(KINDS)}")
    if kind == "choice":
        choices = tuple(split_values(rest))
        if any(not choice for choice in choices) or len(set(choices)) < len(choices):
            raise UserError(f"--space {item}: choices must be distinct and not empty, e.g. choice:64,128,256")
        return Dimension(key, kind, choices=choices)
    bounds = rest.split(":")
    if len(bounds) != 2:
        raise UserError(f"--space {item}: {kind} takes two bounds, LOW:HIGH, e.g. {kind}:{'2:8' if kind == 'int' else '1e-4:1e-1'}")
    low, high = (parse_bound(item, kind, bound) for bound in bounds)
    if low >= high:
        raise UserError(f"--space {item}: the low bound {bounds[0]} is not below the high bound {bounds[1]}")
    if kind == "loguniform" and low <= 0:
        raise UserError(f"--space {item}: loguniform needs bounds above 0 (it draws their logarithm); got {bounds[0]}")
    return Dimension(key, kind, low, high)


def parse_bound(item: str, kind: str, text: str) -> float:
    try:
        value = int(text) if kind == "int" else float(text)
    except ValueError:
        whole = "a whole number" if kind == "int" else "a number"
        raise UserError(f"--space {item}: bound {text.strip()!r} is not {whole}") from None
    if not math.isfinite(value):
        raise UserError(f"--space {item}: bound {text.strip()!r} is not a finite number")
    return value


def parse_space(items: Sequence[str], check: Callable[[list[str]], None]) -> list[Dimension]:
    """The Dimensions of `items`, each key once, every bound and choice accepted by `check` (which
    builds the config with those --opts and raises UserError when it cannot)."""
    if not items:
        raise UserError("give at least one --space KEY=DIST, e.g. --space TRAIN.LR=loguniform:1e-4:1e-1")
    dimensions: list[Dimension] = []
    for item in items:
        dimension = parse_dimension(item)
        if dimension.key in [known.key for known in dimensions]:
            raise UserError(f"--space names {dimension.key} twice; give it once")
        for text in dimension.texts():
            try:
                check([dimension.key, text])
            except UserError as e:
                raise UserError(f"--space {item}: {dimension.key} {text}: {e}") from None
        dimensions.append(dimension)
    return dimensions
