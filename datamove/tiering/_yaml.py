"""YAML that remembers where each mapping and key came from, for error messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from datamove.errors import UsageError


class LineDict(dict[str, Any]):
    """A YAML mapping that knows its source file and the 1-based line of itself
    and of each of its keys (keys merged in from another file keep theirs)."""

    source: str = ""
    line: int = 0
    key_lines: dict[str, int]
    key_sources: dict[str, str]

    def line_of(self, key: str) -> int:
        """The line of ``key`` if it is present, else the mapping's own line."""
        return self.key_lines.get(key, self.line)

    def source_of(self, key: str | None) -> str:
        """The file ``key`` came from, else the mapping's own file."""
        return self.key_sources.get(key, self.source) if key else self.source


def merge(base: LineDict, over: LineDict) -> LineDict:
    """``base`` with ``over`` laid on top, mapping by mapping, key by key."""
    merged = LineDict(base)
    merged.source, merged.line = base.source, base.line
    merged.key_lines = dict(base.key_lines)
    merged.key_sources = dict(base.key_sources)
    for key, value in over.items():
        old = merged.get(key)
        if isinstance(old, LineDict) and isinstance(value, LineDict):
            merged[key] = merge(old, value)
        else:
            merged[key] = value
        merged.key_lines[key] = over.line_of(key)
        merged.key_sources[key] = over.source
    return merged


# libyaml's parser when PyYAML was built with it; the pure-Python one if not.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeLoader):  # type: ignore[misc]
    """A safe loader whose mappings are :class:`LineDict` objects."""

    source_name = ""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    mapping = LineDict()
    mapping.source = loader.source_name
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    mapping.key_sources = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str | int | float | bool):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            )
        name = str(key)
        if name in mapping:
            first = mapping.key_lines[name]
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {name!r} is given twice (first on line {first})",
                key_node.start_mark,
            )
        mapping[name] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[name] = line
    return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def load_yaml(text: str, source: str) -> Any:
    """Parse ``text``; mappings come back as :class:`LineDict`.

    Raises:
        UsageError: the text is not valid YAML; the message names
            ``source`` and the line.
    """
    loader = _LineLoader(text)
    loader.source_name = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = error.problem or error.context or "invalid YAML"
        raise UsageError(
            f"{source}:{line}: {problem}; fix the YAML syntax at that line"
        ) from None
    except yaml.YAMLError as error:
        raise UsageError(f"{source}: not valid YAML ({error})") from None
    finally:
        loader.dispose()


def line_of(value: Any, key: str | None = None) -> int:
    """The line a parsed mapping (or one of its keys) came from; 0 if unknown."""
    if isinstance(value, LineDict):
        return value.line_of(key) if key is not None else value.line
    return 0


class Where:
    """Builds ``source:line: ...`` errors for one YAML document."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, node: Any, key: str | None, message: str) -> UsageError:
        """A :class:`UsageError` naming the source, the line and the problem."""
        line = line_of(node, key)
        source = self.source
        if isinstance(node, LineDict) and node.source_of(key):
            source = node.source_of(key)
        where = f"{source}:{line}" if line else source
        return UsageError(f"{where}: {message}")

    def mapping(self, node: Any, what: str, parent: Any = None) -> LineDict:
        """``node`` as a mapping, or an error naming ``what`` was expected."""
        if isinstance(node, LineDict):
            return node
        raise self.error(parent, None, f"{what} must be a mapping of names to values")

    def check_keys(self, node: LineDict, allowed: Mapping[str, Any] | set[str]) -> None:
        """Reject keys outside ``allowed``, naming the ones that are known."""
        for key in node:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.error(
                    node, key, f"unknown key {key!r}; the keys allowed here are {known}"
                )

    def number(
        self,
        node: LineDict,
        key: str,
        default: float | None = None,
        *,
        minimum: float = 0.0,
    ) -> float:
        """A non-negative number at ``key`` (or ``default`` when absent)."""
        if key not in node:
            if default is None:
                raise self.error(node, None, f"{key!r} is required here")
            return default
        value = node[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(node, key, f"{key!r} must be a number, got {value!r}")
        if value < minimum:
            raise self.error(node, key, f"{key!r} must be at least {minimum:g}")
        return float(value)

    def integer(
        self, node: LineDict, key: str, default: int | None = None, *, minimum: int = 0
    ) -> int:
        """A whole number at ``key`` (or ``default`` when absent)."""
        if key not in node:
            if default is None:
                raise self.error(node, None, f"{key!r} is required here")
            return default
        value = node[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(
                node, key, f"{key!r} must be a whole number, got {value!r}"
            )
        if value < minimum:
            raise self.error(node, key, f"{key!r} must be at least {minimum}")
        return value

    def text(self, node: LineDict, key: str, default: str | None = None) -> str:
        """A string at ``key`` (or ``default`` when absent)."""
        if key not in node:
            if default is None:
                raise self.error(node, None, f"{key!r} is required here")
            return default
        value = node[key]
        if not isinstance(value, str) or not value:
            raise self.error(node, key, f"{key!r} must be a non-empty string")
        return value

    def flag(self, node: LineDict, key: str, default: bool) -> bool:
        """A true/false value at ``key`` (or ``default`` when absent)."""
        if key not in node:
            return default
        value = node[key]
        if not isinstance(value, bool):
            raise self.error(node, key, f"{key!r} must be true or false")
        return value
