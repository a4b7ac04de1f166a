"""The Kaggle submission file: one row per test image, in data set order."""
from __future__ import annotations

import os
from typing import Sequence


def write_submission(path: str, predictions: Sequence[int], header: str = "Id,Category") -> None:
    """Write `header`, then `index,predicted_class` for every test image; atomically."""
    tmp_path = f"{path}.tmp-{os.getpid()}"
    with open(tmp_path, "w", encoding="utf-8", newline="") as f:
        f.write(header + "\n")
        f.writelines(f"{index},{int(category)}\n" for index, category in enumerate(predictions))
    os.replace(tmp_path, path)
