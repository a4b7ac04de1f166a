"""Short legend labels for runs: only the config keys that differ between the runs shown, each in
the short form a student would write (`resnet18, lr 3e-4, bs 128, jitter 0.4`). The full
`KEY=value` list stays in the comparison table."""
from __future__ import annotations

import math
from typing import Any, Sequence

# How a key reads in a label: "{}" is its value. The model, data set and optimizer need no name.
SHORT_FORMS = {
    "MODEL.NAME": "{}", "DATA.DATASET": "{}", "TRAIN.OPTIMIZER.NAME": "{}", "TRAIN.LR_SCHEDULER.NAME": "{} schedule",
    "TRAIN.LR": "lr {}", "TRAIN.MIN_LR": "min lr {}", "TRAIN.WARMUP_LR": "warmup lr {}", "DATA.BATCH_SIZE": "bs {}",
    "TRAIN.WEIGHT_DECAY": "wd {}", "TRAIN.EPOCHS": "epochs {}", "TRAIN.WARMUP_EPOCHS": "warmup {}",
    "DATA.IMG_SIZE": "{} px", "AUG.COLOR_JITTER": "jitter {}", "AUG.RAND_AUGMENT": "randaug {}",
    "AUG.MIXUP": "mixup {}", "AUG.CUTMIX": "cutmix {}", "TRAIN.LABEL_SMOOTHING": "smoothing {}",
    "MODEL.DROP_RATE": "dropout {}", "MODEL.DROP_PATH_RATE": "drop path {}", "TRAIN.LOSS": "loss {}",
    "TRAIN.MIXED_PRECISION": "amp {}", "DATA.TRAIN_SUBSET": "subset {}", "TRAIN.EMA.DECAY": "ema {}",
    "TRAIN.ACCUMULATION_STEPS": "accum {}", "TRAIN.CLIP_GRAD": "clip {}", "SEED": "seed {}",
}


def format_value(value: Any) -> str:
    """A config value as a label shows it: 3e-4 and 1e-3 (not 0.0003), 0.4, 128, a blank (a
    switched-off key) as none, lists as 0.08-1."""
    if isinstance(value, (list, tuple)):
        return "-".join(format_value(item) for item in value) if value else "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        if value != 0 and math.isfinite(value) and (abs(value) < 0.01 or abs(value) >= 1e5):
            mantissa, exponent = f"{value:.2e}".split("e")
            return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return f"{value:g}"
    return str(value) if value not in ("", None) else "none"


def short_forms(keys: Sequence[str]) -> dict[str, str]:
    """Each key's form in a label: SHORT_FORMS, else its last part in lower case ("hflip prob {}"),
    or its last two parts where two keys would read alike (arcface margin, cosface margin)."""
    def fallback(key: str, parts: int) -> str:
        return " ".join(key.split(".")[-parts:]).lower().replace("_", " ") + " {}"
    forms = {key: SHORT_FORMS.get(key) or fallback(key, 1) for key in keys}
    alike = [key for key in keys if key not in SHORT_FORMS and list(forms.values()).count(forms[key]) > 1]
    return {**forms, **{key: fallback(key, 2) for key in alike}}


def short_label(config: dict[str, Any], keys: Sequence[str]) -> str:
    """`resnet18, lr 3e-4, bs 128`: the run's value of each key, in its short form, in key order
    (the model first when it differs)."""
    forms = short_forms(keys)
    ordered = sorted(keys, key=lambda key: (key != "MODEL.NAME", key != "DATA.DATASET"))
    return ", ".join(forms[key].format(format_value(config.get(key))) for key in ordered)
