"""The YAML loader for config files: a SafeLoader that refuses a document whose aliases expand
past ``MAX_CONFIG_VALUES`` values, or into themselves."""

from __future__ import annotations

import yaml

#: The most values a config may hold once its aliases are expanded (real ones hold hundreds).
MAX_CONFIG_VALUES = 50_000


class AliasesTooLarge(yaml.YAMLError):
    """A document whose aliases expand too far, or into themselves."""


class BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that checks each composed document before anything is built from it.

    The composer keeps an alias as one more reference to its anchor's node, so a few hundred
    bytes of aliases of aliases ("billion laughs") stay small as nodes, yet become millions of
    values in what validates them and in the errors that repeat them."""

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            _expanded_size(node, sizes={}, open_nodes=set())
        return node


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many values ``node`` holds with its aliases expanded (each shared node counted once
    per use, computed once); AliasesTooLarge past MAX_CONFIG_VALUES or for an alias inside
    the value it names."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise AliasesTooLarge(
            f"the value at {_position(node)} holds an alias of itself; a config cannot be "
            "recursive: write that value out"
        )
    open_nodes.add(key)
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    size = 1 + sum(_expanded_size(child, sizes, open_nodes) for child in children)
    open_nodes.discard(key)
    if size > MAX_CONFIG_VALUES:
        raise AliasesTooLarge(
            f"the YAML expands to more than {MAX_CONFIG_VALUES:,} values through its aliases "
            f"(the value at {_position(node)} alone does); write the config without aliases "
            "of aliases"
        )
    sizes[key] = size
    return size


def _position(node: yaml.Node) -> str:
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"
