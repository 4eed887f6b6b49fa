"""What keeping an object in a class costs over a horizon, month by month.

The model, for one object of ``size`` bytes read at a steady expected rate
(:class:`ReadForecast`) and kept in one class for the horizon:

* storage: billable size (at least the class's minimum billable size, plus
  its per-object overhead) x $/GB-month x months;
* requests: expected reads x the class's GET price;
* retrieval: expected bytes read x the class's $/GB retrieval price;
* transition (month 1): a PUT into the class (the upload of a new object,
  or the in-place copy of an existing one) plus reading the object out of
  its current class at that class's retrieval price;
* early deletion (month 1): leaving the current class before its minimum
  storage duration, the remaining days at its storage price;
* minimum duration (last month): days of the new class's minimum that fall
  beyond the horizon, at its storage price: a move commits to them.

Automatic tiering is simulated day by day of idle time: each step of
:class:`~datamove.tiering.prices.AutoTiering` starts after its number of
days without access, and an expected read brings the object back to the
first step. Reads are spread evenly at the forecast rate, starting one
interval after the last observed access (or one interval from now when the
object has been silent for longer than that).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from datamove.tiering.prices import GB, AutoStep, AutoTiering, ClassPrice

MONTH_DAYS = 365.25 / 12
COMPONENTS = ("storage", "requests", "retrieval", "fees", "monitoring")


@dataclass(frozen=True)
class ReadForecast:
    """Expected reads of one object per month, and days since its last access.

    ``accesses_per_month`` counts access sessions, ``requests_per_month`` the
    GET/HEAD requests they issue, ``bytes_per_month`` the bytes they return.
    ``days_since_access`` is infinite for an object never read.
    """

    accesses_per_month: float = 0.0
    requests_per_month: float = 0.0
    bytes_per_month: float = 0.0
    days_since_access: float = math.inf


@dataclass(frozen=True)
class CostBreakdown:
    """Dollars over a horizon, by what they pay for."""

    storage: float = 0.0
    requests: float = 0.0
    retrieval: float = 0.0
    transition: float = 0.0
    early_deletion: float = 0.0
    minimum_duration: float = 0.0
    monitoring: float = 0.0

    @property
    def fees(self) -> float:
        """One-off charges: transition, early deletion, minimum duration."""
        return self.transition + self.early_deletion + self.minimum_duration

    @property
    def total(self) -> float:
        """Everything."""
        return (
            self.storage + self.requests + self.retrieval + self.fees + self.monitoring
        )

    def __add__(self, other: CostBreakdown) -> CostBreakdown:
        return CostBreakdown(
            *(getattr(self, n) + getattr(other, n) for n in _BREAKDOWN_FIELDS)
        )

    def to_dict(self) -> dict[str, float]:
        """The components and total as plain floats."""
        result = {n: getattr(self, n) for n in _BREAKDOWN_FIELDS}
        result["total"] = self.total
        return result


_BREAKDOWN_FIELDS = (
    "storage",
    "requests",
    "retrieval",
    "transition",
    "early_deletion",
    "minimum_duration",
    "monitoring",
)


@dataclass(frozen=True)
class MonthlyCost:
    """The cost of one month of the horizon (``month`` counts from 1)."""

    month: int
    storage: float
    requests: float
    retrieval: float
    fees: float
    monitoring: float

    @property
    def total(self) -> float:
        """Everything in the month."""
        return (
            self.storage + self.requests + self.retrieval + self.fees + self.monitoring
        )

    def to_dict(self) -> dict[str, float]:
        """The month as plain values."""
        return {
            "month": self.month,
            "storage": self.storage,
            "requests": self.requests,
            "retrieval": self.retrieval,
            "fees": self.fees,
            "monitoring": self.monitoring,
            "total": self.total,
        }


@dataclass(frozen=True)
class ScenarioCost:
    """One way of storing the objects, costed month by month."""

    name: str
    label: str
    months: tuple[MonthlyCost, ...]
    breakdown: CostBreakdown

    @property
    def total(self) -> float:
        """The cost over the whole horizon."""
        return self.breakdown.total

    def cumulative(self) -> list[float]:
        """The running total at the end of each month."""
        running, totals = 0.0, []
        for month in self.months:
            running += month.total
            totals.append(running)
        return totals

    def to_dict(self) -> dict[str, Any]:
        """The scenario as plain values."""
        return {
            "name": self.name,
            "label": self.label,
            "total": self.total,
            "breakdown": self.breakdown.to_dict(),
            "months": [m.to_dict() for m in self.months],
        }


@dataclass(frozen=True)
class CostComparison:
    """All-hot, the plan and automatic tiering, costed over one horizon.

    ``scenarios`` holds ``all_hot`` and ``plan``, and ``automatic`` when the
    price table prices the provider's automatic tiering.
    """

    provider: str
    region: str
    currency: str
    horizon_months: int
    scenarios: tuple[ScenarioCost, ...]
    price_sources: tuple[str, ...] = ()
    prices_as_of: str = ""

    def scenario(self, name: str) -> ScenarioCost | None:
        """The scenario called ``name``, if costed."""
        return next((s for s in self.scenarios if s.name == name), None)

    def savings(self, against: str) -> float | None:
        """What the plan saves over the horizon against another scenario."""
        plan, other = self.scenario("plan"), self.scenario(against)
        if plan is None or other is None:
            return None
        return other.total - plan.total

    def to_dict(self) -> dict[str, Any]:
        """The comparison as plain JSON-serialisable values."""
        return {
            "provider": self.provider,
            "region": self.region,
            "currency": self.currency,
            "horizon_months": self.horizon_months,
            "prices_as_of": self.prices_as_of,
            "price_sources": list(self.price_sources),
            "scenarios": [s.to_dict() for s in self.scenarios],
            "savings": {
                s.name: self.savings(s.name) for s in self.scenarios if s.name != "plan"
            },
        }


@dataclass
class Ledger:
    """Month-by-month sums while a scenario is costed (mutable accumulator)."""

    horizon_months: int
    rows: list[list[float]] = field(default_factory=list)
    parts: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rows = [[0.0] * len(COMPONENTS) for _ in range(self.horizon_months)]
        self.parts = dict.fromkeys(_BREAKDOWN_FIELDS, 0.0)

    def add(self, month: int, component: str, part: str, amount: float) -> None:
        """Add ``amount`` to a month (0-based; clamped to the horizon)."""
        if amount == 0.0:
            return
        index = min(max(month, 0), self.horizon_months - 1)
        self.rows[index][COMPONENTS.index(component)] += amount
        self.parts[part] += amount

    def spread(
        self,
        start_day: float,
        end_day: float,
        per_day: float,
        component: str,
        part: str,
    ) -> None:
        """Add ``per_day`` for every day of [start_day, end_day) to its months."""
        if per_day == 0.0 or end_day <= start_day:
            return
        day = start_day
        while day < end_day:
            month = int(day // MONTH_DAYS)
            if month >= self.horizon_months:
                break
            boundary = min((month + 1) * MONTH_DAYS, end_day)
            self.add(month, component, part, per_day * (boundary - day))
            day = boundary

    def scenario(self, name: str, label: str) -> ScenarioCost:
        """The sums so far as a frozen :class:`ScenarioCost`."""
        months = tuple(MonthlyCost(i + 1, *row) for i, row in enumerate(self.rows))
        return ScenarioCost(name, label, months, CostBreakdown(**self.parts))


def _gb(size: float) -> float:
    return size / GB


def move_costs(
    size: int,
    target_put_per_1000: float,
    current: ClassPrice | None,
    days_in_current: float,
) -> tuple[float, float]:
    """(transition, early deletion) of putting an object into a new class.

    The transition is one PUT at the target's price plus, for an existing
    object, reading it out of its current class; early deletion bills the
    rest of the current class's minimum duration.
    """
    transition = target_put_per_1000 / 1000
    early = 0.0
    if current is not None:
        transition += _gb(size) * current.retrieval_gb
        if current.early_deletion == "prorated":
            remaining = max(0.0, current.min_storage_days - days_in_current)
            per_day = current.storage_gb_month / MONTH_DAYS
            early = remaining * per_day * _gb(current.billable_bytes(size))
    return transition, early


def class_cost(
    size: int,
    forecast: ReadForecast,
    target: ClassPrice,
    current: ClassPrice | None,
    days_in_current: float,
    horizon_months: int,
    *,
    new_object: bool = False,
    ledger: Ledger | None = None,
) -> CostBreakdown:
    """The cost of keeping one object in ``target`` for the horizon.

    Args:
        size: the object's size in bytes.
        forecast: its expected reads.
        target: the class it is kept in.
        current: the class it is in now (None for a new object, or when the
            current class has no price).
        days_in_current: days it has spent in ``current``.
        horizon_months: months costed.
        new_object: the object is yet to be written: its upload is costed.
        ledger: when given, the costs are also added month by month.

    Returns:
        The costs over the horizon by component.
    """
    months = horizon_months
    billable = _gb(target.billable_bytes(size))
    storage = billable * target.storage_gb_month
    requests = forecast.requests_per_month * target.get_per_1000 / 1000
    retrieval = _gb(forecast.bytes_per_month) * target.retrieval_gb

    same = current is not None and current.storage_class == target.storage_class
    transition = early = 0.0
    if new_object:
        transition = target.put_per_1000 / 1000
    elif not same:
        transition, early = move_costs(
            size, target.put_per_1000, current, days_in_current
        )

    # A move commits to the new class's minimum duration; staying counts the
    # days already spent there.
    spent = days_in_current if same else 0.0
    beyond = max(0.0, target.min_storage_days - spent - months * MONTH_DAYS)
    minimum = beyond * billable * target.storage_gb_month / MONTH_DAYS

    if ledger is not None:
        for month in range(months):
            ledger.add(month, "storage", "storage", storage)
            ledger.add(month, "requests", "requests", requests)
            ledger.add(month, "retrieval", "retrieval", retrieval)
        ledger.add(0, "fees", "transition", transition)
        ledger.add(0, "fees", "early_deletion", early)
        ledger.add(months - 1, "fees", "minimum_duration", minimum)
    return CostBreakdown(
        storage=storage * months,
        requests=requests * months,
        retrieval=retrieval * months,
        transition=transition,
        early_deletion=early,
        minimum_duration=minimum,
    )


def read_days(forecast: ReadForecast, horizon_days: float) -> list[float]:
    """The days of the horizon on which the forecast's accesses fall."""
    rate = forecast.accesses_per_month
    if rate <= 0:
        return []
    interval = MONTH_DAYS / rate
    since = forecast.days_since_access
    # A regular reader reads again one interval after its last read; one
    # silent for longer is as likely to read at any time: an interval away.
    first = interval - since if since < interval else interval
    count = int(max(0.0, horizon_days - first) // interval) + 1
    return [
        first + k * interval
        for k in range(count)
        if first + k * interval < horizon_days
    ]


def automatic_cost(
    size: int,
    forecast: ReadForecast,
    auto: AutoTiering,
    step_prices: Sequence[ClassPrice | None],
    current: ClassPrice | None,
    days_in_current: float,
    horizon_months: int,
    ledger: Ledger,
    *,
    new_object: bool = False,
) -> None:
    """Add one object under automatic tiering to ``ledger``.

    ``step_prices`` gives the class of each step (for fees when
    ``auto.fees_apply``); an object already in ``auto.storage_class`` keeps
    its idle clock, any other starts at the first step.
    """
    horizon_days = horizon_months * MONTH_DAYS
    gb = _gb(size)
    continuing = (
        current is not None
        and auto.storage_class is not None
        and current.storage_class.casefold() == auto.storage_class.casefold()
    )
    if new_object:
        ledger.add(0, "fees", "transition", auto.put_per_1000 / 1000)
    elif not continuing:
        transition, early = move_costs(
            size, auto.put_per_1000, current, days_in_current
        )
        ledger.add(0, "fees", "transition", transition)
        ledger.add(0, "fees", "early_deletion", early)

    monitored = size >= auto.min_monitored_bytes
    if monitored and auto.monitoring_per_1000_objects:
        for month in range(horizon_months):
            ledger.add(
                month,
                "monitoring",
                "monitoring",
                auto.monitoring_per_1000_objects / 1000,
            )

    reads = read_days(forecast, horizon_days)
    per_access = forecast.accesses_per_month or 1.0
    requests_each = forecast.requests_per_month / per_access
    bytes_each = forecast.bytes_per_month / per_access
    idle = forecast.days_since_access if continuing else 0.0
    idle = min(idle, 10 * 365.0)
    steps = auto.steps if monitored else auto.steps[:1]
    prices = list(step_prices) if monitored else list(step_prices[:1])

    start = 0.0
    for end in [*reads, horizon_days]:
        _idle_segment(ledger, steps, prices, auto, gb, start, end, idle)
        if end >= horizon_days:
            break
        # A read at `end`: where the object is when it is read.
        step = _step_at(steps, idle + (end - start))
        get_price = auto.get_per_1000
        price = prices[step] if step < len(prices) else None
        if auto.fees_apply and price is not None:
            get_price = price.get_per_1000
            month = int(end // MONTH_DAYS)
            ledger.add(
                month, "retrieval", "retrieval", _gb(bytes_each) * price.retrieval_gb
            )
            if step > 0:
                held = idle + (end - start) - steps[step].after_days
                _fee_back_to_first(ledger, prices, price, gb, held, month)
        ledger.add(
            int(end // MONTH_DAYS),
            "requests",
            "requests",
            requests_each * get_price / 1000,
        )
        start, idle = end, 0.0


def _step_at(steps: Sequence[AutoStep], idle_days: float) -> int:
    index = 0
    for number, step in enumerate(steps):
        if idle_days >= step.after_days:
            index = number
    return index


def _idle_segment(
    ledger: Ledger,
    steps: Sequence[AutoStep],
    prices: Sequence[ClassPrice | None],
    auto: AutoTiering,
    gb: float,
    start: float,
    end: float,
    idle: float,
) -> None:
    """Storage from ``start`` to ``end`` for an object idle ``idle`` days at
    ``start``, step by step; with fees, a PUT for each step entered."""
    for number, step in enumerate(steps):
        low = step.after_days
        high = steps[number + 1].after_days if number + 1 < len(steps) else math.inf
        # Absolute days when the idle clock is within [low, high).
        begin = max(start, start + (low - idle))
        finish = min(end, start + (high - idle))
        if finish <= begin:
            continue
        ledger.spread(
            begin, finish, gb * step.storage_gb_month / MONTH_DAYS, "storage", "storage"
        )
        entered = number > 0 and low > idle
        price = prices[number] if number < len(prices) else None
        if auto.fees_apply and entered and price is not None:
            ledger.add(
                int(begin // MONTH_DAYS),
                "fees",
                "transition",
                price.put_per_1000 / 1000,
            )


def _fee_back_to_first(
    ledger: Ledger,
    prices: Sequence[ClassPrice | None],
    price: ClassPrice,
    gb: float,
    held_days: float,
    month: int,
) -> None:
    """An access moves the object back to the first step: a write there, and
    early deletion of the class it leaves."""
    first = prices[0]
    if first is not None:
        ledger.add(month, "fees", "transition", first.put_per_1000 / 1000)
    if price.early_deletion == "prorated":
        remaining = max(0.0, price.min_storage_days - held_days)
        ledger.add(
            month,
            "fees",
            "early_deletion",
            remaining * gb * price.storage_gb_month / MONTH_DAYS,
        )
