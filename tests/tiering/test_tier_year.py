"""A generated year of S3 access to a day-partitioned dataset, planned and costed.

The logs are written in the S3 server access log format and read back, so
this runs the whole path: logs -> events -> plan -> cost comparison.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from datamove.tiering import (
    AccessEvent,
    ObjectInfo,
    TierPlan,
    plan_tiers,
    read_access_logs,
)

BUCKET = "lake-prod"
START = date(2026, 1, 1)
NOW = datetime(2027, 1, 1, tzinfo=UTC)
CURRENT = {"s3": "STANDARD", "gcs": "STANDARD", "azure": "Hot"}

Shard = tuple[str, int, datetime]
Read = tuple[datetime, str, int]
Year = tuple[list[Shard], list[AccessEvent]]


def key(day: date, part: int) -> str:
    return f"transactions/date={day.isoformat()}/part-{part:05d}.parquet"


def generate(seed: int = 6) -> tuple[list[Shard], list[Read]]:
    """Two shards a day for 2026, and the year's reads of them:

    * a nightly training job reads each day's partition for 14 days;
    * a monthly report reads each month-end partition on the 1st, every month;
    * analysts read 150 random partitions at random later times.
    """
    rng = random.Random(seed)
    shards: list[Shard] = []
    reads: list[Read] = []
    for offset in range(365):
        day = START + timedelta(days=offset)
        created = datetime(day.year, day.month, day.day, 2, tzinfo=UTC)
        for part in range(2):
            size = rng.randint(96, 160) << 20
            shards.append((key(day, part), size, created))
            for k in range(1, 15):
                when = created + timedelta(days=k, hours=rng.randint(0, 3))
                if when < NOW:
                    reads.append((when, key(day, part), size))
            if (day + timedelta(days=1)).day == 1:
                month = day + timedelta(days=1)
                while (
                    when := datetime(month.year, month.month, 1, 6, tzinfo=UTC)
                ) < NOW:
                    reads.append((when, key(day, part), size))
                    month = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    for _ in range(150):
        offset = rng.randrange(365)
        day = START + timedelta(days=offset)
        later = rng.randint(0, 364 - offset)
        when = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        when += timedelta(days=later)
        sizes = {s[0]: s[1] for s in shards[2 * offset : 2 * offset + 2]}
        for name, size in sizes.items():
            reads.append((when, name, size))
    return shards, sorted(reads)


def s3_log_lines(reads: list[Read], seed: int) -> Iterator[str]:
    """The reads as S3 server access log records, with some noise around them."""
    rng = random.Random(seed)
    owner = "79a5" * 16
    for number, (when, name, size) in enumerate(reads):
        stamp = when.strftime("%d/%b/%Y:%H:%M:%S +0000")
        encoded = name.replace("=", "%3D")
        request = f"req{number:012X}"
        yield (
            f"{owner} {BUCKET} [{stamp}] 198.51.100.{rng.randint(2, 250)} "
            f"arn:aws:iam::210987654321:role/reader {request} REST.GET.OBJECT "
            f'{encoded} "GET /{BUCKET}/{encoded} HTTP/1.1" 200 - {size} {size} '
            f'{rng.randint(50, 900)} {rng.randint(5, 60)} "-" "aws-sdk-java/2.25" - '
            "hostid= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader "
            f"{BUCKET}.s3.us-east-1.amazonaws.com TLSv1.3 - -"
        )
        if number % 97 == 0:  # listings the planner must ignore
            yield (
                f"{owner} {BUCKET} [{stamp}] 198.51.100.9 - {request}L "
                f'REST.GET.BUCKET - "GET /{BUCKET}?list-type=2 HTTP/1.1" 200 - 4821 '
                '- 33 32 "-" "aws-cli/2.17" -'
            )


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> Year:
    shards, reads = generate()
    logs = tmp_path_factory.mktemp("year") / "logs"
    months: dict[str, list[Read]] = {}
    for item in reads:
        months.setdefault(item[0].strftime("%Y/%m"), []).append(item)
    for month, items in months.items():
        folder = logs / month
        folder.mkdir(parents=True)
        lines = "\n".join(s3_log_lines(items, seed=len(items))) + "\n"
        with gzip.open(folder / "access.log.gz", "wt") as handle:
            handle.write(lines)
    events = list(read_access_logs(logs))
    assert len(events) == len(reads)
    return shards, events


def plan_for(provider: str, year: Year) -> TierPlan:
    shards, events = year
    objects = [
        ObjectInfo(f"{BUCKET}/{name}", size, created, CURRENT[provider])
        for name, size, created in shards
    ]
    return plan_tiers(objects, events, provider=provider, now=NOW)


@pytest.mark.parametrize("provider", ["s3", "gcs", "azure"])
def test_a_year_of_access_saves_against_all_hot_and_automatic_tiering(
    provider: str, year: Year
) -> None:
    plan = plan_for(provider, year)
    costs = plan.costs
    assert costs is not None
    hot, tiered, automatic = (
        costs.scenario(n) for n in ("all_hot", "plan", "automatic")
    )
    assert hot is not None and tiered is not None and automatic is not None

    print(
        f"\n{provider} {costs.region}, {costs.horizon_months} months, {plan.summary()}"
    )
    for scenario in costs.scenarios:
        parts = scenario.breakdown.to_dict()
        print(
            f"  {scenario.label:<48} ${scenario.total:8.2f}  "
            + "  ".join(f"{k} {v:.2f}" for k, v in parts.items() if v and k != "total")
        )
    print(
        f"  plan saves ${costs.savings('all_hot'):.2f} against all-hot and "
        f"${costs.savings('automatic'):.2f} against {automatic.label}"
    )

    assert tiered.total < automatic.total < hot.total
    assert (costs.savings("all_hot") or 0) > 0.4 * hot.total
    assert tiered.breakdown.storage < automatic.breakdown.storage
    assert plan.observed_from is not None and plan.observed_from.year == 2026
    assert plan.warnings == ()


def test_the_year_plan_puts_each_partition_where_its_reads_say(
    year: Year,
) -> None:
    plan = plan_for("s3", year)
    tiers = {a.path.split("/")[2]: a.tier for a in plan.assignments}

    # Read nightly in the last fortnight: hot.
    assert tiers["date=2026-12-25"] == "hot"
    # Month-end partitions are read every month: never archive.
    for month in range(1, 13):
        last = date(2026, month, 1) + timedelta(days=31)
        month_end = last.replace(day=1) - timedelta(days=1)
        assert tiers[f"date={month_end.isoformat()}"] != "archive", month_end
    # Untouched since its first fortnight, 200+ days ago: archive.
    assert sum(1 for t in tiers.values() if t == "archive") > 100
    assert plan.summary()["cold"]["objects"] > 0
