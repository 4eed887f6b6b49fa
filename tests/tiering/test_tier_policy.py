"""Tier policies: the default, the YAML format, overrides, and errors by line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from datamove.errors import UsageError
from datamove.tiering import default_policy, load_policy, parse_policy
from datamove.tiering.policy import ObjectFacts

PATH = "lake/transactions/date=2026-03-01/part-00000.parquet"
PARTITION = {"date": "2026-03-01"}


def facts(
    since: float, age: float = 400.0, ages: tuple[float, ...] = ()
) -> ObjectFacts:
    return ObjectFacts(since, age, ages)


@pytest.mark.parametrize(
    ("since", "tier"),
    [(0.5, "hot"), (30, "hot"), (31, "cold"), (180, "cold"), (181, "archive")],
)
def test_default_policy_uses_recency(since: float, tier: str) -> None:
    decision = default_policy().decide(PATH, PARTITION, facts(since))
    assert decision.tier == tier
    assert not decision.force


def test_default_policy_for_a_never_read_object_is_archive() -> None:
    decision = default_policy().decide(PATH, PARTITION, facts(math.inf))
    assert decision.tier == "archive"
    assert decision.reason == "no rule matched: default tier"


def test_default_classes() -> None:
    policy = default_policy()
    assert [policy.class_for("s3", t) for t in ("hot", "cold", "archive")] == [
        "STANDARD",
        "STANDARD_IA",
        "GLACIER_IR",
    ]
    assert [policy.class_for("gcs", t) for t in ("hot", "cold", "archive")] == [
        "STANDARD",
        "NEARLINE",
        "ARCHIVE",
    ]
    assert [policy.class_for("azure", t) for t in ("hot", "cold", "archive")] == [
        "Hot",
        "Cool",
        "Archive",
    ]
    assert policy.tier_of_class("azure", "cool") == "cold"
    assert policy.tier_of_class("s3", "INTELLIGENT_TIERING") is None


FULL = """\
version: 1
horizon_months: 6
window_days: 14
default_tier: archive
rules:
  - name: busy
    tier: hot
    min_accesses: 4
    window_days: 7
  - name: fresh
    tier: hot
    max_age_days: 10
  - name: recent
    tier: cold
    accessed_within_days: 60
overrides:
  - match: "*/date=2026-12-*"
    tier: hot
  - partition: {date: "2025-*"}
    rules:
      - {tier: cold, accessed_within_days: 365}
    default_tier: cold
  - partition: {region: eu}
    tier: archive
    force: true
classes:
  s3: {archive: DEEP_ARCHIVE}
  azure: {cold: Cold}
regions:
  s3: eu-west-1
"""


def test_a_full_policy() -> None:
    policy = parse_policy(FULL, "tiers.yaml")

    assert policy.horizon_months == 6
    assert policy.class_for("s3", "archive") == "DEEP_ARCHIVE"
    assert policy.class_for("s3", "cold") == "STANDARD_IA"
    assert policy.class_for("azure", "cold") == "Cold"
    assert policy.regions == {"s3": "eu-west-1"}

    # Frequency: 4 accesses in the last 7 days, not 3.
    busy = policy.decide(PATH, PARTITION, facts(200, ages=(1, 2, 3, 6.5, 20)))
    assert (busy.tier, busy.reason) == (
        "hot",
        "rule 'busy' (at least 4 accesses in 7 days)",
    )
    assert policy.decide(PATH, PARTITION, facts(200, ages=(1, 2, 3, 8))).tier == (
        "archive"
    )
    # Age.
    assert policy.decide(PATH, PARTITION, facts(200, age=5)).tier == "hot"
    # Recency, then the default.
    assert policy.decide(PATH, PARTITION, facts(45)).tier == "cold"
    assert policy.decide(PATH, PARTITION, facts(61)).tier == "archive"


def test_overrides_match_paths_and_hive_partitions() -> None:
    policy = parse_policy(FULL, "tiers.yaml")

    december = "lake/transactions/date=2026-12-24/part-00000.parquet"
    pinned = policy.decide(december, {"date": "2026-12-24"}, facts(math.inf))
    assert pinned.tier == "hot"
    assert pinned.reason.startswith("override at line 17 (path '*/date=2026-12-*')")

    old = "lake/transactions/date=2025-06-01/part-00000.parquet"
    replaced = policy.decide(old, {"date": "2025-06-01"}, facts(300))
    assert replaced.tier == "cold"
    assert "override at line 19 (date=2025-*): rule at line 21" in replaced.reason
    fallback = policy.decide(old, {"date": "2025-06-01"}, facts(400))
    assert fallback.tier == "cold"
    assert fallback.reason.endswith("default tier")

    forced = policy.decide("x/region=eu/p.parquet", {"region": "eu"}, facts(1))
    assert (forced.tier, forced.force) == ("archive", True)


def test_own_rules_without_default_tier_leave_the_rest_hot() -> None:
    policy = parse_policy("rules:\n  - {tier: archive, not_accessed_for_days: 365}\n")
    assert policy.decide(PATH, PARTITION, facts(400)).tier == "archive"
    assert policy.decide(PATH, PARTITION, facts(300)).tier == "hot"


def test_an_empty_file_is_the_default_policy() -> None:
    policy = parse_policy("", "empty.yaml")
    assert policy.rules == default_policy().rules
    assert policy.default_tier == "archive"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  - tier: lukewarm\n", "tiers.yaml:2: tier 'lukewarm' is not a tier"),
        (
            "rules:\n  - tier: hot\n    recently: 3\n",
            "tiers.yaml:3: unknown key 'recently'; the keys allowed here are",
        ),
        ("horizon: 12\n", "tiers.yaml:1: unknown key 'horizon'"),
        ("horizon_months: 0\n", "tiers.yaml:1: 'horizon_months' must be at least 1"),
        (
            "rules:\n  - tier: hot\n    accessed_within_days: soon\n",
            "tiers.yaml:3: 'accessed_within_days' must be a number",
        ),
        (
            "rules:\n  - {tier: hot, window_days: 7}\n",
            "tiers.yaml:2: window_days only counts with min_accesses",
        ),
        (
            "rules:\n  - tier: hot\n    tier: cold\n",
            "tiers.yaml:3: key 'tier' is given",
        ),
        ("rules: [tier: hot\n", "tiers.yaml:2:"),
        (
            "overrides:\n  - {partition: {date: x}}\n",
            "tiers.yaml:2: an override needs 'tier', 'rules' or 'default_tier'",
        ),
        (
            "overrides:\n  - tier: hot\n",
            "tiers.yaml:2: an override needs 'match' or 'partition'",
        ),
        (
            "classes:\n  s3:\n    warm: STANDARD\n",
            "tiers.yaml:3: unknown key 'warm'",
        ),
        ("classes:\n  r2: {hot: X}\n", "tiers.yaml:2: provider 'r2' is unknown"),
        ("- hot\n- cold\n", "tiers.yaml: a tier policy must be a mapping"),
    ],
)
def test_errors_name_the_file_and_line(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_policy(text, "tiers.yaml")
    assert message in str(caught.value)


def test_load_policy_resolves_the_price_file_beside_it(tmp_path: Path) -> None:
    policy_file = tmp_path / "conf" / "tiers.yaml"
    policy_file.parent.mkdir()
    policy_file.write_text("price_file: my-prices.yaml\nhorizon_months: 24\n")

    policy = load_policy(policy_file)

    assert policy.price_file == str(tmp_path / "conf" / "my-prices.yaml")
    assert policy.source == str(policy_file)
    assert policy.horizon_months == 24
    with pytest.raises(UsageError, match=r"missing\.yaml: cannot read the tier policy"):
        load_policy(tmp_path / "missing.yaml")
