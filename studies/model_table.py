"""`main.py --list-models`: every model of the zoo with its parameters and MACs, built as a config
builds its model, or at one image size and 1000 classes."""
from __future__ import annotations

from config import get_config
from models import list_models
from models.build import cost_setting, model_cost
from models.complexity import format_count

# The image side that --list-models counts at without a config (ImageNet's).
DEFAULT_IMG_SIZE = 224


def zoo_config(img_size: int):
    """The default config at `img_size` px and 1000 classes: how the README's table counts the zoo."""
    return get_config(None, ["MODEL.NUM_CLASSES", "1000", "DATA.IMG_SIZE", str(img_size)])


def zoo_costs(cfg) -> list[tuple[str, int, int | None]]:
    """(name, parameters, MACs per image or None when too small) of every registered model, each
    built as `cfg` builds its own model."""
    return [(name, *model_cost(cfg, name)) for name in list_models()]


def print_model_table(cfg=None, img_size: int | None = None) -> None:
    """--list-models: name, parameters and MACs, one model per line. With `cfg` (from --cfg and
    --opts) each model is built with its classes, image size, stem and width, which the header
    names; without one, at `img_size` px (DEFAULT_IMG_SIZE when None) and 1000 classes."""
    if cfg is None:
        img_size = img_size or DEFAULT_IMG_SIZE
        cfg, setting = zoo_config(img_size), ""
    else:
        num_classes, img_size, stem = cost_setting(cfg)
        setting = f"  ({num_classes} classes, {img_size} px, stem {stem}: as the config builds its model)"
    print(f"{'model':<20} {'params':>10} {f'MACs @ {img_size}px':>14}{setting}")
    for name, params, macs in zoo_costs(cfg):
        print(f"{name:<20} {format_count(params):>10} {format_count(macs) if macs else 'too small':>14}")
