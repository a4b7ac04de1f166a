"""Print the README's model table: every registered model with its parameters and MACs at 32 and 224 px.

    python scripts/model_table.py > /tmp/table.md

Counts are for 1000 classes, with MODEL.STEM auto (the small-input stem at 32 px), measured on the
meta device, so the whole zoo takes seconds.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from models.complexity import format_count  # noqa: E402
from studies.model_table import zoo_config, zoo_costs  # noqa: E402

SIZES = (32, 224)


def main() -> None:
    print("| model | " + " | ".join(f"params ({size} px) | MACs at {size} px" for size in SIZES) + " |")
    print("| --- |" + " ---: | ---: |" * len(SIZES))
    columns = [zoo_costs(zoo_config(size)) for size in SIZES]
    for rows in zip(*columns):
        cells = [rows[0][0]]
        for _, params, macs in rows:
            cells += [format_count(params), format_count(macs) if macs else "too small"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
