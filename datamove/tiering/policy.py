"""The tier policy: which tier each object belongs in, from how it is read.

A policy is an ordered list of rules on recency (days since the last
access), frequency (accesses in a window) and age, with per-partition
overrides and the mapping from tiers to each provider's storage classes.
The tier a policy names is the coldest the object may go; the planner then
keeps it hotter when the fees of the colder class would exceed its savings.

Without a policy file, :func:`default_policy` applies: hot if read in the
last 30 days, cold if read in the last 180, archive otherwise.
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from datamove.errors import UsageError
from datamove.tiering._yaml import LineDict, Where, load_yaml

TIERS = ("hot", "cold", "archive")

DEFAULT_CLASSES: dict[str, dict[str, str]] = {
    "s3": {"hot": "STANDARD", "cold": "STANDARD_IA", "archive": "GLACIER_IR"},
    "gcs": {"hot": "STANDARD", "cold": "NEARLINE", "archive": "ARCHIVE"},
    "azure": {"hot": "Hot", "cold": "Cool", "archive": "Archive"},
}

_CONDITIONS = (
    "accessed_within_days",
    "not_accessed_for_days",
    "min_accesses",
    "max_accesses",
    "min_age_days",
    "max_age_days",
)
_RULE_KEYS = {"name", "tier", "window_days", *_CONDITIONS}
_OVERRIDE_KEYS = {"match", "partition", "tier", "rules", "default_tier", "force"}
_POLICY_KEYS = {
    "version",
    "horizon_months",
    "window_days",
    "rate_window_days",
    "access_gap_minutes",
    "creation_counts_as_access",
    "allow_restore",
    "default_tier",
    "rules",
    "overrides",
    "classes",
    "regions",
    "price_file",
}


@dataclass(frozen=True)
class ObjectFacts:
    """What rules see of one object.

    ``days_since_access`` is infinite for an object never read (and whose
    creation does not count as an access); ``access_ages`` holds the age in
    days of each access session.
    """

    days_since_access: float
    age_days: float
    access_ages: tuple[float, ...] = ()

    def accesses_within(self, days: float) -> int:
        """Access sessions in the last ``days`` days."""
        return sum(1 for age in self.access_ages if age <= days)


@dataclass(frozen=True)
class TierRule:
    """One rule: its conditions all hold, so the object may go to ``tier``.

    ``window_days`` is the window that ``min_accesses``/``max_accesses``
    count in; None means the policy's ``window_days``.
    """

    tier: str
    name: str = ""
    accessed_within_days: float | None = None
    not_accessed_for_days: float | None = None
    min_accesses: int | None = None
    max_accesses: int | None = None
    window_days: float | None = None
    min_age_days: float | None = None
    max_age_days: float | None = None
    line: int = 0

    def matches(self, facts: ObjectFacts, default_window: float) -> bool:
        """Whether every condition of the rule holds for ``facts``."""
        window = self.window_days if self.window_days is not None else default_window
        count = facts.accesses_within(window)
        checks = (
            self.accessed_within_days is None
            or facts.days_since_access <= self.accessed_within_days,
            self.not_accessed_for_days is None
            or facts.days_since_access > self.not_accessed_for_days,
            self.min_accesses is None or count >= self.min_accesses,
            self.max_accesses is None or count <= self.max_accesses,
            self.min_age_days is None or facts.age_days >= self.min_age_days,
            self.max_age_days is None or facts.age_days <= self.max_age_days,
        )
        return all(checks)

    def describe(self, default_window: float) -> str:
        """The rule in words, e.g. ``rule 'recent' (accessed within 30 days)``."""
        window = self.window_days if self.window_days is not None else default_window
        parts = []
        if self.accessed_within_days is not None:
            parts.append(f"accessed within {self.accessed_within_days:g} days")
        if self.not_accessed_for_days is not None:
            parts.append(f"not accessed for {self.not_accessed_for_days:g} days")
        if self.min_accesses is not None:
            parts.append(f"at least {self.min_accesses} accesses in {window:g} days")
        if self.max_accesses is not None:
            parts.append(f"at most {self.max_accesses} accesses in {window:g} days")
        if self.min_age_days is not None:
            parts.append(f"at least {self.min_age_days:g} days old")
        if self.max_age_days is not None:
            parts.append(f"at most {self.max_age_days:g} days old")
        label = f"rule {self.name!r}" if self.name else f"rule at line {self.line}"
        return f"{label} ({', '.join(parts) or 'always'})"


@dataclass(frozen=True)
class PartitionOverride:
    """Rules for the objects under some partitions.

    It applies when ``match`` (a glob on the object path; ``*`` also
    crosses ``/``) and every ``partition`` glob (on hive ``key=value``
    values) match. It may pin a ``tier``, replace the ``rules``, or set the
    ``default_tier``; ``force`` skips the planner's fee check.
    """

    match: str | None = None
    partition: tuple[tuple[str, str], ...] = ()
    tier: str | None = None
    rules: tuple[TierRule, ...] | None = None
    default_tier: str | None = None
    force: bool = False
    line: int = 0

    def applies(self, path: str, partition: Mapping[str, str]) -> bool:
        """Whether this override covers the object at ``path``."""
        if self.match is not None and not fnmatch.fnmatchcase(path, self.match):
            return False
        return all(
            key in partition and fnmatch.fnmatchcase(partition[key], pattern)
            for key, pattern in self.partition
        )

    def describe(self) -> str:
        """The override in words, for reasons."""
        parts = []
        if self.match is not None:
            parts.append(f"path {self.match!r}")
        parts.extend(f"{k}={v}" for k, v in self.partition)
        return f"override at line {self.line} ({', '.join(parts)})"


@dataclass(frozen=True)
class PolicyDecision:
    """The tier a policy allows for one object, and why."""

    tier: str
    reason: str
    force: bool = False


@dataclass(frozen=True)
class TierPolicy:
    """A validated tier policy. Build one with :func:`load_policy`,
    :func:`parse_policy` or :func:`default_policy`."""

    rules: tuple[TierRule, ...]
    default_tier: str = "hot"
    horizon_months: int = 12
    window_days: float = 30.0
    rate_window_days: float = 90.0
    access_gap_minutes: float = 60.0
    creation_counts_as_access: bool = True
    allow_restore: bool = False
    overrides: tuple[PartitionOverride, ...] = ()
    classes: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: {p: dict(c) for p, c in DEFAULT_CLASSES.items()}
    )
    regions: Mapping[str, str] = field(default_factory=dict)
    price_file: str | None = None
    source: str = "<default policy>"

    def decide(
        self, path: str, partition: Mapping[str, str], facts: ObjectFacts
    ) -> PolicyDecision:
        """The coldest tier the policy allows for one object, with the reason."""
        rules, default, prefix, force = self.rules, self.default_tier, "", False
        for override in self.overrides:
            if not override.applies(path, partition):
                continue
            prefix, force = f"{override.describe()}: ", override.force
            if override.tier is not None:
                return PolicyDecision(override.tier, f"{prefix}pinned", force)
            rules = override.rules if override.rules is not None else rules
            default = override.default_tier or default
            break
        for rule in rules:
            if rule.matches(facts, self.window_days):
                return PolicyDecision(
                    rule.tier, prefix + rule.describe(self.window_days), force
                )
        return PolicyDecision(default, f"{prefix}no rule matched: default tier", force)

    def class_for(self, provider: str, tier: str) -> str:
        """The storage class of ``tier`` at ``provider``.

        Raises:
            UsageError: the policy maps no class for that provider and tier.
        """
        try:
            return self.classes[provider][tier]
        except KeyError:
            raise UsageError(
                f"{self.source}: no storage class for tier {tier!r} at {provider}; "
                f"add classes: {{{provider}: {{{tier}: CLASS}}}} to the policy"
            ) from None

    def tier_of_class(self, provider: str, storage_class: str | None) -> str | None:
        """The tier whose class is ``storage_class`` (case-insensitive), if any."""
        if storage_class is None:
            return None
        for tier, name in self.classes.get(provider, {}).items():
            if name.casefold() == storage_class.casefold():
                return tier
        return None

    def to_dict(self) -> dict[str, Any]:
        """The policy's settings as plain JSON-serialisable values."""
        return {
            "source": self.source,
            "horizon_months": self.horizon_months,
            "window_days": self.window_days,
            "rate_window_days": self.rate_window_days,
            "access_gap_minutes": self.access_gap_minutes,
            "creation_counts_as_access": self.creation_counts_as_access,
            "allow_restore": self.allow_restore,
            "default_tier": self.default_tier,
            "rules": [
                r.describe(self.window_days) + f" -> {r.tier}" for r in self.rules
            ],
            "overrides": [o.describe() for o in self.overrides],
            "classes": {p: dict(c) for p, c in self.classes.items()},
            "regions": dict(self.regions),
            "price_file": self.price_file,
        }


def default_policy() -> TierPolicy:
    """Hot if read in the last 30 days, cold if in the last 180, else archive;
    a 12-month horizon; the default class mapping."""
    return TierPolicy(
        rules=(
            TierRule("hot", "recent", accessed_within_days=30),
            TierRule("cold", "warm", accessed_within_days=180),
        ),
        default_tier="archive",
    )


def load_policy(path: str | os.PathLike[str]) -> TierPolicy:
    """Read and validate a YAML policy file.

    A relative ``price_file`` in it is taken relative to the policy file.

    Raises:
        UsageError: the file cannot be read or is invalid; the message names
            the file and line and says what to change.
    """
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(
            f"{name}: cannot read the tier policy ({error.strerror}); check the path"
        ) from None
    policy = parse_policy(text, name)
    if policy.price_file and not os.path.isabs(policy.price_file):
        price_file = os.path.join(
            os.path.dirname(os.path.abspath(name)), policy.price_file
        )
        policy = replace(policy, price_file=price_file)
    return policy


def parse_policy(text: str, source: str = "<policy>") -> TierPolicy:
    """Validate a policy given as YAML text; ``source`` names it in errors.

    Raises:
        UsageError: as :func:`load_policy`.
    """
    document = load_yaml(text, source)
    if document is None:
        return replace(default_policy(), source=source)
    where = Where(source)
    node = where.mapping(document, "a tier policy")
    where.check_keys(node, _POLICY_KEYS)
    version = where.integer(node, "version", 1)
    if version != 1:
        raise where.error(node, "version", "only policy version 1 is known")

    defaults = default_policy()
    if "rules" in node:
        rules = _rules(where, node, "rules")
        default_tier = _tier(where, node, "default_tier", "hot")
    else:
        rules = defaults.rules
        default_tier = _tier(where, node, "default_tier", defaults.default_tier)
    horizon = where.integer(node, "horizon_months", 12, minimum=1)
    if horizon > 120:
        raise where.error(node, "horizon_months", "horizon_months must be at most 120")
    price_file = node.get("price_file")
    if price_file is not None and (not isinstance(price_file, str) or not price_file):
        raise where.error(node, "price_file", "price_file must be a path")
    return TierPolicy(
        rules=rules,
        default_tier=default_tier,
        horizon_months=horizon,
        window_days=_days(where, node, "window_days", 30.0),
        rate_window_days=_days(where, node, "rate_window_days", 90.0),
        access_gap_minutes=where.number(node, "access_gap_minutes", 60.0),
        creation_counts_as_access=where.flag(node, "creation_counts_as_access", True),
        allow_restore=where.flag(node, "allow_restore", False),
        overrides=_overrides(where, node),
        classes=_classes(where, node),
        regions=_regions(where, node),
        price_file=price_file,
        source=source,
    )


def _tier(where: Where, node: LineDict, key: str, default: str | None) -> str:
    value = where.text(node, key, default)
    if value not in TIERS:
        raise where.error(
            node, key, f"{key} {value!r} is not a tier; use one of {TIERS}"
        )
    return value


def _days(where: Where, node: LineDict, key: str, default: float) -> float:
    value = where.number(node, key, default)
    if value <= 0:
        raise where.error(node, key, f"{key!r} must be more than 0 days")
    return value


def _rules(where: Where, parent: LineDict, key: str) -> tuple[TierRule, ...]:
    items = parent[key]
    if not isinstance(items, list):
        raise where.error(parent, key, f"{key!r} must be a list of rules")
    rules = []
    for item in items:
        node = where.mapping(item, "a rule", parent)
        where.check_keys(node, _RULE_KEYS)
        values: dict[str, Any] = {}
        for condition in _CONDITIONS:
            if condition in node:
                if condition.endswith("accesses"):
                    values[condition] = where.integer(node, condition)
                else:
                    values[condition] = where.number(node, condition)
        if "window_days" in node:
            if not {"min_accesses", "max_accesses"} & set(node):
                raise where.error(
                    node,
                    "window_days",
                    "window_days only counts with min_accesses or max_accesses",
                )
            values["window_days"] = _days(where, node, "window_days", 30.0)
        name = node.get("name", "")
        if not isinstance(name, str):
            raise where.error(node, "name", "a rule's name must be a string")
        rules.append(
            TierRule(
                tier=_tier(where, node, "tier", None),
                name=name,
                line=node.line,
                **values,
            )
        )
    return tuple(rules)


def _overrides(where: Where, node: LineDict) -> tuple[PartitionOverride, ...]:
    items = node.get("overrides", [])
    if not isinstance(items, list):
        raise where.error(node, "overrides", "'overrides' must be a list")
    found = []
    for item in items:
        entry = where.mapping(item, "an override", node)
        where.check_keys(entry, _OVERRIDE_KEYS)
        match = entry.get("match")
        if match is not None and (not isinstance(match, str) or not match):
            raise where.error(entry, "match", "'match' must be a path glob")
        partition = entry.get("partition", {})
        if not isinstance(partition, dict):
            raise where.error(entry, "partition", "'partition' must map keys to globs")
        pairs = tuple((str(k), str(v)) for k, v in partition.items())
        if match is None and not pairs:
            raise where.error(entry, None, "an override needs 'match' or 'partition'")
        tier = _tier(where, entry, "tier", None) if "tier" in entry else None
        rules = _rules(where, entry, "rules") if "rules" in entry else None
        default = (
            _tier(where, entry, "default_tier", None)
            if "default_tier" in entry
            else None
        )
        if tier is None and rules is None and default is None:
            raise where.error(
                entry, None, "an override needs 'tier', 'rules' or 'default_tier'"
            )
        if tier is not None and (rules is not None or default is not None):
            raise where.error(
                entry, "tier", "a pinned 'tier' leaves no room for rules; keep one"
            )
        found.append(
            PartitionOverride(
                match=match,
                partition=pairs,
                tier=tier,
                rules=rules,
                default_tier=default,
                force=where.flag(entry, "force", False),
                line=entry.line,
            )
        )
    return tuple(found)


def _classes(where: Where, node: LineDict) -> dict[str, dict[str, str]]:
    classes = {p: dict(c) for p, c in DEFAULT_CLASSES.items()}
    if "classes" not in node:
        return classes
    given = where.mapping(node["classes"], "'classes'", node)
    for provider, mapping in given.items():
        if provider not in DEFAULT_CLASSES:
            known = ", ".join(DEFAULT_CLASSES)
            raise where.error(
                given, provider, f"provider {provider!r} is unknown; use one of {known}"
            )
        entry = where.mapping(mapping, f"classes for {provider}", given)
        where.check_keys(entry, set(TIERS))
        for tier in entry:
            classes[provider][tier] = where.text(entry, tier)
    return classes


def _regions(where: Where, node: LineDict) -> dict[str, str]:
    if "regions" not in node:
        return {}
    given = where.mapping(node["regions"], "'regions'", node)
    where.check_keys(given, set(DEFAULT_CLASSES))
    return {provider: where.text(given, provider) for provider in given}


def facts_for(
    days_since_access: float | None, age_days: float, access_ages: tuple[float, ...]
) -> ObjectFacts:
    """:class:`ObjectFacts` with ``None`` for never read turned into infinity."""
    since = math.inf if days_since_access is None else days_since_access
    return ObjectFacts(since, age_days, access_ages)
