"""Loading a checkpoint checks every field it holds, so that a crafted or damaged file is one
line naming the file and the field, never a traceback later in a resume or an --eval."""
import pytest
import torch

from utils.checkpoint_io import load_checkpoint
from utils.errors import UserError


def written_by_main(**fields):
    """A checkpoint with the fields and types main.py writes (engine.checkpoint.training_state)."""
    state = {"model": {"w": torch.zeros(2)}, "optimizer": {"state": {}, "param_groups": []},
             "scheduler": {"last_epoch": 3}, "scaler": {}, "epoch": 0, "config": "SEED: 0\nTRAIN:\n  EPOCHS: 3\n",
             "rng": {"python": (3, (), None), "numpy": ("MT19937",), "torch": torch.zeros(1), "cuda": []},
             "wandb_id": None, "progress": None, "best_metric": "val_acc1", "best_score": 50.0,
             "best_weights": "model", "epochs_since_best": 0, "eval_weights": "ema",
             "ema": {"n_averaged": torch.tensor(1), "module.w": torch.zeros(2)}, "swa": None,
             "class_names": ["cat", "dog"], "loss": {}}
    state.update(fields)
    return state


def saved(tmp_path, state):
    path = tmp_path / "crafted.pth"
    torch.save(state, path)
    return str(path)


def test_a_checkpoint_as_main_py_writes_it_loads(tmp_path):
    loaded = load_checkpoint(saved(tmp_path, written_by_main()))
    assert loaded["epoch"] == 0 and loaded["class_names"] == ["cat", "dog"]


def test_a_checkpoint_saved_inside_its_first_epoch_loads(tmp_path):
    state = written_by_main(epoch=-1, progress={"batches_done": 3})
    assert load_checkpoint(saved(tmp_path, state))["epoch"] == -1


def test_a_checkpoint_from_before_the_later_fields_loads(tmp_path):
    state = written_by_main()
    for field in ("progress", "best_metric", "best_weights", "epochs_since_best", "eval_weights", "ema", "swa",
                  "class_names", "loss"):
        del state[field]
    state["best_acc1"] = state.pop("best_score")
    assert load_checkpoint(saved(tmp_path, state))["best_score"] == 50.0


@pytest.mark.parametrize("field, value", [
    ("config", "MODEL: [lenet\n"),                     # not YAML
    ("config", "- lenet\n- digits\n"),                  # YAML, but not KEY: value pairs
    ("config", ""),                                     # nothing
    ("config", b"SEED: 0\n"),                           # bytes, not text
    ("config", "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in zip("abcdefg", "bcdefgh"))),  # an alias bomb
    ("epoch", "3"),
    ("epoch", 2.0),
    ("epoch", True),
    ("epoch", -2),
    ("model", [torch.zeros(1)]),
    ("model", {"w": "not a tensor"}),
    ("optimizer", None),
    ("rng", {"python": (3, (), None)}),
    ("best_score", "97%"),
    ("wandb_id", 5),
    ("eval_weights", "everything"),
    ("eval_weights", "swa"),                            # names weights the file does not hold
    ("best_weights", 1),
    ("class_names", "cat,dog"),
    ("class_names", [0, 1]),
    ("swa", {"scheduler": None}),
    ("progress", 3),
])
def test_a_crafted_field_is_one_line_naming_the_file_and_the_field(tmp_path, field, value):
    path = saved(tmp_path, written_by_main(**{field: value}))
    with pytest.raises(UserError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert path in message and repr(field) in message
    assert "\n" not in message
