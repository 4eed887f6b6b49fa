"""Assign each object a tier from its reads, the policy and the prices.

The policy names the coldest tier an object may go to. Among that tier and
the hotter ones, the planner keeps the object where its cost over the
horizon is lowest (:mod:`datamove.tiering.cost`), so it never moves data
where early-deletion, retrieval, minimum-size or minimum-duration fees would
exceed the storage saved. A tie keeps the object where it is, then prefers
the hotter tier. An override with ``force: true`` skips this check.

The result is a frozen :class:`TierPlan`: one :class:`TierAssignment` per
object and the cost of all-hot, the plan and the provider's automatic
tiering over the horizon.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from datamove.errors import UsageError
from datamove.tiering.access import (
    AccessStats,
    ObjectInfo,
    PathMapping,
    as_utc,
    attribute_events,
    normalize_path,
)
from datamove.tiering.cost import (
    MONTH_DAYS,
    CostBreakdown,
    CostComparison,
    Ledger,
    MonthlyCost,
    ReadForecast,
    ScenarioCost,
    automatic_cost,
    class_cost,
    move_costs,
    read_days,
)
from datamove.tiering.logs import AccessEvent
from datamove.tiering.policy import (
    TIERS,
    ObjectFacts,
    PolicyDecision,
    TierPolicy,
    default_policy,
    facts_for,
)
from datamove.tiering.prices import GB, ClassPrice, PriceTable, load_prices

log = logging.getLogger(__name__)

# Rates are measured over at least this many days, so that one read of a
# new object does not look like a daily habit.
MIN_RATE_WINDOW_DAYS = 7.0


@dataclass(frozen=True)
class TierAssignment:
    """Where one object goes, and why.

    ``tier`` is the planned tier and ``storage_class`` its native class
    (None for stores without classes: the tier is recorded only);
    ``current_class`` is the class now (None for an object not yet
    written); ``policy_tier`` the coldest tier the policy allowed;
    ``restore_required`` says reads of the planned class need a restore;
    ``reads_per_month`` is the expected number of accesses the costs assume.
    """

    path: str
    tier: str
    storage_class: str | None
    reason: str
    current_class: str | None
    size: int = 0
    policy_tier: str = ""
    restore_required: bool = False
    reads_per_month: float = 0.0

    @property
    def needs_change(self) -> bool:
        """The object exists and must change class to follow the plan."""
        return (
            self.storage_class is not None
            and self.current_class is not None
            and self.storage_class.casefold() != self.current_class.casefold()
        )

    def to_dict(self) -> dict[str, Any]:
        """The assignment as plain values."""
        return {
            "path": self.path,
            "tier": self.tier,
            "storage_class": self.storage_class,
            "current_class": self.current_class,
            "reason": self.reason,
            "size": self.size,
            "policy_tier": self.policy_tier,
            "restore_required": self.restore_required,
            "reads_per_month": self.reads_per_month,
            "needs_change": self.needs_change,
        }


@dataclass(frozen=True)
class TierPlan:
    """Tiers for a set of objects, and what they cost.

    ``costs`` is None when the store has no storage classes. ``observed_from``
    and ``observed_to`` bound the access events read; ``warnings`` name what
    limits the plan (short logs, unmatched reads, unpriced classes).
    """

    provider: str | None
    region: str | None
    horizon_months: int
    generated_at: datetime
    assignments: tuple[TierAssignment, ...]
    costs: CostComparison | None = None
    observed_from: datetime | None = None
    observed_to: datetime | None = None
    events_matched: int = 0
    events_unmatched: int = 0
    warnings: tuple[str, ...] = ()
    policy: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def _by_path(self) -> dict[str, TierAssignment]:
        return {normalize_path(a.path): a for a in self.assignments}

    def assignment(self, path: str) -> TierAssignment | None:
        """The assignment of ``path`` (compared after normalisation)."""
        return self._by_path.get(normalize_path(path))

    def class_for(self, path: str) -> str | None:
        """The class to write ``path`` in (``sync --tier-policy``), if any."""
        found = self.assignment(path)
        return found.storage_class if found is not None else None

    def changes(self) -> tuple[TierAssignment, ...]:
        """Existing objects whose class must change (``tier apply``)."""
        return tuple(a for a in self.assignments if a.needs_change)

    def summary(self) -> dict[str, dict[str, int]]:
        """Objects and bytes per planned tier."""
        result = {tier: {"objects": 0, "bytes": 0} for tier in TIERS}
        for item in self.assignments:
            result[item.tier]["objects"] += 1
            result[item.tier]["bytes"] += item.size
        return result

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain JSON-serialisable values (see :meth:`from_dict`)."""
        return {
            "provider": self.provider,
            "region": self.region,
            "horizon_months": self.horizon_months,
            "generated_at": self.generated_at.isoformat(),
            "observed_from": _iso(self.observed_from),
            "observed_to": _iso(self.observed_to),
            "events_matched": self.events_matched,
            "events_unmatched": self.events_unmatched,
            "warnings": list(self.warnings),
            "policy": dict(self.policy),
            "summary": self.summary(),
            "costs": self.costs.to_dict() if self.costs is not None else None,
            "assignments": [a.to_dict() for a in self.assignments],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TierPlan:
        """Rebuild a plan written by :meth:`to_dict` (e.g. to resume an apply).

        Raises:
            UsageError: the data is not a plan written by datamove.
        """
        try:
            assignments = tuple(
                TierAssignment(
                    path=a["path"],
                    tier=a["tier"],
                    storage_class=a["storage_class"],
                    reason=a["reason"],
                    current_class=a["current_class"],
                    size=int(a.get("size", 0)),
                    policy_tier=a.get("policy_tier", ""),
                    restore_required=bool(a.get("restore_required", False)),
                    reads_per_month=float(a.get("reads_per_month", 0.0)),
                )
                for a in data["assignments"]
            )
            return cls(
                provider=data["provider"],
                region=data["region"],
                horizon_months=int(data["horizon_months"]),
                generated_at=datetime.fromisoformat(data["generated_at"]),
                assignments=assignments,
                costs=_costs_from_dict(data.get("costs")),
                observed_from=_from_iso(data.get("observed_from")),
                observed_to=_from_iso(data.get("observed_to")),
                events_matched=int(data.get("events_matched", 0)),
                events_unmatched=int(data.get("events_unmatched", 0)),
                warnings=tuple(data.get("warnings", ())),
                policy=dict(data.get("policy", {})),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise UsageError(
                f"not a tier plan written by datamove ({error!r}); "
                "write a new one with 'datamove tier plan'"
            ) from None


def plan_tiers(
    objects: Iterable[ObjectInfo],
    events: Iterable[AccessEvent] = (),
    *,
    provider: str | None,
    policy: TierPolicy | None = None,
    prices: PriceTable | None = None,
    region: str | None = None,
    now: datetime | None = None,
    mapping: PathMapping | None = None,
    observed_from: datetime | None = None,
    log_warnings: bool = True,
) -> TierPlan:
    """Plan a tier for every object and cost the plan against the alternatives.

    Args:
        objects: the objects to tier; ``current_class=None`` marks an object
            not written yet (its upload is costed in every scenario).
        events: reads, e.g. from :func:`~datamove.tiering.logs.read_access_logs`.
        provider: ``s3``, ``gcs`` or ``azure``; None for a store without
            storage classes (tiers are then recorded only, with no costs).
            :func:`~datamove.tiering.prices.provider_for_protocol` maps an
            fsspec protocol.
        policy: the tier policy; :func:`default_policy` when None.
        prices: the price table; loaded (with the policy's ``price_file``)
            when None.
        region: the price region; the policy's, then the table's default.
        now: the time the plan is made for (default: the current time).
        mapping: maps logged paths that are not object paths (source files,
            partitions) to object paths or directories.
        observed_from: when the access history starts, if earlier than the
            first of ``events`` (give it when ``events`` are the part of a
            longer history that concerns these objects).
        log_warnings: log the plan's warnings; they are in
            :attr:`TierPlan.warnings` either way.

    Returns:
        The frozen plan, assignments sorted by path.

    Raises:
        UsageError: the provider, region or a mapped class has no price, or
            an object is listed twice.
    """
    policy = policy or default_policy()
    moment = as_utc(now) if now is not None else datetime.now(UTC)
    items = sorted(objects, key=lambda o: normalize_path(o.path))
    attribution = attribute_events(events, items, mapping=mapping)
    first_event = attribution.first_event
    if observed_from is not None:
        start = as_utc(observed_from)
        first_event = start if first_event is None else min(first_event, start)
    warnings = _coverage_warnings(policy, first_event, moment, len(items))
    if attribution.unmatched:
        warnings.append(
            f"{attribution.unmatched} logged reads matched no object "
            f"(e.g. {', '.join(attribution.unmatched_examples)}); "
            "pass a mapping from logged paths to shards if they belong to this data"
        )

    context = _Context.build(provider, policy, prices, region, warnings)
    observer = _Observer(policy, moment, first_event)
    assignments: list[TierAssignment] = []
    placements: list[_Placement] = []
    for info in items:
        path = normalize_path(info.path)
        stats = attribution.stats.get(path)
        facts, forecast = observer.observe(info, stats)
        decision = policy.decide(path, info.partition, facts)
        if context is None:
            assignments.append(_recorded_only(info, decision))
            continue
        placement = context.place(info, path, facts, forecast, decision, moment)
        placements.append(placement)
        assignments.append(placement.assignment)

    costs = context.compare(placements) if context is not None else None
    for message in warnings if log_warnings else ():
        log.warning("tier plan: %s", message)
    return TierPlan(
        provider=provider if context is not None else None,
        region=context.region if context is not None else None,
        horizon_months=policy.horizon_months,
        generated_at=moment,
        assignments=tuple(assignments),
        costs=costs,
        observed_from=first_event,
        observed_to=attribution.last_event,
        events_matched=attribution.matched,
        events_unmatched=attribution.unmatched,
        warnings=tuple(warnings),
        policy=policy.to_dict(),
    )


def _recorded_only(info: ObjectInfo, decision: PolicyDecision) -> TierAssignment:
    reason = (
        f"{decision.reason} -> {decision.tier}; the store has no storage classes: "
        "tier recorded only"
    )
    return TierAssignment(
        path=info.path,
        tier=decision.tier,
        storage_class=None,
        reason=reason,
        current_class=info.current_class,
        size=info.size,
        policy_tier=decision.tier,
    )


# --- observing one object ----------------------------------------------------


class _Observer:
    """Turns an object's reads into policy facts and a read forecast."""

    def __init__(
        self, policy: TierPolicy, now: datetime, observed_from: datetime | None
    ) -> None:
        self.policy = policy
        self.now = now
        self.observed_from = observed_from
        self.gap = timedelta(minutes=policy.access_gap_minutes)

    def observe(
        self, info: ObjectInfo, stats: AccessStats | None
    ) -> tuple[ObjectFacts, ReadForecast]:
        now = self.now
        reads = [r for r in (stats.reads if stats else ()) if r[0] <= now]
        sessions = AccessStats(info.path, tuple(reads)).accesses(self.gap)
        last_read = reads[-1][0] if reads else None
        age = max(0.0, _days(now - info.created))

        since_read = _days(now - last_read) if last_read is not None else math.inf
        since = since_read
        if self.policy.creation_counts_as_access:
            since = min(since_read, age)
        facts = facts_for(since, age, tuple(_days(now - s) for s in sessions))

        if self.observed_from is None:
            return facts, ReadForecast(days_since_access=since_read)
        start = max(
            now - timedelta(days=self.policy.rate_window_days),
            info.created,
            self.observed_from,
        )
        window = max(_days(now - start), MIN_RATE_WINDOW_DAYS)
        inside = [r for r in reads if r[0] >= start]
        accesses = sum(1 for s in sessions if s >= start)
        scale = MONTH_DAYS / window
        gap = window / accesses if accesses else math.inf
        if since_read > gap:
            # Silent for longer than its usual gap between reads, like a burst
            # of reads after creation that has stopped: the longer the
            # silence, the less the past rate says about the future.
            scale *= (gap / since_read) ** 2
        forecast = ReadForecast(
            accesses_per_month=accesses * scale,
            requests_per_month=len(inside) * scale,
            bytes_per_month=sum(r[1] for r in inside) * scale,
            days_since_access=since_read,
        )
        return facts, forecast


def _days(delta: timedelta) -> float:
    return delta.total_seconds() / 86400.0


def _coverage_warnings(
    policy: TierPolicy, first_event: datetime | None, now: datetime, objects: int
) -> list[str]:
    if first_event is None:
        return (
            [
                "no access events were read: every object counts as never read "
                "(since its creation); pass the access logs to plan from real reads"
            ]
            if objects
            else []
        )
    lookback = max(
        [r.accessed_within_days or 0.0 for r in policy.rules]
        + [r.not_accessed_for_days or 0.0 for r in policy.rules]
    )
    covered = _days(now - first_event)
    if covered + 1 < lookback:
        return [
            f"the access logs cover {covered:.0f} days (from {first_event:%Y-%m-%d}) "
            f"but the policy looks back {lookback:.0f} days: an object with no "
            "logged read may have been read before the logs start"
        ]
    return []


# --- placing one object --------------------------------------------------------


@dataclass(frozen=True)
class _Placement:
    info: ObjectInfo
    path: str
    facts: ObjectFacts
    forecast: ReadForecast
    decision: PolicyDecision
    target: ClassPrice
    current: ClassPrice | None
    days_in_current: float
    assignment: TierAssignment


@dataclass(frozen=True)
class _Choice:
    tier: str
    costs: dict[str, CostBreakdown]
    blocked: frozenset[str]


@dataclass
class _Context:
    """Provider, region, prices and classes, checked once for a plan."""

    provider: str
    region: str
    policy: TierPolicy
    prices: PriceTable
    tiers: dict[str, ClassPrice]
    warnings: list[str]
    unpriced: set[str] = field(default_factory=set)

    @classmethod
    def build(
        cls,
        provider: str | None,
        policy: TierPolicy,
        prices: PriceTable | None,
        region: str | None,
        warnings: list[str],
    ) -> _Context | None:
        if provider is None:
            return None
        table = prices if prices is not None else load_prices(policy.price_file)
        chosen = table.region_for(provider, region or policy.regions.get(provider))
        tiers: dict[str, ClassPrice] = {}
        for tier in TIERS:
            name = policy.class_for(provider, tier)
            found = table.find(provider, chosen, name)
            if found is None:
                raise UsageError(
                    f"{policy.source}: class {name!r} for tier {tier!r} has no price "
                    f"for {provider} {chosen} in {', '.join(table.files)}; add it to a "
                    "price file or map the tier to a priced class under 'classes:'"
                )
            tiers[tier] = found
        return cls(provider, chosen, policy, table, tiers, warnings)

    def current_price(self, info: ObjectInfo) -> ClassPrice | None:
        if info.current_class is None:
            return None
        found = self.prices.find(self.provider, self.region, info.current_class)
        if found is None and info.current_class not in self.unpriced:
            self.unpriced.add(info.current_class)
            self.warnings.append(
                f"current class {info.current_class!r} has no price for "
                f"{self.provider} {self.region}: leaving it is costed without "
                "early-deletion or retrieval fees"
            )
        return found

    def tier_of(self, price: ClassPrice | None) -> str | None:
        if price is None:
            return None
        return self.policy.tier_of_class(self.provider, price.storage_class)

    def choose(
        self,
        size: int,
        forecast: ReadForecast,
        decision: PolicyDecision,
        current: ClassPrice | None,
        days_in_current: float,
        months: int,
        new: bool,
    ) -> _Choice:
        """The cheapest tier over ``months`` among those no colder than the
        policy's and the object's current one (a move must pay for itself)."""
        current_tier = self.tier_of(current)
        allowed = TIERS[: TIERS.index(decision.tier) + 1]
        if current_tier is not None and current_tier not in allowed:
            allowed = (*allowed, current_tier)
        costs = {
            tier: class_cost(
                size,
                forecast,
                self.tiers[tier],
                current,
                days_in_current,
                months,
                new_object=new,
            )
            for tier in allowed
        }
        blocked = frozenset(
            tier
            for tier in allowed
            if self.tiers[tier].restore_required
            and forecast.accesses_per_month > 0
            and not self.policy.allow_restore
        )
        if decision.force:
            return _Choice(decision.tier, costs, blocked)
        eligible = [t for t in allowed if t not in blocked] or ["hot"]
        chosen = min(
            eligible,
            key=lambda t: (
                round(costs[t].total, 12),
                0 if t == current_tier else 1,
                TIERS.index(t),
            ),
        )
        return _Choice(chosen, costs, blocked)

    def place(
        self,
        info: ObjectInfo,
        path: str,
        facts: ObjectFacts,
        forecast: ReadForecast,
        decision: PolicyDecision,
        now: datetime,
    ) -> _Placement:
        current = self.current_price(info)
        since = info.class_since or info.created
        days_in_current = max(0.0, _days(now - since))
        months = self.policy.horizon_months
        choice = self.choose(
            info.size,
            forecast,
            decision,
            current,
            days_in_current,
            months,
            info.current_class is None,
        )
        target = self.tiers[choice.tier]
        reason = _reason(decision, choice, self.tiers, info, forecast, months)
        assignment = TierAssignment(
            path=info.path,
            tier=choice.tier,
            storage_class=target.storage_class,
            reason=reason,
            current_class=info.current_class,
            size=info.size,
            policy_tier=decision.tier,
            restore_required=target.restore_required,
            reads_per_month=round(forecast.accesses_per_month, 4),
        )
        return _Placement(
            info,
            path,
            facts,
            forecast,
            decision,
            target,
            current,
            days_in_current,
            assignment,
        )

    def follow(self, item: _Placement, ledger: Ledger) -> None:
        """Cost one object under the plan, re-applied at the start of every
        month of the horizon (as a monthly ``tier apply`` would)."""
        months = self.policy.horizon_months
        info, forecast = item.info, item.forecast
        reads = read_days(forecast, months * MONTH_DAYS)
        price, held = item.target, 0.0
        if info.current_class is None:
            ledger.add(0, "fees", "transition", price.put_per_1000 / 1000)
        elif item.current is None or item.current.storage_class != price.storage_class:
            transition, early = move_costs(
                info.size, price.put_per_1000, item.current, item.days_in_current
            )
            ledger.add(0, "fees", "transition", transition)
            ledger.add(0, "fees", "early_deletion", early)
        else:
            held = item.days_in_current

        policy_tier = item.decision.tier
        for month in range(months):
            if month:
                offset = month * MONTH_DAYS
                facts = _facts_later(item.facts, reads, offset)
                decision = self.policy.decide(item.path, info.partition, facts)
                if decision.tier != policy_tier:
                    policy_tier = decision.tier
                    choice = self.choose(
                        info.size,
                        forecast,
                        decision,
                        price,
                        held,
                        months - month,
                        False,
                    )
                    new_price = self.tiers[choice.tier]
                    if new_price.storage_class != price.storage_class:
                        transition, early = move_costs(
                            info.size, new_price.put_per_1000, price, held
                        )
                        ledger.add(month, "fees", "transition", transition)
                        ledger.add(month, "fees", "early_deletion", early)
                        price, held = new_price, 0.0
            billable = price.billable_bytes(info.size) / GB
            ledger.add(month, "storage", "storage", billable * price.storage_gb_month)
            requests = forecast.requests_per_month * price.get_per_1000 / 1000
            ledger.add(month, "requests", "requests", requests)
            retrieval = forecast.bytes_per_month / GB * price.retrieval_gb
            ledger.add(month, "retrieval", "retrieval", retrieval)
            held += MONTH_DAYS

        beyond = max(0.0, price.min_storage_days - held)
        billable = price.billable_bytes(info.size) / GB
        commitment = beyond * billable * price.storage_gb_month / MONTH_DAYS
        ledger.add(months - 1, "fees", "minimum_duration", commitment)

    def compare(self, placements: list[_Placement]) -> CostComparison:
        months = self.policy.horizon_months
        hot, plan = Ledger(months), Ledger(months)
        auto = self.prices.automatic_for(self.provider, self.region)
        automatic = Ledger(months) if auto is not None else None
        step_prices = (
            [
                self.prices.find(self.provider, self.region, s.storage_class)
                if s.storage_class
                else None
                for s in auto.steps
            ]
            if auto is not None
            else []
        )
        for item in placements:
            info, new = item.info, item.info.current_class is None
            now_in = (item.current, item.days_in_current, months)
            class_cost(
                info.size,
                item.forecast,
                self.tiers["hot"],
                *now_in,
                new_object=new,
                ledger=hot,
            )
            self.follow(item, plan)
            if auto is not None and automatic is not None:
                automatic_cost(
                    info.size,
                    item.forecast,
                    auto,
                    step_prices,
                    *now_in,
                    automatic,
                    new_object=new,
                )

        hot_class = self.tiers["hot"].storage_class
        scenarios = [
            hot.scenario("all_hot", f"all hot ({hot_class})"),
            plan.scenario("plan", "tier plan, re-applied monthly"),
        ]
        if auto is not None and automatic is not None:
            scenarios.append(automatic.scenario("automatic", auto.name))
        used = list(self.tiers.values())
        sources = sorted({p.source for p in used} | ({auto.source} if auto else set()))
        dates = [p.as_of for p in used] + ([auto.as_of] if auto else [])
        return CostComparison(
            provider=self.provider,
            region=self.region,
            currency=self.prices.currency,
            horizon_months=months,
            scenarios=tuple(scenarios),
            price_sources=tuple(sources),
            prices_as_of=min(dates).isoformat(),
        )


def _facts_later(facts: ObjectFacts, reads: list[float], offset: float) -> ObjectFacts:
    """An object's facts ``offset`` days from now, given its expected reads."""
    past = [offset - day for day in reads if day <= offset]
    since = facts.days_since_access + offset
    if past:
        since = min(since, min(past))
    ages = tuple(age + offset for age in facts.access_ages) + tuple(past)
    return ObjectFacts(since, facts.age_days + offset, ages)


def usd(amount: float) -> str:
    """Dollars with enough digits to tell small amounts apart."""
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    if amount == 0:
        return "$0"
    # Two significant digits, without exponent notation.
    decimals = max(2, 1 - math.floor(math.log10(abs(amount))))
    return f"${amount:.{decimals}f}"


def _reason(
    decision: PolicyDecision,
    choice: _Choice,
    tiers: Mapping[str, ClassPrice],
    info: ObjectInfo,
    forecast: ReadForecast,
    months: int,
) -> str:
    text = f"{decision.reason} -> {decision.tier}"
    chosen, wanted = tiers[choice.tier], tiers[decision.tier]
    current = info.current_class
    if current is None:
        where = f"; written as {chosen.storage_class}"
    elif current.casefold() == chosen.storage_class.casefold():
        where = f"; already in {current}"
    else:
        where = f"; moves from {current} to {chosen.storage_class}"
    if decision.force:
        return f"{text}; forced, fees not checked{where}"
    if choice.tier == decision.tier:
        return text + where
    if decision.tier in choice.blocked:
        return (
            f"{text}, but kept {choice.tier}: {wanted.storage_class} needs a restore "
            f"before each read and {forecast.accesses_per_month:.1f} reads/month are "
            f"expected (set allow_restore: true to permit it){where}"
        )
    ours, theirs = choice.costs[choice.tier], choice.costs[decision.tier]
    why: list[str] = []
    if info.size < wanted.min_billable_bytes:
        why.append(
            f"{wanted.storage_class} bills at least {wanted.min_billable_bytes} bytes "
            f"and the object has {info.size}"
        )
    if theirs.retrieval > ours.retrieval:
        why.append(
            f"retrieval {usd(theirs.retrieval)} for "
            f"{forecast.accesses_per_month * months:.1f} expected reads"
        )
    if theirs.minimum_duration > ours.minimum_duration:
        minimum = usd(theirs.minimum_duration)
        why.append(f"{wanted.min_storage_days}-day minimum storage {minimum}")
    if theirs.early_deletion > ours.early_deletion:
        why.append(f"early deletion {usd(theirs.early_deletion)}")
    if theirs.transition > ours.transition:
        why.append(f"transition {usd(theirs.transition)}")
    return (
        f"{text}, but kept {choice.tier}: {wanted.storage_class} would cost "
        f"{usd(theirs.total)} against {usd(ours.total)} over {months} months"
        + (f" ({'; '.join(why)})" if why else "")
        + where
    )


# --- (de)serialisation helpers ---------------------------------------------------


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _from_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _costs_from_dict(data: Mapping[str, Any] | None) -> CostComparison | None:
    if not data:
        return None
    scenarios = []
    for raw in data["scenarios"]:
        parts = {k: v for k, v in raw["breakdown"].items() if k != "total"}
        months = tuple(
            MonthlyCost(
                int(m["month"]),
                m["storage"],
                m["requests"],
                m["retrieval"],
                m["fees"],
                m["monitoring"],
            )
            for m in raw["months"]
        )
        scenarios.append(
            ScenarioCost(raw["name"], raw["label"], months, CostBreakdown(**parts))
        )
    return CostComparison(
        provider=data["provider"],
        region=data["region"],
        currency=data["currency"],
        horizon_months=int(data["horizon_months"]),
        scenarios=tuple(scenarios),
        price_sources=tuple(data.get("price_sources", ())),
        prices_as_of=data.get("prices_as_of", ""),
    )
