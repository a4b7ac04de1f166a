"""Print the README's model table: every registered model with its parameters and MACs at 32 and 224 px.

    python scripts/model_table.py > /tmp/table.md

Counts are for 1000 classes, with MODEL.STEM auto (the small-input stem at 32 px), measured on the
meta device, so the whole zoo takes seconds.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from config import get_config  # noqa: E402
from models import list_models  # noqa: E402
from models.build import model_cost  # noqa: E402
from models.complexity import format_count  # noqa: E402


def main() -> None:
    print("| model | params (32 px) | MACs at 32 px | params (224 px) | MACs at 224 px |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in list_models():
        cells = [name]
        for size in (32, 224):
            cfg = get_config(None, ["MODEL.NAME", name, "MODEL.NUM_CLASSES", "1000", "DATA.IMG_SIZE", str(size)])
            params, macs = model_cost(cfg)
            cells += [format_count(params), format_count(macs) if macs else "too small"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
