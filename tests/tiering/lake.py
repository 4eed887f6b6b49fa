"""A small day-partitioned dataset and access logs of it, for the tier commands.

Each source file holds one day's rows, so each lands in one shard in its
``day=...`` partition; its modification time is set to that day, so the
data's age is what the tier policy sees. Shards are about 400 KB, large
enough that the packaged prices make moving them worthwhile.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CLASSES = {
    "s3": {"hot": "STANDARD", "cold": "STANDARD_IA", "archive": "DEEP_ARCHIVE"},
    "az": {"hot": "Hot", "cold": "Cool", "archive": "Archive"},
    "gs": {"hot": "STANDARD", "cold": "NEARLINE", "archive": "ARCHIVE"},
}
# Age in days of each day's data -> how it is read (see ``write_logs``).
AGES = (2, 20, 70, 130, 250, 300, 500)
ROWS = 12_000
TIER_BY_AGE = {
    2: "hot",  # new: creation counts as an access
    20: "hot",
    70: "cold",  # not read for 70 days
    130: "hot",  # its source file was read 5 days ago (old system's log)
    250: "cold",  # its shard was read 100 days ago (store log)
    300: "archive",  # never read
    500: "hot",  # its partition was read 15 days ago (relative path in a log)
}
POLICY = """\
version: 1
horizon_months: 12
rules:
  - {name: recent, tier: hot, accessed_within_days: 30}
  - {name: warm, tier: cold, accessed_within_days: 180}
default_tier: archive
classes:
  s3: {archive: DEEP_ARCHIVE}
"""
# Laid over the packaged table: only the STANDARD price differs.
PRICES = """\
providers:
  s3:
    regions:
      us-east-1:
        classes:
          STANDARD: {storage_gb_month: 0.023, as_of: 2026-11-30, source: test}
"""


def now() -> datetime:
    """The time the tests plan for: now, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


def day_of(age: int, at: datetime) -> str:
    return (at - timedelta(days=age)).date().isoformat()


def write_source(root: Path, at: datetime, ages: Iterable[int] = AGES) -> Path:
    """One CSV per day, its mtime set to that day."""
    root.mkdir(parents=True, exist_ok=True)
    for age in ages:
        day = day_of(age, at)
        rng = random.Random(age)
        path = root / f"events-{day}.csv"
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("id,token,amount,day\n")
            for i in range(ROWS):
                handle.write(
                    f"{i},t{rng.getrandbits(192):048x},{rng.random() * 100:.2f},{day}\n"
                )
        stamp = (at - timedelta(days=age)).timestamp()
        os.utime(path, (stamp, stamp))
    return root


def write_files(folder: Path, at: datetime) -> tuple[Path, Path]:
    """The policy and price files of the tests."""
    folder.mkdir(parents=True, exist_ok=True)
    policy, prices = folder / "tiers.yaml", folder / "prices.yaml"
    policy.write_text(POLICY)
    prices.write_text(PRICES)
    return policy, prices


@dataclass(frozen=True)
class Shard:
    path: str  # relative to the destination root
    day: str
    age: int


def shards_by_age(
    manifest: Mapping[str, object], at: datetime, ages: Iterable[int] = AGES
) -> dict[int, Shard]:
    """The one shard of each day, from a manifest's JSON."""
    found: dict[int, Shard] = {}
    units = manifest["units"]
    assert isinstance(units, list)
    for age in ages:
        day = day_of(age, at)
        paths = [
            s["path"] for u in units for s in u["shards"] if f"day={day}" in s["path"]
        ]
        assert len(paths) == 1, paths
        found[age] = Shard(paths[0], day, age)
    return found


def s3_log_line(bucket: str, key: str, when: datetime, size: int, number: int) -> str:
    """One record of an S3 server access log (a GET of ``key``)."""
    stamp = when.strftime("%d/%b/%Y:%H:%M:%S +0000")
    encoded = key.replace("=", "%3D")
    return (
        f"{'ab12' * 16} {bucket} [{stamp}] 198.51.100.7 "
        f"arn:aws:iam::210987654321:role/reader REQ{number:012X} REST.GET.OBJECT "
        f'{encoded} "GET /{bucket}/{encoded} HTTP/1.1" 200 - {size} {size} 41 12 '
        '"-" "aws-sdk-java/2.25" - hostid= SigV4 ECDHE-RSA-AES128-GCM-SHA256 '
        f"AuthHeader {bucket}.s3.us-east-1.amazonaws.com TLSv1.3 - -"
    )


def azure_log_line(
    account: str, container: str, blob: str, when: datetime, size: int
) -> str:
    """One record of an Azure Storage resource log (a GetBlob of ``blob``)."""
    record = {
        "time": when.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
        "category": "StorageRead",
        "operationName": "GetBlob",
        "statusCode": 200,
        "statusText": "Success",
        "properties": {
            "accountName": account,
            "objectKey": f"/{account}/{container}/{blob}",
            "responseBodySize": size,
            "serviceType": "blob",
        },
        "uri": f"https://{account}.blob.core.windows.net:443/{container}/{blob}",
    }
    return json.dumps(record)


def write_logs(
    folder: Path,
    *,
    store_lines: list[str],
    source_root: Path,
    shards: Mapping[int, Shard],
    at: datetime,
) -> Path:
    """The store's log (given lines) and a generic CSV log of the old system.

    The CSV names the 130-day file by its absolute source path (read 5 days
    ago) and the 500-day partition relative to the dataset (15 days ago).
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "store.log").write_text("\n".join(store_lines) + "\n")
    old = source_root / f"events-{shards[130].day}.csv"
    rows = [
        "timestamp,path,bytes",
        f"{(at - timedelta(days=5)).isoformat()},{old},0",
        f"{(at - timedelta(days=15)).isoformat()},day={shards[500].day},0",
    ]
    (folder / "legacy.csv").write_text("\n".join(rows) + "\n")
    return folder


def store_reads(
    shards: Mapping[int, Shard], at: datetime
) -> list[tuple[str, datetime]]:
    """Reads the store's log records: the 250-day shard 100 days ago, plus a
    read of datamove's own manifest, which must not count."""
    return [
        (shards[250].path, at - timedelta(days=100)),
        ("_datamove/manifest.json", at - timedelta(days=1)),
    ]


def native_class(bucket: Any, key: str) -> str:
    protocol = bucket.server.protocol
    if protocol == "s3":
        head = bucket.fs.call_s3("head_object", Bucket=bucket.name, Key=key)
        return str(head.get("StorageClass", "STANDARD"))
    if protocol == "az":
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(
            bucket.server.storage_options["connection_string"]
        )
        properties = service.get_blob_client(bucket.name, key).get_blob_properties()
        return str(properties.blob_tier)
    bucket.fs.invalidate_cache()
    return str(bucket.fs.info(f"{bucket.name}/{key}")["storageClass"])
