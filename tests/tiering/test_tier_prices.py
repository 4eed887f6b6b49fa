"""The packaged price table, user overrides, and validation errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from datamove.errors import UsageError
from datamove.tiering import (
    DEFAULT_CLASSES,
    load_prices,
    parse_prices,
    provider_for_protocol,
)


def test_every_entry_is_dated_sourced_and_sane() -> None:
    table = load_prices()

    assert table.currency == "USD"
    assert table.classes
    for price in table.classes.values():
        assert isinstance(price.as_of, date)
        assert price.source.startswith("https://")
        assert price.storage_gb_month > 0
        assert price.early_deletion in ("prorated", "none")
        assert (price.min_storage_days > 0) == (price.early_deletion == "prorated")
    for auto in table.automatic.values():
        assert isinstance(auto.as_of, date) and auto.source
        assert auto.steps[0].after_days == 0


def test_the_default_classes_are_priced_in_every_default_region() -> None:
    table = load_prices()
    for provider, classes in DEFAULT_CLASSES.items():
        region = table.region_for(provider)
        for name in classes.values():
            assert table.find(provider, region, name) is not None, (provider, name)
    assert table.find("s3", "us-east-1", "DEEP_ARCHIVE") is not None
    assert table.find("gcs", "us-central1", "COLDLINE") is not None
    assert table.find("azure", "eastus", "Cold") is not None


def test_the_fee_rules_that_the_planner_relies_on() -> None:
    table = load_prices()
    standard_ia = table.price("s3", "us-east-1", "standard_ia")  # any case
    assert standard_ia.storage_class == "STANDARD_IA"
    assert standard_ia.min_billable_bytes == 128 * 1024
    assert standard_ia.min_storage_days == 30
    assert table.price("s3", "us-east-1", "GLACIER_IR").min_storage_days == 90
    assert table.price("s3", "us-east-1", "DEEP_ARCHIVE").restore_required
    assert table.price("gcs", "us-central1", "ARCHIVE").min_storage_days == 365
    assert table.price("azure", "eastus", "Archive").restore_required

    tiering = table.automatic_for("s3", "us-east-1")
    assert tiering is not None
    assert tiering.storage_class == "INTELLIGENT_TIERING"
    assert [s.after_days for s in tiering.steps] == [0, 30, 90]
    assert tiering.monitoring_per_1000_objects > 0
    assert tiering.min_monitored_bytes == 128 * 1024
    assert not tiering.fees_apply
    autoclass = table.automatic_for("gcs", "us-central1")
    assert autoclass is not None and autoclass.storage_class is None
    azure = table.automatic_for("azure", "eastus")
    assert azure is not None and azure.fees_apply
    assert [s.storage_class for s in azure.steps] == ["Hot", "Cool", "Cold"]


def test_a_user_file_overrides_field_by_field(tmp_path: Path) -> None:
    mine = tmp_path / "my-prices.yaml"
    mine.write_text(
        "providers:\n"
        "  s3:\n"
        "    regions:\n"
        "      us-east-1:\n"
        "        classes:\n"
        "          STANDARD:\n"
        "            storage_gb_month: 0.021\n"
        "            as_of: 2026-11-30\n"
        "            source: https://example.org/our-contract\n"
        "      ap-south-2:\n"
        "        as_of: 2026-11-30\n"
        "        source: https://example.org/our-contract\n"
        "        classes:\n"
        "          STANDARD: {storage_gb_month: 0.025, min_storage_days: 0,\n"
        "                     early_deletion: none, retrieval_gb: 0,\n"
        "                     put_per_1000: 0.005, get_per_1000: 0.0004,\n"
        "                     min_billable_bytes: 0}\n"
    )

    table = load_prices(mine)

    standard = table.price("s3", "us-east-1", "STANDARD")
    assert standard.storage_gb_month == 0.021
    assert standard.put_per_1000 == 0.005  # kept from the packaged table
    assert standard.as_of == date(2026, 11, 30)
    assert standard.source == "https://example.org/our-contract"
    assert table.price("s3", "us-east-1", "STANDARD_IA").storage_gb_month == 0.0125
    assert "ap-south-2" in table.regions("s3")
    assert table.files[-1] == str(mine)


def test_an_incomplete_new_class_names_the_user_file_and_line(tmp_path: Path) -> None:
    mine = tmp_path / "my-prices.yaml"
    mine.write_text(
        "providers:\n"
        "  gcs:\n"
        "    regions:\n"
        "      us-central1:\n"
        "        classes:\n"
        "          RAPID:\n"
        "            storage_gb_month: 0.08\n"
    )
    with pytest.raises(UsageError) as caught:
        load_prices(mine)
    assert str(caught.value).startswith(
        f"{mine}:7: class 'RAPID' in us-central1 lacks early_deletion, get_per_1000"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("currency: EUR\nproviders: {s4: {}}\n", "prices.yaml:2: provider 's4'"),
        (
            "providers:\n  s3:\n    default_region: x\n    regions:\n      x:\n"
            "        source: s\n        classes: {}\n",
            "prices.yaml:6: 'as_of' (the date prices were read) is required",
        ),
        (
            "providers:\n  s3:\n    default_region: x\n    regions:\n      x:\n"
            "        as_of: 2025-01-01\n        source: s\n        classes:\n"
            "          A: {storage_gb_month: 1, min_storage_days: 30,\n"
            "              early_deletion: sometimes, retrieval_gb: 0,\n"
            "              put_per_1000: 0, get_per_1000: 0, min_billable_bytes: 0}\n",
            "prices.yaml:10: early_deletion must be one of",
        ),
        (
            "providers:\n  s3:\n    default_region: y\n    regions:\n      x:\n"
            "        as_of: 2025-01-01\n        source: s\n        classes: {}\n",
            "prices.yaml:3: default_region 'y' is not priced",
        ),
    ],
)
def test_invalid_tables(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_prices(text, "prices.yaml")
    assert message in str(caught.value)


def test_lookups_that_fail_say_what_is_known() -> None:
    table = load_prices()
    with pytest.raises(UsageError, match="no region 'mars-1' for s3; known: eu-west-1"):
        table.region_for("s3", "mars-1")
    with pytest.raises(UsageError, match="storage class 'GLACIER_XL' has no price"):
        table.price("s3", "us-east-1", "GLACIER_XL")
    with pytest.raises(UsageError, match="cannot read the price file"):
        load_prices("/nonexistent/prices.yaml")


def test_protocols_map_to_providers() -> None:
    assert provider_for_protocol("s3a") == "s3"
    assert provider_for_protocol("gs") == "gcs"
    assert provider_for_protocol("abfss") == "azure"
    assert provider_for_protocol("file") is None
    assert provider_for_protocol("memory") is None
