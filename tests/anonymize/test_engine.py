"""The Anonymizer: determinism, keys, fail-closed checks, pseudonym maps."""

from __future__ import annotations

import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from datamove.anonymize import (
    PSEUDONYM_SCHEMA,
    AnonKey,
    Anonymizer,
    Policy,
    check_pseudonym_map_url,
    flagged_columns,
    is_on_prem_url,
    merge_pseudonym_pairs,
    parse_policy,
    scan_table,
)
from datamove.errors import UsageError
from tests.anonymize.helpers import customers


def _write_and_read(anonymizer: Anonymizer, table: pa.Table, path: Path) -> pa.Table:
    with pq.ParquetWriter(path, anonymizer.output_schema(table.schema)) as writer:
        for number, batch in enumerate(table.to_batches(max_chunksize=64)):
            writer.write_batch(anonymizer.apply(batch, stream=f"{path.name}/{number}"))
    return pq.read_table(path)


def test_same_key_same_tokens_across_runs_and_files(
    policy: Policy, key: AnonKey, tmp_path: Path
) -> None:
    first_file = customers(1)
    second_file = pa.concat_tables([customers(2), customers(1).slice(0, 50)])

    run_one = _write_and_read(
        Anonymizer(policy, key, run_seed=1), first_file, tmp_path / "a"
    )
    run_two = _write_and_read(
        Anonymizer(policy, key, run_seed=2), second_file, tmp_path / "b"
    )
    again = _write_and_read(
        Anonymizer(policy, key, run_seed=3), first_file, tmp_path / "c"
    )

    assert run_one.column("email") == again.column("email")
    assert run_one.column("balance") == again.column("balance")  # keyed noise
    shared = run_one.column("email").to_pylist()[:50]
    assert run_two.column("email").to_pylist()[-50:] == shared
    assert len(set(shared)) == len(set(first_file.column("email").to_pylist()[:50]))


def test_tokens_join_two_tables_like_the_raw_values(
    policy: Policy, key: AnonKey
) -> None:
    anonymizer = Anonymizer(policy, key)
    orders_policy = parse_policy(
        "columns:\n"
        "  email: {action: hash, length: 24, prefix: em_, normalize: [trim, lower]}\n"
    )
    raw_customers = customers(3)
    raw_orders = pa.table(
        {
            "email": pc.utf8_upper(raw_customers.column("email")).take([5, 5, 9, 120]),
            "total": [1.0, 2.0, 3.0, 4.0],
        }
    )

    out_customers = anonymizer.apply_table(raw_customers)
    out_orders = Anonymizer(orders_policy, key).apply_table(raw_orders)

    joined = out_orders.join(out_customers.select(["email", "customer_id"]), "email")
    assert sorted(joined.column("customer_id").to_pylist()) == sorted(
        raw_customers.column("customer_id").take([5, 5, 9, 120]).to_pylist()
    )


def test_a_different_key_gives_different_tokens(
    policy: Policy, key: AnonKey, other_key: AnonKey
) -> None:
    table = customers(4)

    mine = Anonymizer(policy, key).apply_table(table).column("email").to_pylist()
    theirs = (
        Anonymizer(policy, other_key).apply_table(table).column("email").to_pylist()
    )

    assert not set(mine) & set(theirs)


def test_a_policy_that_hashes_needs_a_key(policy: Policy) -> None:
    with pytest.raises(
        UsageError, match="columns email, balance need the anonymization key"
    ):
        Anonymizer(policy, None)


def test_run_noise_is_reproducible_per_seed_and_stream(key: AnonKey) -> None:
    policy = parse_policy("columns:\n  v: {action: noise, scale: 100}\n")
    batch = pa.record_batch({"v": pa.array([0.0] * 200)})

    def noise(seed: int | None, stream: str) -> list[float]:
        values: list[float] = (
            Anonymizer(policy, key, seed).apply(batch, stream=stream)["v"].to_pylist()
        )
        return values

    assert noise(7, "part-1/0") == noise(7, "part-1/0")
    assert noise(7, "part-1/0") != noise(7, "part-1/1")
    assert noise(7, "part-1/0") != noise(8, "part-1/0")
    assert noise(None, "part-1/0") != noise(None, "part-1/0")


def test_fail_closed_lists_flagged_columns_the_policy_does_not_mention(
    key: AnonKey,
) -> None:
    table = customers(5)
    flagged = flagged_columns(scan_table(table))
    policy = parse_policy("columns:\n  email: hash\n  ssn: drop\n", source="p.yaml")

    with pytest.raises(UsageError) as caught:
        Anonymizer(policy, key).check(table.schema, flagged)

    message = str(caught.value)
    assert message.startswith("p.yaml: columns flagged as personal data")
    for name in ("card_number", "phone", "ip", "birth_date"):
        assert f"{name} (" in message
    assert "credit_card, 100% of 200 sampled values" in message
    assert "email (" not in message
    assert "set 'default: keep'" in message


def test_default_keep_and_explicit_keep_let_flagged_columns_through(
    key: AnonKey,
) -> None:
    table = customers(5)
    flagged = flagged_columns(scan_table(table))
    lenient = parse_policy("default: keep\ncolumns:\n  email: hash\n")
    explicit = parse_policy(
        "columns:\n  email: hash\n  ssn: drop\n  card_number: keep\n  phone: keep\n"
        "  ip: keep\n  birth_date: keep\n"
    )

    Anonymizer(lenient, key).check(table.schema, flagged)
    Anonymizer(explicit, key).check(table.schema, flagged)


def test_check_reports_missing_policy_columns(key: AnonKey) -> None:
    policy = parse_policy("columns:\n  mail: hash\n", source="p.yaml")

    with pytest.raises(
        UsageError, match=r"p\.yaml:2: column 'mail' is not in the data"
    ):
        Anonymizer(policy, key).check(customers(1).schema, {})


def test_pseudonym_pairs_map_tokens_back_to_raw_values(
    policy: Policy, key: AnonKey
) -> None:
    table = customers(6)
    anonymizer = Anonymizer(policy, key)
    batch = table.to_batches()[0]

    out, pairs = anonymizer.apply_with_pseudonyms(batch)

    assert pairs.schema == PSEUDONYM_SCHEMA
    assert pairs == anonymizer.pseudonym_pairs(batch)
    lookup = dict(
        zip(
            pairs.column("token").to_pylist(),
            pairs.column("raw").to_pylist(),
            strict=True,
        )
    )
    for token, raw in zip(
        out["email"].to_pylist(), batch["email"].to_pylist(), strict=True
    ):
        assert lookup[token] == raw
    assert set(pairs.column("column").to_pylist()) == {"email"}


def test_pseudonym_pairs_merge_across_batches(policy: Policy, key: AnonKey) -> None:
    anonymizer = Anonymizer(policy, key)
    table = customers(7)
    parts = [anonymizer.pseudonym_pairs(b) for b in table.to_batches(max_chunksize=30)]
    parts.append(anonymizer.pseudonym_pairs(table.to_batches(max_chunksize=30)[0]))

    merged = merge_pseudonym_pairs(parts)

    assert merged.num_rows == len(set(table.column("email").to_pylist()))
    assert merge_pseudonym_pairs([]).num_rows == 0


@pytest.mark.parametrize(
    "url",
    [
        "/srv/maps/pseudonyms.parquet",
        "file:///srv/maps/p.parquet",
        "hdfs://namenode/maps/p.parquet",
        "sftp://vault/maps/p.parquet",
        "C:\\maps\\p.parquet",
    ],
)
def test_pseudonym_map_on_prem_locations_are_allowed(url: str) -> None:
    assert is_on_prem_url(url)
    check_pseudonym_map_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "s3://lake/maps/p.parquet",
        "gs://lake/p.parquet",
        "gcs://lake/p.parquet",
        "az://c/p.parquet",
        "abfs://c@acct.dfs.core.windows.net/p.parquet",
        "abfss://c@acct.dfs.core.windows.net/p.parquet",
        "https://example.com/p.parquet",
        "simplecache::s3://lake/p.parquet",
        "somethingnew://x/p.parquet",
    ],
)
def test_pseudonym_map_cloud_locations_are_refused_unless_forced(url: str) -> None:
    assert not is_on_prem_url(url)
    with pytest.raises(UsageError, match="must stay on-prem"):
        check_pseudonym_map_url(url)
    check_pseudonym_map_url(url, force=True)


def test_anonymizer_pickles_and_still_gives_the_same_tokens(
    policy: Policy, key: AnonKey
) -> None:
    anonymizer = Anonymizer(policy, key)
    table = customers(8)
    before = anonymizer.apply_table(table)

    copy = pickle.loads(pickle.dumps(anonymizer))

    assert copy.apply_table(table).column("email") == before.column("email")
    assert repr(copy) == repr(anonymizer)


def test_receipt_fields_and_repr_hold_no_secret(policy: Policy, key: AnonKey) -> None:
    anonymizer = Anonymizer(policy, key)

    fields = anonymizer.receipt_fields()

    assert fields["key_fingerprint"] == key.fingerprint
    assert fields["policy_sha256"] == policy.digest
    assert fields["columns"]["email"] == "hash"
    assert "k3y-For-Tests" not in repr(fields) + repr(anonymizer)


def test_iter_apply_streams_batches(policy: Policy, key: AnonKey) -> None:
    table = customers(9)
    anonymizer = Anonymizer(policy, key)

    batches = list(anonymizer.iter_apply(iter(table.to_batches(max_chunksize=50))))

    assert [b.num_rows for b in batches] == [50, 50, 50, 50]
    assert pa.Table.from_batches(batches).column("email") == anonymizer.apply_table(
        table
    ).column("email")
