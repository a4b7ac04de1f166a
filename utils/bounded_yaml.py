"""YAML as `yaml.safe_load` reads it, with a bound on how large aliases may make a document.

An alias (`*name`) repeats an anchored value without writing it out again, so a few hundred
bytes of nested aliases (a "billion laughs" document) stand for billions of values. PyYAML
builds them as shared references, cheaply, but anything that later walks, prints or copies the
value expands it and exhausts the memory. The loader here counts every value as it composes the
document, an alias counting as the whole value it repeats, and refuses the document once the
count passes MAX_YAML_VALUES, before anything is built from it.
"""
from __future__ import annotations

from typing import IO, Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

# Far above any config (a few hundred values) or list of class names, far below what exhausts memory.
MAX_YAML_VALUES = 100_000


class AliasExpansionError(ComposerError):
    """A document whose aliases make it larger than MAX_YAML_VALUES, or make a value contain itself."""


class _BoundedSafeLoader(yaml.SafeLoader):
    """SafeLoader that sizes every composed node: 1 + the sizes of its children, with an alias
    sized as the node it repeats."""

    def __init__(self, stream: str | bytes | IO) -> None:
        super().__init__(stream)
        self._expanded_sizes: dict[int, int] = {}  # id(node) -> values it stands for, once complete

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        is_alias = self.check_event(yaml.AliasEvent)
        mark = self.peek_event().start_mark
        node = super().compose_node(parent, index)
        if is_alias:
            if id(node) not in self._expanded_sizes:  # an alias inside the collection it names
                raise AliasExpansionError(None, None, "an alias refers to the collection it is in", mark)
            return node
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        size = 1 + sum(self._expanded_sizes[id(child)] for child in children)
        if size > MAX_YAML_VALUES:
            raise AliasExpansionError(None, None, f"its aliases expand it to more than {MAX_YAML_VALUES} values",
                                      mark)
        self._expanded_sizes[id(node)] = size
        return node


def load_yaml(stream: str | bytes | IO) -> Any:
    """`yaml.safe_load(stream)`, or AliasExpansionError (a yaml.YAMLError) for a document that
    aliases expand past MAX_YAML_VALUES values or make contain itself.

    Values PyYAML fails to build, with a bare Python exception, are yaml.YAMLErrors here too:
    an integer of more digits than Python converts, a date that does not exist, nesting deeper
    than the recursion limit."""
    try:
        return yaml.load(stream, Loader=_BoundedSafeLoader)
    except (ValueError, OverflowError, RecursionError) as e:
        raise ConstructorError(None, None, f"a value cannot be read ({str(e)[:80]})") from None
