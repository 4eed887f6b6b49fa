"""The price table: what each storage class costs, per provider and region.

The packaged table (``datamove/data/prices.yaml``) is dated and names its
sources; a user file laid over it changes what differs. See ``docs/tiering.md``
for the fields and how to edit them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from datamove.errors import UsageError
from datamove.tiering._yaml import LineDict, Where, load_yaml, merge

log = logging.getLogger(__name__)

PROVIDERS = ("s3", "gcs", "azure")
GB = float(1 << 30)

_PROTOCOLS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
}
_CLASS_KEYS = {
    "storage_gb_month",
    "min_storage_days",
    "early_deletion",
    "retrieval_gb",
    "put_per_1000",
    "get_per_1000",
    "min_billable_bytes",
    "overhead_bytes",
    "restore_required",
    "as_of",
    "source",
}
_REQUIRED_CLASS_KEYS = _CLASS_KEYS - {
    "overhead_bytes",
    "restore_required",
    "as_of",
    "source",
}
_AUTO_KEYS = {
    "name",
    "storage_class",
    "monitoring_per_1000_objects",
    "min_monitored_bytes",
    "fees_apply",
    "put_per_1000",
    "get_per_1000",
    "steps",
    "as_of",
    "source",
}
EARLY_DELETION_RULES = ("prorated", "none")


def provider_for_protocol(protocol: str) -> str | None:
    """``s3``, ``gcs`` or ``azure`` for an fsspec protocol; None for stores
    without storage classes (local, memory, ...)."""
    return _PROTOCOLS.get(protocol.lower())


@dataclass(frozen=True)
class ClassPrice:
    """What one storage class costs in one region."""

    provider: str
    region: str
    storage_class: str
    storage_gb_month: float
    min_storage_days: int
    early_deletion: str
    retrieval_gb: float
    put_per_1000: float
    get_per_1000: float
    min_billable_bytes: int
    overhead_bytes: int
    restore_required: bool
    as_of: date
    source: str

    def billable_bytes(self, size: int) -> int:
        """The size an object of ``size`` bytes is billed as in this class."""
        return max(size, self.min_billable_bytes) + self.overhead_bytes

    def to_dict(self) -> dict[str, Any]:
        """The entry as plain JSON-serialisable values."""
        return {
            "provider": self.provider,
            "region": self.region,
            "storage_class": self.storage_class,
            "storage_gb_month": self.storage_gb_month,
            "min_storage_days": self.min_storage_days,
            "early_deletion": self.early_deletion,
            "retrieval_gb": self.retrieval_gb,
            "put_per_1000": self.put_per_1000,
            "get_per_1000": self.get_per_1000,
            "min_billable_bytes": self.min_billable_bytes,
            "overhead_bytes": self.overhead_bytes,
            "restore_required": self.restore_required,
            "as_of": self.as_of.isoformat(),
            "source": self.source,
        }


@dataclass(frozen=True)
class AutoStep:
    """One tier of automatic tiering, entered after ``after_days`` idle days.

    ``storage_class`` names the class whose fees apply when the automatic
    tiering charges them (``fees_apply``); it may be None otherwise.
    """

    after_days: int
    label: str
    storage_gb_month: float
    storage_class: str | None = None


@dataclass(frozen=True)
class AutoTiering:
    """A provider's automatic tiering, priced for the cost comparison."""

    provider: str
    region: str
    name: str
    storage_class: str | None
    monitoring_per_1000_objects: float
    min_monitored_bytes: int
    fees_apply: bool
    put_per_1000: float
    get_per_1000: float
    steps: tuple[AutoStep, ...]
    as_of: date
    source: str

    def to_dict(self) -> dict[str, Any]:
        """The entry as plain JSON-serialisable values."""
        return {
            "provider": self.provider,
            "region": self.region,
            "name": self.name,
            "storage_class": self.storage_class,
            "monitoring_per_1000_objects": self.monitoring_per_1000_objects,
            "min_monitored_bytes": self.min_monitored_bytes,
            "fees_apply": self.fees_apply,
            "put_per_1000": self.put_per_1000,
            "get_per_1000": self.get_per_1000,
            "steps": [
                {
                    "after_days": s.after_days,
                    "label": s.label,
                    "storage_gb_month": s.storage_gb_month,
                    "storage_class": s.storage_class,
                }
                for s in self.steps
            ],
            "as_of": self.as_of.isoformat(),
            "source": self.source,
        }


@dataclass(frozen=True)
class PriceTable:
    """Validated prices, looked up by provider, region and class.

    Class names compare without regard to case (Azure lists ``Hot`` where a
    user may write ``hot``); results carry the table's spelling.
    """

    currency: str
    files: tuple[str, ...]
    classes: dict[tuple[str, str, str], ClassPrice] = field(repr=False)
    automatic: dict[tuple[str, str], AutoTiering] = field(repr=False)
    default_regions: dict[str, str]

    def regions(self, provider: str) -> list[str]:
        """The regions the table prices for ``provider``."""
        return sorted({r for p, r, _ in self.classes if p == provider})

    def region_for(self, provider: str, region: str | None = None) -> str:
        """``region`` if the table has it, the provider's default if None.

        Raises:
            UsageError: the provider or region is not in the table.
        """
        if provider not in self.default_regions:
            known = ", ".join(sorted(self.default_regions))
            raise UsageError(
                f"the price table ({', '.join(self.files)}) has no provider "
                f"{provider!r}; known: {known}"
            )
        chosen = region or self.default_regions[provider]
        if chosen not in self.regions(provider):
            raise UsageError(
                f"the price table ({', '.join(self.files)}) has no region "
                f"{chosen!r} for {provider}; known: "
                f"{', '.join(self.regions(provider))}. Add the region to a price "
                "file of your own and pass it"
            )
        return chosen

    def find(self, provider: str, region: str, storage_class: str) -> ClassPrice | None:
        """The price of a class, or None when the table does not have it."""
        return self.classes.get((provider, region, storage_class.casefold()))

    def price(self, provider: str, region: str, storage_class: str) -> ClassPrice:
        """The price of a class.

        Raises:
            UsageError: the class is not in the table for that region.
        """
        found = self.find(provider, region, storage_class)
        if found is None:
            known = ", ".join(
                p.storage_class
                for (pv, rg, _), p in sorted(self.classes.items())
                if pv == provider and rg == region
            )
            raise UsageError(
                f"storage class {storage_class!r} has no price for {provider} "
                f"{region} in {', '.join(self.files)}; known: {known}"
            )
        return found

    def automatic_for(self, provider: str, region: str) -> AutoTiering | None:
        """The provider's automatic tiering in ``region``, if priced."""
        return self.automatic.get((provider, region))

    def to_dict(self) -> dict[str, Any]:
        """The whole table as plain JSON-serialisable values."""
        return {
            "currency": self.currency,
            "files": list(self.files),
            "default_regions": dict(self.default_regions),
            "classes": [p.to_dict() for _, p in sorted(self.classes.items())],
            "automatic": [a.to_dict() for _, a in sorted(self.automatic.items())],
        }


def packaged_price_file() -> str:
    """The path of the price table shipped with datamove."""
    return str(resources.files("datamove") / "data" / "prices.yaml")


def load_prices(
    user_file: str | os.PathLike[str] | None = None,
    *more_files: str | os.PathLike[str] | None,
) -> PriceTable:
    """Load the packaged price table, with ``user_file`` laid over it.

    Args:
        user_file: a YAML file in the same layout holding only what differs;
            see ``docs/tiering.md``.
        more_files: further such files, each laid over the ones before
            (None entries are passed over).

    Returns:
        The validated table.

    Raises:
        UsageError: a file is missing, not YAML, or holds an invalid entry;
            the message names the file and line.
    """
    base_name = packaged_price_file()
    document = _read(base_name)
    files = [base_name]
    for one in (user_file, *more_files):
        if one is None:
            continue
        name = os.fspath(one)
        document = merge(document, _read(name))
        files.append(name)
    return _validate(document, tuple(files))


def parse_prices(text: str, source: str = "<prices>") -> PriceTable:
    """Validate a complete price table given as YAML text (no packaged base).

    Raises:
        UsageError: as :func:`load_prices`.
    """
    document = load_yaml(text, source)
    if not isinstance(document, LineDict):
        raise UsageError(f"{source}: a price table must be a YAML mapping")
    return _validate(document, (source,))


def _read(name: str) -> LineDict:
    try:
        text = Path(name).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(
            f"{name}: cannot read the price file ({error.strerror}); check the path"
        ) from None
    document = load_yaml(text, name)
    if not isinstance(document, LineDict):
        raise UsageError(f"{name}: a price file must be a YAML mapping")
    return document


def _validate(document: LineDict, files: tuple[str, ...]) -> PriceTable:
    where = Where(files[-1])
    where.check_keys(document, {"version", "currency", "providers"})
    version = where.integer(document, "version", 1)
    if version != 1:
        raise where.error(document, "version", "only price table version 1 is known")
    currency = where.text(document, "currency", "USD")
    providers = where.mapping(document.get("providers"), "'providers'", document)
    classes: dict[tuple[str, str, str], ClassPrice] = {}
    automatic: dict[tuple[str, str], AutoTiering] = {}
    defaults: dict[str, str] = {}
    for provider, body in providers.items():
        if provider not in PROVIDERS:
            raise where.error(
                providers,
                provider,
                f"provider {provider!r} is unknown; use one of {', '.join(PROVIDERS)}",
            )
        body = where.mapping(body, f"provider {provider!r}", providers)
        where.check_keys(body, {"default_region", "regions"})
        regions = where.mapping(body.get("regions"), f"{provider} 'regions'", body)
        for region, entry in regions.items():
            entry = where.mapping(entry, f"region {region!r}", regions)
            _region(where, provider, region, entry, classes, automatic)
        default = where.text(body, "default_region")
        if default not in regions:
            raise where.error(
                body, "default_region", f"default_region {default!r} is not priced"
            )
        defaults[provider] = default
    log.debug("price table: %d classes from %s", len(classes), ", ".join(files))
    return PriceTable(currency, files, classes, automatic, defaults)


def _region(
    where: Where,
    provider: str,
    region: str,
    entry: LineDict,
    classes: dict[tuple[str, str, str], ClassPrice],
    automatic: dict[tuple[str, str], AutoTiering],
) -> None:
    where.check_keys(entry, {"as_of", "source", "classes", "automatic"})
    as_of = _date(where, entry, "as_of", None)
    source = where.text(entry, "source")
    body = where.mapping(entry.get("classes"), f"{region} 'classes'", entry)
    for name, raw in body.items():
        raw = where.mapping(raw, f"class {name!r}", body)
        price = _class(where, provider, region, name, raw, as_of, source)
        classes[(provider, region, name.casefold())] = price
    if "automatic" in entry:
        raw = where.mapping(entry["automatic"], "'automatic'", entry)
        automatic[(provider, region)] = _automatic(
            where, provider, region, raw, as_of, source, classes
        )


def _date(where: Where, node: LineDict, key: str, default: date | None) -> date:
    if key not in node:
        if default is None:
            raise where.error(
                node, None, f"{key!r} (the date prices were read) is required"
            )
        return default
    value = node[key]
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise where.error(node, key, f"{key!r} must be a date like 2025-01-01")


def _class(
    where: Where,
    provider: str,
    region: str,
    name: str,
    raw: LineDict,
    as_of: date,
    source: str,
) -> ClassPrice:
    where.check_keys(raw, _CLASS_KEYS)
    missing = sorted(_REQUIRED_CLASS_KEYS - set(raw))
    if missing:
        raise where.error(
            raw,
            None,
            f"class {name!r} in {region} lacks {', '.join(missing)}; a class new to "
            "the table must give every field",
        )
    rule = where.text(raw, "early_deletion")
    if rule not in EARLY_DELETION_RULES:
        raise where.error(
            raw,
            "early_deletion",
            f"early_deletion must be one of {EARLY_DELETION_RULES}",
        )
    minimum_days = where.integer(raw, "min_storage_days")
    if rule == "none" and minimum_days:
        raise where.error(
            raw,
            "early_deletion",
            "early_deletion 'none' contradicts a minimum storage duration; "
            "use 'prorated' or set min_storage_days to 0",
        )
    return ClassPrice(
        provider=provider,
        region=region,
        storage_class=name,
        storage_gb_month=where.number(raw, "storage_gb_month"),
        min_storage_days=minimum_days,
        early_deletion=rule,
        retrieval_gb=where.number(raw, "retrieval_gb"),
        put_per_1000=where.number(raw, "put_per_1000"),
        get_per_1000=where.number(raw, "get_per_1000"),
        min_billable_bytes=where.integer(raw, "min_billable_bytes"),
        overhead_bytes=where.integer(raw, "overhead_bytes", 0),
        restore_required=where.flag(raw, "restore_required", False),
        as_of=_date(where, raw, "as_of", as_of),
        source=where.text(raw, "source", source),
    )


def _automatic(
    where: Where,
    provider: str,
    region: str,
    raw: LineDict,
    as_of: date,
    source: str,
    classes: dict[tuple[str, str, str], ClassPrice],
) -> AutoTiering:
    where.check_keys(raw, _AUTO_KEYS)
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise where.error(raw, "steps", "'steps' must be a non-empty list")
    fees_apply = where.flag(raw, "fees_apply", False)
    steps: list[AutoStep] = []
    for item in steps_raw:
        step = where.mapping(item, "a step", raw)
        where.check_keys(step, {"after_days", "label", "storage_gb_month", "class"})
        class_name = step.get("class")
        price = None
        if class_name is not None:
            price = classes.get((provider, region, str(class_name).casefold()))
            if price is None:
                raise where.error(
                    step, "class", f"class {class_name!r} is not priced in {region}"
                )
        elif fees_apply:
            raise where.error(
                step, None, "with fees_apply: true every step must name its 'class'"
            )
        default_price = price.storage_gb_month if price is not None else None
        storage = where.number(step, "storage_gb_month", default_price)
        after = where.integer(step, "after_days")
        if steps and after <= steps[-1].after_days:
            raise where.error(
                step, "after_days", "after_days must increase step by step"
            )
        if not steps and after != 0:
            raise where.error(step, "after_days", "the first step must start at 0 days")
        label = where.text(step, "label", str(class_name or f"after {after} days"))
        steps.append(
            AutoStep(after, label, storage, price.storage_class if price else None)
        )
    name = raw.get("storage_class")
    return AutoTiering(
        provider=provider,
        region=region,
        name=where.text(raw, "name"),
        storage_class=str(name) if name is not None else None,
        monitoring_per_1000_objects=where.number(
            raw, "monitoring_per_1000_objects", 0.0
        ),
        min_monitored_bytes=where.integer(raw, "min_monitored_bytes", 0),
        fees_apply=fees_apply,
        put_per_1000=where.number(raw, "put_per_1000"),
        get_per_1000=where.number(raw, "get_per_1000"),
        steps=tuple(steps),
        as_of=_date(where, raw, "as_of", as_of),
        source=where.text(raw, "source", source),
    )
