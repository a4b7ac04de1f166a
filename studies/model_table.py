"""`main.py --list-models`: every model of the zoo with its parameters and MACs at one image size."""
from __future__ import annotations

from config import get_config
from models import list_models
from models.build import model_cost
from models.complexity import format_count


def print_model_table(img_size: int) -> None:
    """--list-models: name, parameters and MACs at img_size (1000 classes), one model per line."""
    print(f"{'model':<20} {'params':>10} {f'MACs @ {img_size}px':>14}")
    for name in list_models():
        cfg = get_config(None, ["MODEL.NAME", name, "MODEL.NUM_CLASSES", "1000", "DATA.IMG_SIZE", str(img_size)])
        params, macs = model_cost(cfg)
        print(f"{name:<20} {format_count(params):>10} {format_count(macs) if macs else 'too small':>14}")
