"""YAML with safe_load's meaning, and a bound that aliases cannot get past."""
import time

import pytest
import yaml

from utils import bounded_yaml
from utils.bounded_yaml import MAX_YAML_VALUES, AliasExpansionError, load_yaml


def billion_laughs(levels: int, width: int = 9) -> str:
    """`levels` lists, each of `width` aliases of the one before: width ** levels values."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text", [
    "SEED: 0\nTRAIN:\n  LR: 1.0e-3\n  BETAS: [0.9, 0.999]\nTAG: '1e3'\n",
    "base: &base {LR: 0.1, EPOCHS: 3}\nrun:\n  <<: *base\n  EPOCHS: 5\n",  # a merge key
    "names: &names [cat, dog]\nagain: *names\n",
    "",
    "- 1\n- two\n- null\n",
    billion_laughs(3),
])
def test_documents_of_sane_size_load_as_safe_load_loads_them(text):
    assert load_yaml(text) == yaml.safe_load(text)


def test_a_billion_laughs_is_refused_before_it_is_built():
    text = billion_laughs(9)
    assert len(text) < 500
    started = time.perf_counter()
    with pytest.raises(AliasExpansionError, match=f"more than {MAX_YAML_VALUES} values"):
        load_yaml(text)
    assert time.perf_counter() - started < 1.0


def test_the_bound_counts_every_value_the_document_stands_for(monkeypatch):
    monkeypatch.setattr(bounded_yaml, "MAX_YAML_VALUES", 10)
    assert load_yaml("[1, 2, 3, 4, 5, 6, 7, 8, 9]") == list(range(1, 10))  # 9 items and their list
    with pytest.raises(AliasExpansionError):
        load_yaml("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]")
    assert load_yaml("a: &a [1, 2]\nb: *a\n") == {"a": [1, 2], "b": [1, 2]}  # the mapping, 2 keys, the list twice: 9
    with pytest.raises(AliasExpansionError):
        load_yaml("a: &a [1, 2]\nb: *a\nc: *a\n")


def test_an_alias_inside_the_collection_it_names_is_refused():
    with pytest.raises(AliasExpansionError, match="refers to the collection it is in"):
        load_yaml("a: &a [1, *a]\n")


def test_unsafe_tags_stay_refused():
    with pytest.raises(yaml.YAMLError):
        load_yaml("x: !!python/object/apply:os.system ['echo pwned']\n")
