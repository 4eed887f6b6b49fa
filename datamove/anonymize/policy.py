"""Anonymization policies: which action each column gets, read from YAML.

A policy file is a YAML mapping with these keys (only ``columns`` is
required)::

    version: 1              # optional; 1 is the only version
    default: fail           # fail (the default) or keep
    quasi_identifiers: [zip, birth_year]
    k: 5                    # smallest acceptable group size, default 5
    columns:
      email: {action: hash, length: 16, prefix: "em_", normalize: [trim, lower]}
      card_number: {action: mask, keep_last: 4, char: "*"}
      phone: {action: mask, keep_first: 3}
      notes: {action: redact, value: null}     # or a constant
      birth_date: {action: generalize, to: year}
      amount: {action: generalize, bin: 100}
      zip: {action: generalize, prefix: 3}
      ip: {action: generalize, ipv4: 24}
      balance: {action: noise, scale: 10.0, seed: keyed}
      ssn: drop               # shorthand for {action: drop}
      id: keep

``default`` decides what happens to a column that ``datamove scan`` flags as
personal data and the policy does not mention: ``fail`` stops the run
(fail closed), ``keep`` passes it through. Columns nobody flags and the
policy does not mention always pass through.

Actions and their options (defaults in brackets):

- ``drop``: remove the column.
- ``keep``: pass the column through unchanged.
- ``hash``: keyed HMAC-SHA256 pseudonym in hex. ``length`` hex characters
  kept, 8 to 64 [32]; ``prefix`` prepended [""]; ``domain`` separates
  namespaces, so equal values in columns with different domains get
  different tokens [""]; ``normalize``, a list of ``trim`` and ``lower``
  applied before hashing [[]].
- ``mask``: replace characters with ``char`` ["*"] except the first
  ``keep_first`` [0] and the last ``keep_last`` [0]. A value no longer than
  ``keep_first + keep_last`` is masked entirely.
- ``redact``: replace every non-null value with ``value`` [null], which must
  fit the column's type.
- ``generalize``: exactly one of ``to`` (day, month or year, for dates,
  timestamps, and strings parsed with ``format`` ["%Y-%m-%d"]), ``bin`` (a
  positive number; numbers become the lower bound of their bin), ``prefix``
  (a positive integer; strings keep that many characters) or ``ipv4`` (8, 16
  or 24; IPv4 addresses keep that many leading bits, other values become
  null).
- ``noise``: add uniform noise in [-scale, +scale] to a numeric column.
  ``scale`` is required; ``seed`` is ``run`` [default] for fresh noise per row
  and run, or ``keyed`` for noise derived from the key and the value (the same
  value gets the same noise in every run, so repeated releases cannot be
  averaged).

Every error names the policy file and line and says what to change.
:meth:`Policy.check_columns` reports policy columns missing from a schema.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

import fsspec
import pyarrow as pa
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from datamove.errors import UsageError

Default = Literal["fail", "keep"]
ACTIONS = ("drop", "keep", "hash", "mask", "redact", "generalize", "noise")
TOP_LEVEL_KEYS = ("version", "default", "quasi_identifiers", "k", "columns")
TIME_UNITS = ("day", "month", "year")
IPV4_PREFIXES = (8, 16, 24)
NORMALIZERS = ("trim", "lower")


@dataclass(frozen=True)
class ColumnRule:
    """What to do with one column; ``line`` is where the policy names it."""

    action: ClassVar[str] = ""
    column: str
    line: int

    def options(self) -> dict[str, Any]:
        """The rule's options as written in a policy (no column or line)."""
        return {
            item.name: getattr(self, item.name)
            for item in fields(self)
            if item.name not in ("column", "line")
        }


@dataclass(frozen=True)
class DropRule(ColumnRule):
    action: ClassVar[str] = "drop"


@dataclass(frozen=True)
class KeepRule(ColumnRule):
    action: ClassVar[str] = "keep"


@dataclass(frozen=True)
class HashRule(ColumnRule):
    action: ClassVar[str] = "hash"
    length: int = 32
    prefix: str = ""
    domain: str = ""
    normalize: tuple[str, ...] = ()


@dataclass(frozen=True)
class MaskRule(ColumnRule):
    action: ClassVar[str] = "mask"
    keep_first: int = 0
    keep_last: int = 0
    char: str = "*"


@dataclass(frozen=True)
class RedactRule(ColumnRule):
    action: ClassVar[str] = "redact"
    value: str | int | float | bool | None = None


@dataclass(frozen=True)
class GeneralizeRule(ColumnRule):
    action: ClassVar[str] = "generalize"
    to: str | None = None
    bin: int | float | None = None
    prefix: int | None = None
    ipv4: int | None = None
    format: str = "%Y-%m-%d"


@dataclass(frozen=True)
class NoiseRule(ColumnRule):
    action: ClassVar[str] = "noise"
    scale: float = 0.0
    seed: str = "run"


RULE_TYPES: dict[str, type[ColumnRule]] = {
    rule.action: rule
    for rule in (
        DropRule,
        KeepRule,
        HashRule,
        MaskRule,
        RedactRule,
        GeneralizeRule,
        NoiseRule,
    )
}


@dataclass(frozen=True)
class Policy:
    """A parsed, validated anonymization policy.

    ``rules`` maps column names to their rule; ``source`` is the file the
    policy came from (for messages); ``digest`` is the SHA-256 of its text, to
    record in receipts.
    """

    source: str
    rules: Mapping[str, ColumnRule]
    default: Default = "fail"
    quasi_identifiers: tuple[str, ...] = ()
    k: int = 5
    digest: str = ""
    quasi_identifier_lines: Mapping[str, int] = field(default_factory=dict)

    def rule(self, column: str) -> ColumnRule | None:
        """The rule for ``column``, or None when the policy does not name it."""
        return self.rules.get(column)

    def columns_with(self, action: str) -> tuple[str, ...]:
        """The columns whose rule is ``action``, in policy order."""
        return tuple(name for name, rule in self.rules.items() if rule.action == action)

    @property
    def needs_key(self) -> bool:
        """Whether any rule (hash, noise) needs the anonymization key."""
        return any(
            isinstance(rule, HashRule | NoiseRule) for rule in self.rules.values()
        )

    def check_columns(self, schema: pa.Schema) -> None:
        """Check that every column the policy names exists in ``schema``.

        Raises:
            UsageError: listing each missing column with its policy line and
                the closest column name of the data.
        """
        names = list(schema.names)
        problems = [
            self.problem(
                rule.line, f"column {name!r} is not in the data{_hint(name, names)}"
            )
            for name, rule in self.rules.items()
            if name not in names
        ]
        problems += [
            self.problem(
                self.quasi_identifier_lines.get(name, 0),
                f"quasi-identifier {name!r} is not in the data{_hint(name, names)}",
            )
            for name in self.quasi_identifiers
            if name not in names
        ]
        if problems:
            raise UsageError(
                "\n".join(problems)
                + "\nfix the column names in the policy or remove those entries"
            )

    def problem(self, line: int, text: str) -> str:
        """``text`` prefixed with ``source:line`` (line 0 means unknown)."""
        return f"{self.source}:{line}: {text}" if line else f"{self.source}: {text}"


def load_policy(
    url: str | Path, *, storage_options: Mapping[str, Any] | None = None
) -> Policy:
    """Read and validate the policy file at ``url`` (a path or fsspec URL).

    Raises:
        UsageError: the file cannot be read or the policy is invalid; the
            message names the file and line and says what to change.
    """
    source = str(url)
    try:
        with fsspec.open(source, "rb", **dict(storage_options or {})) as handle:
            raw = handle.read()
    except (OSError, ValueError) as error:
        raise UsageError(
            f"{source}: cannot read the policy file ({type(error).__name__}); "
            "check the path"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{source}: the policy file is not UTF-8 text") from None
    return parse_policy(text, source=source)


def parse_policy(text: str, *, source: str = "<policy>") -> Policy:
    """Parse policy YAML ``text``; ``source`` names it in messages.

    Raises:
        UsageError: the YAML is malformed or the policy is invalid.
    """
    return _PolicyParser(source).parse(text)


def _flow(value: Any) -> str:
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10_000)
        .strip()
        .removesuffix("\n...")
    )


def _hint(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _PolicyParser:
    """Walks the composed YAML node tree so every error knows its line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.constructor = yaml.SafeLoader("")

    def fail(self, node: Node | None, text: str) -> UsageError:
        where = f"{self.source}:{_line(node)}" if node is not None else self.source
        return UsageError(f"{where}: {text}")

    def parse(self, text: str) -> Policy:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as error:
            line = error.problem_mark.line + 1 if error.problem_mark else 0
            raise UsageError(
                f"{self.source}:{line}: not valid YAML ({error.problem}); "
                "fix the syntax at that line"
            ) from None
        except yaml.YAMLError as error:
            raise UsageError(
                f"{self.source}: not valid YAML ({type(error).__name__})"
            ) from None
        if root is None:
            raise UsageError(
                f"{self.source}: the policy is empty; add a 'columns:' mapping"
            )
        entries = self.mapping(root, "the policy")
        columns_node: Node | None = None
        default: Default = "fail"
        k = 5
        quasi: tuple[str, ...] = ()
        quasi_lines: dict[str, int] = {}
        for key, value in entries.items():
            name = key.value
            if name == "version":
                if self.scalar(value) != 1:
                    raise self.fail(value, "'version' must be 1")
            elif name == "default":
                default_value = self.scalar(value)
                if default_value not in ("fail", "keep"):
                    raise self.fail(
                        value, "'default' must be 'fail' (fail closed) or 'keep'"
                    )
                default = "fail" if default_value == "fail" else "keep"
            elif name == "k":
                k_value = self.scalar(value)
                if not _is_int(k_value) or k_value < 2:
                    raise self.fail(value, "'k' must be an integer of at least 2")
                k = k_value
            elif name == "quasi_identifiers":
                quasi, quasi_lines = self.names(value, "quasi_identifiers")
            elif name == "columns":
                columns_node = value
            else:
                raise self.fail(
                    key,
                    f"unknown key {name!r}{_hint(name, TOP_LEVEL_KEYS)}; "
                    f"allowed keys: {', '.join(TOP_LEVEL_KEYS)}",
                )
        if columns_node is None:
            raise self.fail(root, "the policy has no 'columns:' mapping; add one")
        rules = {
            key.value: self.rule(key, value)
            for key, value in self.mapping(columns_node, "'columns'").items()
        }
        return Policy(
            source=self.source,
            rules=rules,
            default=default,
            quasi_identifiers=quasi,
            k=k,
            digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            quasi_identifier_lines=quasi_lines,
        )

    def mapping(self, node: Node, what: str) -> dict[ScalarNode, Node]:
        """The entries of a mapping node; keys must be unique plain scalars."""
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping of 'name: value' entries")
        entries: dict[ScalarNode, Node] = {}
        seen: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode) or not key.value:
                raise self.fail(key, f"{what}: keys must be plain names")
            if key.value in seen:
                raise self.fail(
                    key,
                    f"{key.value!r} appears twice (first at line {seen[key.value]}); "
                    "keep one entry",
                )
            seen[key.value] = _line(key)
            entries[key] = value
        return entries

    def scalar(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            raise self.fail(node, "expected a single value, not a list or mapping")
        return self.constructor.construct_object(node, deep=True)

    def names(self, node: Node, what: str) -> tuple[tuple[str, ...], dict[str, int]]:
        if not isinstance(node, SequenceNode):
            raise self.fail(
                node, f"'{what}' must be a list of column names, e.g. [zip]"
            )
        names: list[str] = []
        lines: dict[str, int] = {}
        for item in node.value:
            if not isinstance(item, ScalarNode) or not item.value:
                raise self.fail(item, f"'{what}' entries must be column names")
            if item.value in lines:
                raise self.fail(item, f"{item.value!r} is listed twice in '{what}'")
            names.append(item.value)
            lines[item.value] = _line(item)
        return tuple(names), lines

    def rule(self, key: ScalarNode, node: Node) -> ColumnRule:
        column = key.value
        if isinstance(node, ScalarNode):
            return self.build(column, key, self.action(node), {})
        if not isinstance(node, MappingNode):
            raise self.fail(
                node,
                f"column {column!r}: give an action such as 'drop' or a mapping "
                "such as {action: hash, length: 16}",
            )
        options = self.mapping(node, f"column {column!r}")
        action_node = next((v for k, v in options.items() if k.value == "action"), None)
        if action_node is None:
            raise self.fail(
                node, f"column {column!r}: no 'action'; add one of {', '.join(ACTIONS)}"
            )
        rest = {k: v for k, v in options.items() if k.value != "action"}
        return self.build(column, key, self.action(action_node), rest)

    def action(self, node: Node) -> str:
        action = self.scalar(node)
        if action not in ACTIONS:
            raise self.fail(
                node,
                f"unknown action {action!r}{_hint(str(action), ACTIONS)}; "
                f"use one of {', '.join(ACTIONS)}",
            )
        return str(action)

    def build(
        self, column: str, key: ScalarNode, action: str, options: dict[ScalarNode, Node]
    ) -> ColumnRule:
        rule_type = RULE_TYPES[action]
        allowed = [
            f.name for f in fields(rule_type) if f.name not in ("column", "line")
        ]
        values: dict[str, Any] = {}
        for option, value_node in options.items():
            name = option.value
            if name not in allowed:
                choices = ", ".join(allowed) if allowed else "none"
                raise self.fail(
                    option,
                    f"column {column!r}: unknown option {name!r} for action "
                    f"{action}{_hint(name, allowed)}; allowed options: {choices}",
                )
            if name == "normalize":
                values[name] = self.normalize(column, value_node)
            else:
                values[name] = self.scalar(value_node)
        if action == "noise" and _is_number(values.get("scale")):
            values["scale"] = float(values["scale"])
        problem = _check_options(action, values)
        if problem:
            bad = next((k for k in options if k.value == problem[0]), key)
            raise self.fail(bad, f"column {column!r}: {problem[1]}")
        return rule_type(column=column, line=_line(key), **values)

    def normalize(self, column: str, node: Node) -> tuple[str, ...]:
        items = node.value if isinstance(node, SequenceNode) else [node]
        steps: list[str] = []
        for item in items:
            step = self.scalar(item)
            if step not in NORMALIZERS:
                raise self.fail(
                    item,
                    f"column {column!r}: unknown normalize step {step!r}; "
                    f"use a list of {', '.join(NORMALIZERS)}",
                )
            steps.append(str(step))
        return tuple(steps)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_options(action: str, values: dict[str, Any]) -> tuple[str, str] | None:
    """The first invalid option as (option name, message), or None."""
    checks = _OPTION_CHECKS.get(action, {})
    for name, value in values.items():
        check = checks.get(name)
        if check is not None and not check[0](value):
            return name, f"'{name}' {check[1]} (got {_flow(value)})"
    if action == "generalize":
        chosen = [
            n for n in ("to", "bin", "prefix", "ipv4") if values.get(n) is not None
        ]
        if len(chosen) != 1:
            return (
                chosen[1] if len(chosen) > 1 else "",
                "generalize needs exactly one of 'to', 'bin', 'prefix' or 'ipv4'",
            )
        if "format" in values and chosen[0] != "to":
            return "format", "'format' only applies with 'to'"
    if action == "noise" and "scale" not in values:
        return "", "noise needs a 'scale', e.g. {action: noise, scale: 10}"
    return None


_OPTION_CHECKS: dict[str, dict[str, tuple[Any, str]]] = {
    "hash": {
        "length": (
            lambda v: _is_int(v) and 8 <= v <= 64,
            "must be an integer, 8 to 64",
        ),
        "prefix": (lambda v: isinstance(v, str), "must be a string"),
        "domain": (lambda v: isinstance(v, str), "must be a string"),
    },
    "mask": {
        "keep_first": (lambda v: _is_int(v) and v >= 0, "must be an integer >= 0"),
        "keep_last": (lambda v: _is_int(v) and v >= 0, "must be an integer >= 0"),
        "char": (
            lambda v: isinstance(v, str) and len(v) == 1,
            "must be a single character, e.g. '*'",
        ),
    },
    "redact": {
        "value": (
            lambda v: v is None or isinstance(v, str | int | float | bool),
            "must be null or a single value, not a list or mapping",
        ),
    },
    "generalize": {
        "to": (lambda v: v in TIME_UNITS, "must be one of day, month, year"),
        "bin": (lambda v: _is_number(v) and v > 0, "must be a positive number"),
        "prefix": (lambda v: _is_int(v) and v > 0, "must be a positive integer"),
        "ipv4": (lambda v: v in IPV4_PREFIXES and _is_int(v), "must be 8, 16 or 24"),
        "format": (
            lambda v: isinstance(v, str) and "%" in v,
            "must be a strptime format such as '%Y-%m-%d'",
        ),
    },
    "noise": {
        "scale": (lambda v: _is_number(v) and v > 0, "must be a positive number"),
        "seed": (lambda v: v in ("run", "keyed"), "must be 'run' or 'keyed'"),
    },
}
