"""Anonymization end to end: datamove sync --anonymize, and nothing leaks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pytest

import datamove
from tests.anonymize.helpers import KEY_TEXT, OTHER_KEY_TEXT, POLICY_TEXT, customers

ANONYMIZED = ["email", "card_number", "phone", "notes", "ssn", "ip", "zip"]


@pytest.fixture
def claims(tmp_path: Path) -> Path:
    source = tmp_path / "claims"
    source.mkdir()
    for seed in (1, 2):
        pacsv.write_csv(customers(seed, rows=400), source / f"part-{seed}.csv")
    (tmp_path / "policy.yaml").write_text(POLICY_TEXT)
    (tmp_path / "key").write_text(KEY_TEXT)
    (tmp_path / "other-key").write_text(OTHER_KEY_TEXT)
    return source


def _raw_values(source: Path) -> set[str]:
    table = ds.dataset(str(source), format="csv").to_table()
    values: set[str] = set()
    for column in ANONYMIZED:
        for value in table.column(column).to_pylist():
            text = "" if value is None else str(value)
            if len(text) >= 8:  # shorter strings occur by chance in any bytes
                values.add(text)
    return values


def test_sync_with_policy_leaks_nothing(claims: Path, tmp_path: Path) -> None:
    dest = tmp_path / "lake"
    command = [
        sys.executable, "-m", "datamove.cli", "sync", str(claims), str(dest),
        "--anonymize", str(tmp_path / "policy.yaml"),
        "--anon-key", str(tmp_path / "key"),
        "--compression", "none", "--workers", "1", "-vv", "--json",
        "--report", str(tmp_path / "report.json"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rows_written"] == 800
    kanon = report["extra"]["k_anonymity"]
    assert kanon["rows"] == 800 and kanon["smallest_group"] >= 1

    table = ds.dataset(str(dest), format="parquet").to_table()
    assert "ssn" not in table.column_names
    assert all(v.startswith("em_") for v in table.column("email").to_pylist())
    # A generalization may map a value onto itself (an IP ending in .0): that
    # value is then the output, not a leak.
    outputs = {
        str(value)
        for name in table.column_names
        for value in table.column(name).to_pylist()
    }
    raw = _raw_values(claims) - outputs
    texts = [result.stdout, result.stderr, (tmp_path / "report.json").read_text()]
    for path in dest.rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("latin-1"))
    leaks = [value for value in raw for text in texts if value in text]
    assert not leaks, leaks[:5]
    assert KEY_TEXT not in "".join(texts)


def test_tokens_are_deterministic_and_key_bound(claims: Path, tmp_path: Path) -> None:
    policy = str(tmp_path / "policy.yaml")
    key = str(tmp_path / "key")
    first = tmp_path / "one"
    second = tmp_path / "two"
    for dest in (first, second):
        datamove.sync(str(claims), str(dest), workers=1, anonymize=policy, anon_key=key)
    one = ds.dataset(str(first)).to_table().sort_by("customer_id")
    two = ds.dataset(str(second)).to_table().sort_by("customer_id")
    assert one.column("email").equals(two.column("email"))
    with pytest.raises(datamove.UsageError, match="key"):
        datamove.sync(
            str(claims),
            str(first),
            workers=1,
            anonymize=policy,
            anon_key=str(tmp_path / "other-key"),
        )


def test_fail_closed_on_unmentioned_pii(claims: Path, tmp_path: Path) -> None:
    narrow = tmp_path / "narrow.yaml"
    narrow.write_text("default: fail\ncolumns:\n  ssn: drop\n")
    with pytest.raises(datamove.UsageError) as caught:
        datamove.sync(
            str(claims), str(tmp_path / "lake"), workers=1, anonymize=str(narrow)
        )
    assert "email" in str(caught.value)
    assert not (tmp_path / "lake").exists()


def test_scan_suggests_a_policy_that_sync_accepts(claims: Path, tmp_path: Path) -> None:
    scan = [sys.executable, "-m", "datamove.cli", "scan", str(claims)]
    listed = subprocess.run(scan, capture_output=True, text=True)
    assert listed.returncode == 0 and "email" in listed.stdout
    suggested = subprocess.run([*scan, "--suggest"], capture_output=True, text=True)
    policy = tmp_path / "suggested.yaml"
    policy.write_text(suggested.stdout)
    report = datamove.sync(
        str(claims),
        str(tmp_path / "lake"),
        workers=1,
        anonymize=str(policy),
        anon_key=str(tmp_path / "key"),
    )
    assert report.rows_written == 800
    emails = pa.Table.from_batches(
        ds.dataset(str(tmp_path / "lake")).to_batches(columns=["email"])
    )
    raw = set(
        ds.dataset(str(claims), format="csv").to_table().column("email").to_pylist()
    )
    assert not raw & set(emails.column("email").to_pylist())


def test_pseudonym_map_stays_on_prem_and_reidentifies(
    claims: Path, tmp_path: Path
) -> None:
    policy = str(tmp_path / "policy.yaml")
    key = str(tmp_path / "key")
    mapping = tmp_path / "on-prem-map"
    with pytest.raises(datamove.UsageError, match="on-prem"):
        datamove.sync(str(claims), str(tmp_path / "lake"), workers=1,
                      anonymize=policy, anon_key=key,
                      pseudonym_map="s3://cloud-bucket/map")  # fmt: skip
    datamove.sync(str(claims), str(tmp_path / "lake"), workers=1, anonymize=policy,
                  anon_key=key, pseudonym_map=str(mapping))  # fmt: skip
    pairs = ds.dataset(str(mapping), format="parquet").to_table().to_pylist()
    by_token = {(p["column"], p["token"]): p["raw"] for p in pairs}
    written = ds.dataset(str(tmp_path / "lake")).to_table().sort_by("customer_id")
    raw = ds.dataset(str(claims), format="csv").to_table().sort_by("customer_id")
    for token, email in zip(
        written.column("email").to_pylist(),
        raw.column("email").to_pylist(),
        strict=True,
    ):
        assert by_token[("email", token)].strip().lower() == email.strip().lower()
    assert not any(str(mapping) in str(p) for p in (tmp_path / "lake").rglob("*"))
