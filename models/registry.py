"""The model registry: a name -> constructor table filled by the @register_model decorator.

Adding a model takes one file in models/ whose constructors carry @register_model, plus its
import in models/__init__.py.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from utils.choices import resolve_choice

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(constructor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register `constructor` under its function name."""
    name = constructor.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    _MODELS[name] = constructor
    return constructor


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_MODELS)


def get_model_constructor(name: str) -> Callable[..., nn.Module]:
    """The constructor registered as `name` (in any case), or UserError suggesting the closest name."""
    return _MODELS[resolve_choice("MODEL.NAME", name, list_models())]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the model registered as `name` with the constructor's keyword arguments."""
    return get_model_constructor(name)(**kwargs)
