"""studies.search_space: --space KEY=DIST items as Optuna distributions, every key and value
checked against the config before a trial starts, bad ones refused in one line."""
from __future__ import annotations

import os

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import get_config
from studies.search_space import Dimension, parse_dimension, parse_space, value_text
from utils.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "configs", "quickstart.yaml")


def check(extra: list[str]) -> None:
    get_config(QUICKSTART, extra)


def test_each_kind_becomes_its_optuna_distribution():
    lr, wd, batch, depth = parse_space(["train.lr=loguniform:1e-4:1e-1", "TRAIN.WEIGHT_DECAY=uniform:0:0.1",
                                        "DATA.BATCH_SIZE=choice:64,128,256", "TRAIN.EPOCHS=int:2:8"], check)
    assert lr.key == "TRAIN.LR" and lr.distribution() == optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    assert wd.distribution() == optuna.distributions.FloatDistribution(0.0, 0.1)
    assert batch.distribution() == optuna.distributions.CategoricalDistribution(["64", "128", "256"])
    assert depth.distribution() == optuna.distributions.IntDistribution(2, 8)


def test_choices_keep_commas_inside_brackets():
    dimension = parse_dimension("TRAIN.OPTIMIZER.BETAS=choice:(0.9,0.999),(0.8,0.99)")
    assert dimension.choices == ("(0.9,0.999)", "(0.8,0.99)")


@pytest.mark.parametrize("items, message", [
    (["TRAIN.LRR=loguniform:1e-4:1e-1"], "unknown config key TRAIN.LRR; did you mean TRAIN.LR?"),
    (["TRAIN.LR=loguniform:1e-4"], "takes two bounds"),
    (["TRAIN.LR=1e-4:1e-1"], "unknown distribution '1e-4'"),
    (["TRAIN.LR"], "must look like KEY=KIND:"),
    (["TRAIN.LR=gaussian:0:1"], "unknown distribution 'gaussian'"),
    (["TRAIN.LR=loguniform:1e-1:1e-4"], "the low bound 1e-1 is not below the high bound 1e-4"),
    (["TRAIN.LR=loguniform:0:1e-1"], "loguniform needs bounds above 0"),
    (["TRAIN.LR=uniform:a:1"], "bound 'a' is not a number"),
    (["TRAIN.EPOCHS=int:2:8.5"], "bound '8.5' is not a whole number"),
    (["MODEL.NAME=choice:lenet,resnet19"], "MODEL.NAME resnet19: unknown MODEL.NAME 'resnet19'; did you mean resnet18?"),
    (["TRAIN.EPOCHS=uniform:1:5"], "TRAIN.EPOCHS expects an integer"),
    (["TRAIN.LR=uniform:0.1:1", "train.lr=uniform:0.1:2"], "names TRAIN.LR twice"),
    ([], "give at least one --space"),
])
def test_a_bad_space_is_one_line_naming_what_is_wrong(items, message):
    with pytest.raises(UserError) as raised:
        parse_space(items, check)
    assert message in str(raised.value) and "\n" not in str(raised.value)


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=1e-8, max_value=1e3), st.floats(min_value=1.0001, max_value=1e4))
def test_float_bounds_read_back_exactly_and_drawn_values_keep_every_digit(low, ratio):
    high = low * ratio
    dimension = parse_dimension(f"TRAIN.LR=loguniform:{low!r}:{high!r}")
    assert (dimension.low, dimension.high) == (low, high)
    assert float(value_text(low, "loguniform")) == low


def test_int_values_are_written_as_whole_numbers():
    assert value_text(4, "int") == "4" and value_text("128", "choice") == "128"
    assert Dimension("TRAIN.EPOCHS", "int", 2, 8).texts() == ["2", "8"]
