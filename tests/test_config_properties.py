"""Property tests of the config parser, for every kind of key: whatever text a user types after
--opts, and whatever YAML a config file holds, get_config either returns a config whose value has
the key's type and means what was typed, or raises UserError. Never another exception."""
from __future__ import annotations

import ast
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import config
from config import get_config
from utils.errors import UserError

DEFAULTS = {key: value for key, value in config.flatten(config._C).items() if key != "BASE"}
# Keys whose value must be one of a set of names (matched case-insensitively); "" switches the
# last two off.
CHOICES: dict[str, list[str]] = {key: list(names) for key, names in config._choices().items()}
OPTIONAL_CHOICES = ("MODEL.ACT", "AUG.AUTO_AUGMENT")
KEYS_OF_TYPE = {kind: sorted(key for key, value in DEFAULTS.items() if type(value) is kind and key not in CHOICES)
                for kind in (bool, int, float, str, tuple, list)}
ITEM_KINDS = {(int,): "int", (float,): "float", (str,): "str", (str, int, float): "name"}

# Text that is typed as a value for any key: a mix of literals of every type, near-literals,
# unbalanced brackets and arbitrary unicode.
ANY_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["True", "False", "true", "None", "1e-3", "1e999", "-0", "0x1F", "1_000", "nan", "inf", "()",
                     "(1,)", "[1, 'a']", "((1,),)", "{'a': 1}", "'quoted'", "b'bytes'", "1j", "(", "'\\d'",
                     "[" * 200 + "]" * 200, "9" * 5000, "(0.9, 0.999)", "AlexNet", "cuda:0", "ce+arcface"]),
)


def items_of(key: str) -> st.SearchStrategy:
    """Items of the right type for the list key `key`."""
    kind = ITEM_KINDS[config._ITEM_TYPES[key]]
    numbers = st.floats(allow_nan=False) | st.integers(-10 ** 6, 10 ** 6)
    return {"int": st.integers(), "float": numbers, "str": st.text(max_size=10),
            "name": st.text(max_size=10) | st.integers()}[kind]


def typed_value(key: str) -> st.SearchStrategy:
    """Values of the type of `key`'s default, as a user would mean them."""
    default = DEFAULTS[key]
    if key in CHOICES:
        return st.sampled_from(CHOICES[key]).flatmap(lambda name: st.sampled_from([name, name.upper(), name.title()]))
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers()
    if isinstance(default, float):
        return st.floats(allow_nan=False) | st.integers(-10 ** 6, 10 ** 6)
    if isinstance(default, str):
        return st.text(max_size=20)
    return st.lists(items_of(key), max_size=4).map(type(default))


def assert_means(key: str, value: Any, meant: Any) -> None:
    """`value`, the config's, has the type of `key`'s default and is what `meant` says."""
    default = DEFAULTS[key]
    if key in CHOICES or (key in OPTIONAL_CHOICES and meant):
        assert isinstance(value, str) and value.lower() == str(meant).lower()
    elif isinstance(default, (tuple, list)):
        assert type(value) is type(default) and len(value) == len(meant)
        allowed = config._ITEM_TYPES[key]
        for item, meant_item in zip(value, meant):
            assert type(item) in allowed and item == meant_item
            if allowed == (float,):
                assert type(item) is float
    else:
        assert type(value) is type(default)
        assert value == meant or (isinstance(meant, float) and math.isnan(meant) and math.isnan(value))


def config_value(cfg, key: str) -> Any:
    node, _, leaf = config.resolve_key_path(cfg, key)
    return node[leaf]


def parsed_or_user_error(*args, **kwargs):
    """get_config's config, or None where it raised UserError (any other exception fails the test)."""
    try:
        return get_config(*args, **kwargs)
    except UserError as error:
        assert "\n" not in str(error)
        return None


def literal(text: str) -> Any:
    """The Python literal `text` spells."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escapes such as '\d'
        return ast.literal_eval(text)


def text_meant(text: str) -> str:
    """What a text key holds for `text`: the text as typed, or, for a quoted string literal
    ('abc', as main.py passes --tag), the string it spells."""
    try:
        spelled = literal(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text
    return spelled if isinstance(spelled, str) else text


def as_opts_text(value: Any) -> str:
    """How a user types `value` after --opts (text as is, anything else as its literal)."""
    return value if isinstance(value, str) else repr(value)


def as_yaml(key: str, value: Any) -> str:
    """A config file setting `key` to `value`."""
    tree: Any = list(value) if isinstance(value, tuple) else value
    for part in reversed(key.split(".")):
        tree = {part: tree}
    return yaml.safe_dump(tree, allow_unicode=True)


@pytest.fixture(scope="module")
def yaml_dir():
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def write_yaml(folder: Path, text: str | bytes) -> str:
    path = folder / "property.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    return str(path)


ALL_KEYS = sorted(DEFAULTS)
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(data=st.data(), key=st.sampled_from(ALL_KEYS))
def test_an_opts_value_of_the_key_s_type_means_what_was_typed(data, key):
    value = data.draw(typed_value(key))
    text = as_opts_text(value)
    cfg = parsed_or_user_error(None, [key, text])
    if cfg is not None:  # a UserError is a value out of range, or text a literal would change
        meant = text_meant(text) if isinstance(DEFAULTS[key], str) and key not in CHOICES else value
        assert_means(key, config_value(cfg, key), meant)


@PROPERTY_SETTINGS
@given(key=st.sampled_from(ALL_KEYS), text=ANY_TEXT)
def test_any_opts_text_gives_a_value_of_the_key_s_type_or_a_user_error(key, text):
    cfg = parsed_or_user_error(None, [key, text])
    if cfg is None:
        return
    value, default = config_value(cfg, key), DEFAULTS[key]
    if key in CHOICES or (key in OPTIONAL_CHOICES and value):
        assert value.lower() == text.lower() or value.lower() == str(literal(text)).lower()
    elif isinstance(default, str):
        assert value == text or value == literal(text)  # a quoted string literal is its text
    elif isinstance(default, (tuple, list)):
        assert type(value) is type(default)
        assert all(type(item) in config._ITEM_TYPES[key] for item in value)
        assert list(value) == list(literal(text))
    else:
        assert type(value) is type(default)
        spelled = literal(text)
        assert value == spelled or (math.isnan(value) and math.isnan(spelled))


@PROPERTY_SETTINGS
@given(data=st.data(), key=st.sampled_from(ALL_KEYS))
def test_a_yaml_value_of_the_key_s_type_means_what_was_written(yaml_dir, data, key):
    text = as_yaml(key, data.draw(typed_value(key)))
    cfg = parsed_or_user_error(write_yaml(yaml_dir, text))
    if cfg is None:
        return
    written = config.flatten(yaml.safe_load(text))[key]  # what the YAML says (PyYAML's dump can change text)
    meant = text_meant(written) if isinstance(DEFAULTS[key], str) and key not in CHOICES else written
    assert_means(key, config_value(cfg, key), meant)


@PROPERTY_SETTINGS
@given(key=st.sampled_from(ALL_KEYS), text=ANY_TEXT)
def test_any_yaml_value_gives_a_value_of_the_key_s_type_or_a_user_error(yaml_dir, key, text):
    *sections, leaf = key.split(".")
    lines = [f"{'  ' * depth}{section}:" for depth, section in enumerate(sections)]
    document = "\n".join(lines + [f"{'  ' * len(sections)}{leaf}: {text}"]) + "\n"
    cfg = parsed_or_user_error(write_yaml(yaml_dir, document))
    if cfg is not None:
        value, default = config_value(cfg, key), DEFAULTS[key]
        if isinstance(default, (tuple, list)):
            assert type(value) is type(default) and all(type(item) in config._ITEM_TYPES[key] for item in value)
        else:
            assert type(value) is type(default)


@settings(max_examples=200, deadline=None)
@given(document=st.text(max_size=200) | st.binary(max_size=100)
       | st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                      lambda children: st.lists(children, max_size=3)
                      | st.dictionaries(st.sampled_from(["TRAIN", "LR", "BASE", "DATA", "MILESTONES", "x"]),
                                        children, max_size=3), max_leaves=10).map(yaml.safe_dump))
def test_any_config_file_gives_a_config_or_a_user_error(yaml_dir, document):
    parsed_or_user_error(write_yaml(yaml_dir, document))


@settings(max_examples=200, deadline=None)
@given(key=st.text(max_size=30) | st.sampled_from(ALL_KEYS).map(str.lower), text=ANY_TEXT)
def test_any_opts_key_gives_a_config_or_a_user_error(key, text):
    parsed_or_user_error(None, [key, text])
