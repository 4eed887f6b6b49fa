"""Where anonymization spends its time, measured in one process on one core.

    python benchmarks/anon_cost.py --size 256MiB --repeat 3 [--profile]

Uses the dataset and the policy of ``run.py``'s ``datamove-anon`` peer: the
generated transactions CSV (cached under ``--data-dir``), with
``customer_email`` and ``account_id`` hashed and ``card_number`` masked. Arrow
is held to one thread, so every figure is single-core work, and times are the
process's CPU seconds unless ``--clock wall``: on a machine shared with other
jobs, CPU time moves much less than elapsed time. It prints:

1. end to end, every unit in turn through the sharder's own ``write_unit``
   (read CSV, convert, write zstd Parquet with checksums): plain, and with the
   policy; plus reading alone and the fail-closed scan that ``sync`` runs
   first (sampling every file for personal data);
2. the transform alone on batches held in memory, per column;
3. the hash and mask steps one by one, per column;
4. the cost per value of the HMAC and of the Python objects around it.

Runs alternate plain and anonymized passes and the per-process digest memo is
cleared before every anonymized pass, so no pass profits from an earlier one.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import hmac
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from run import ANON_KEY, ANON_POLICY, parse_size, prepare_dataset  # noqa: E402

import datamove  # noqa: E402
from datamove.anonymize import (  # noqa: E402
    AnonKey,
    Anonymizer,
    HashRule,
    MaskRule,
    actions,
    parse_policy,
)
from datamove.anonymize.detect import flagged_columns, scan_table  # noqa: E402
from datamove.formats import BadRows, head_rows, read_piece  # noqa: E402
from datamove.options import SyncOptions  # noqa: E402
from datamove.planner import Plan  # noqa: E402
from datamove.schema import schema_to_json  # noqa: E402
from datamove.sharder import ShardJob, write_unit  # noqa: E402
from datamove.storage import Location  # noqa: E402

SCAN_ROWS = 10_000  # as datamove.orchestrator samples each file
CLOCKS: dict[str, Callable[[], float]] = {
    "cpu": time.process_time,
    "wall": time.perf_counter,
}
clock = CLOCKS["cpu"]


def anonymizer() -> Anonymizer:
    policy = parse_policy(ANON_POLICY, source="benchmark policy")
    return Anonymizer(policy, AnonKey(ANON_KEY.encode(), source="benchmark key"))


def clear_memo() -> None:
    actions.clear_digest_memo()


@contextmanager
def stopwatch(into: list[float]) -> Iterator[None]:
    start = clock()
    try:
        yield
    finally:
        into.append(clock() - start)


def batches(plan: Plan, source: Location, units: int) -> Iterator[pa.RecordBatch]:
    for unit in plan.to_write[:units]:
        # A unit may group several small files (``parts``); older plans had one.
        parts = getattr(unit, "parts", None)
        pieces = (
            [(part.piece, part.size) for part in parts]
            if parts is not None
            else [(unit.piece, unit.source_size)]
        )
        for piece, size in pieces:
            bad_rows = BadRows("fail", piece.relpath)
            for batch, _ in read_piece(source.fs, piece, plan.schema, size, bad_rows):
                yield batch


def sync_units(
    plan: Plan, source: Location, work: Path, transform: Anonymizer | None, units: int
) -> None:
    """What one worker does for ``units`` units, minus Dask."""
    dest = work / "out"
    shutil.rmtree(dest, ignore_errors=True)
    job = ShardJob(
        source=source,
        dest=Location.parse(str(dest)),
        schema=schema_to_json(plan.schema),
        options=SyncOptions(),
        run_id=plan.run_id,
        transform=transform,
    )
    for unit in plan.to_write[:units]:
        write_unit(unit, job)


def fail_closed_scan(plan: Plan, source: Location) -> None:
    samples = [
        head_rows(source.fs, u.piece, plan.schema, u.source_size, SCAN_ROWS)
        for u in plan.to_write
    ]
    anonymizer().check(
        plan.schema, flagged_columns(scan_table(pa.concat_tables(samples)))
    )


def end_to_end(
    plan: Plan, source: Location, work: Path, repeat: int, units: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"read": [], "plain": [], "anon": [], "scan": []}
    for _ in range(repeat):
        with stopwatch(times["read"]):
            for _ in batches(plan, source, units):
                pass
        with stopwatch(times["plain"]):
            sync_units(plan, source, work, None, units)
        clear_memo()
        transform = anonymizer()
        with stopwatch(times["anon"]):
            sync_units(plan, source, work, transform, units)
        with stopwatch(times["scan"]):
            fail_closed_scan(plan, source)
    return times


def transform_alone(held: list[pa.RecordBatch], repeat: int) -> dict[str, list[float]]:
    """The whole policy, then each rule alone, over batches held in memory.

    Hash rules run with the memo and without it. ``postcode``, which the
    policy does not hash, shows a column whose values come back across
    batches (about 90,000 postcodes), unlike the benchmark's mostly unique
    emails and account ids.
    """
    policy = parse_policy(ANON_POLICY, source="benchmark policy")
    lines = dict(
        line.strip().split(": ", 1)
        for line in ANON_POLICY.splitlines()
        if line.startswith("  ")
    )
    lines["postcode"] = "{action: hash}"
    cases: list[tuple[str, str, bool]] = [
        ("whole policy, memo", ANON_POLICY, True),
        ("whole policy, no memo", ANON_POLICY, False),
    ]
    for name, rule_text in lines.items():
        text = f"default: keep\ncolumns:\n  {name}: {rule_text}\n"
        rule = policy.rules.get(name)
        action = rule.action if rule is not None else "hash"
        if action == "hash":
            cases.append((f"{name} (hash), memo", text, True))
            cases.append((f"{name} (hash), no memo", text, False))
        else:
            cases.append((f"{name} ({action})", text, False))
    key = AnonKey(ANON_KEY.encode(), source="benchmark key")
    times: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    for _ in range(repeat):
        for label, text, memo in cases:
            clear_memo()
            transform = Anonymizer(parse_policy(text, source="p"), key, memo=memo)
            with stopwatch(times[label]):
                for number, batch in enumerate(held):
                    transform.apply(batch, stream=f"0/{number}")
    return times


class Laps:
    """Adds the time since the previous lap to a named step."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.start = clock()

    def restart(self) -> None:
        self.start = clock()

    def lap(self, step: str) -> None:
        now = clock()
        self.totals[step] = self.totals.get(step, 0.0) + now - self.start
        self.start = now


def hash_steps(held: list[pa.RecordBatch], column: str) -> dict[str, float]:
    """The steps of ``hash_array`` on one column, each timed over every batch.

    Without the memo: this is the work for values the memo does not know.
    """
    rule = parse_policy(ANON_POLICY, source="p").rules[column]
    assert isinstance(rule, HashRule)
    key = AnonKey(ANON_KEY.encode(), source="benchmark key")
    hasher = actions.KeyedHasher(key.derive(f"hash\x00{rule.domain}"))
    laps = Laps()
    for batch in held:
        array = batch.column(column)
        laps.restart()
        if actions.native_hashing():
            # As hash_tokens does it in C: every row, no deduplication.
            text = actions.normalize_text(actions.as_text(array), rule.normalize)
            laps.lap("as text, normalize")
            digests = hasher.digest_text(text)
            laps.lap("HMAC in C")
            actions.hex_tokens(digests, rule.length, rule.prefix)
            laps.lap("hex tokens")
            continue
        values, indices = actions.distinct(array)
        laps.lap("distinct")
        text = actions.as_text(values)
        laps.lap("as text")
        text = actions.normalize_text(text, rule.normalize)
        laps.lap("normalize")
        messages = actions.messages(text)
        laps.lap("to bytes")
        digests = hasher.digests(messages)
        laps.lap("HMAC loop")
        tokens = actions.hex_tokens(digests, rule.length, rule.prefix)
        laps.lap("hex tokens")
        pc.take(tokens, indices)
        laps.lap("take")
    return laps.totals


def mask_steps(held: list[pa.RecordBatch], column: str) -> dict[str, float]:
    rule = parse_policy(ANON_POLICY, source="p").rules[column]
    assert isinstance(rule, MaskRule)
    laps = Laps()
    for batch in held:
        array = batch.column(column)
        laps.restart()
        text = actions.as_text(actions.plain(array))
        laps.lap("as text")
        actions.mask_text(text, rule)
        laps.lap("mask")
    return laps.totals


def per_value_costs(held: list[pa.RecordBatch], column: str) -> dict[str, float]:
    """Nanoseconds per value of the pieces of an HMAC, on distinct real values."""
    values = pc.unique(pa.chunked_array([b.column(column) for b in held]))
    binary = actions.as_text(values.drop_null()).cast(pa.binary())
    messages: list[bytes] = binary.to_pylist()
    count = len(messages)
    # In batch-sized calls, as the sharder's batches make them; the memo
    # passes take as many as its byte budget holds, so that none is evicted.
    chunks = [messages[at : at + 8192] for at in range(0, count, 8192)]
    fits = int(actions.MEMO_BYTES * 0.8) // (60 + 140)
    memo_chunks = [chunk for chunk in chunks[: fits // 8192] if chunk]
    memo_count = sum(map(len, memo_chunks))
    subkey = hashlib.sha256(b"benchmark subkey").digest()
    hasher = actions.KeyedHasher(subkey)
    memoized = actions.KeyedHasher(subkey, memo=True)
    results: dict[str, float] = {}

    def per_value(label: str, call: Callable[[], Any], values: int = count) -> None:
        best = min(_once(call) for _ in range(3))
        results[label] = best / values * 1e9

    def through_memo() -> None:
        for chunk in memo_chunks:
            memoized.digests(chunk)

    def through_empty_memo() -> None:
        clear_memo()
        through_memo()

    per_value("binary array to list of bytes", lambda: binary.to_pylist())
    per_value(
        "sha256(value).digest() (one hash)",
        lambda: [hashlib.sha256(m).digest() for m in messages],
    )
    per_value(
        "hmac.new(key, value, sha256).digest()",
        lambda: [hmac.new(subkey, m, hashlib.sha256).digest() for m in messages],
    )
    per_value(
        "hmac.digest(key, value, 'sha256')",
        lambda: [hmac.digest(subkey, m, "sha256") for m in messages],
    )
    per_value(
        "KeyedHasher.digests (copied pad states)",
        lambda: [hasher.digests(chunk) for chunk in chunks],
    )
    if actions.native_hashing():
        arrays = [binary.slice(at, 8192) for at in range(0, count, 8192)]
        per_value(
            "KeyedHasher.digest_text (in C)",
            lambda: [hasher.digest_text(array) for array in arrays],
        )
    # Keep the memo from pausing: these passes measure its two paths.
    pause_below, actions.MEMO_MIN_HIT_RATE = actions.MEMO_MIN_HIT_RATE, 0.0
    try:
        per_value(
            "memo, unknown values (lookup, HMAC, insert)",
            through_empty_memo,
            memo_count,
        )
        through_memo()
        per_value("memo, known values (lookup)", through_memo, memo_count)
    finally:
        actions.MEMO_MIN_HIT_RATE = pause_below
        clear_memo()
    results["distinct values"] = float(count)
    return results


def _once(call: Callable[[], Any]) -> float:
    start = clock()
    call()
    return clock() - start


def profile(held: list[pa.RecordBatch]) -> None:
    clear_memo()
    transform = anonymizer()
    profiler = cProfile.Profile()
    profiler.enable()
    for number, batch in enumerate(held):
        transform.apply(batch, stream=f"0/{number}")
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


def _summary(samples: list[float]) -> str:
    runs = " ".join(f"{s:.2f}" for s in samples)
    return f"{min(samples):7.2f} {statistics.median(samples):7.2f}   [{runs}]"


def report_end_to_end(times: dict[str, list[float]], megabytes: float) -> None:
    path = (
        "in C"
        if actions.native_hashing()
        else "in Python (DATAMOVE_NATIVE=0 or not built)"
    )
    print(f"\nthe keyed hash runs {path}")
    print(f"\n1. end to end, one core, {megabytes:.0f} MB of CSV")
    print(f"{'':34} {'best':>7} {'median':>7}   [runs]   MB/s (best)")
    labels = {
        "read": "read CSV only",
        "plain": "read + write Parquet (plain)",
        "anon": "read + anonymize + write",
        "scan": "fail-closed scan (once per sync)",
    }
    for name, label in labels.items():
        best = min(times[name])
        print(f"{label:34} {_summary(times[name])}   {megabytes / best:6.1f}")
    plain, anon = min(times["plain"]), min(times["anon"])
    paired = [a / p for p, a in zip(times["plain"], times["anon"], strict=True)]
    print(
        f"anonymize cost (best against best): time +{anon / plain - 1:.1%}, "
        f"throughput -{1 - plain / anon:.1%}; per pair: "
        + " ".join(f"+{ratio - 1:.1%}" for ratio in paired)
    )
    with_scan = anon + min(times["scan"])
    print(
        f"with the scan: time +{with_scan / plain - 1:.1%}, "
        f"throughput -{1 - plain / with_scan:.1%}"
        + (
            ""
            if anonymizer().fails_closed
            else " (the policy has default: keep, so sync skips the scan)"
        )
    )


def report_table(title: str, totals: dict[str, float], rows: int) -> None:
    print(f"\n{title}")
    whole = sum(totals.values())
    for step, seconds in totals.items():
        print(
            f"  {step:32} {seconds:7.3f} s {seconds / whole:6.1%}"
            f" {seconds / rows * 1e9:7.0f} ns/row"
        )
    print(f"  {'total':32} {whole:7.3f} s         {whole / rows * 1e9:7.0f} ns/row")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256MiB", help="CSV size (run.py's)")
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=HERE / "results" / "data")
    parser.add_argument("--repeat", type=int, default=3, help="passes per figure")
    parser.add_argument(
        "--units", type=int, default=0, help="units end to end (default: all)"
    )
    parser.add_argument(
        "--held-batches",
        type=int,
        default=33,
        help="batches held in memory for 2-4 (default: one 64 MiB file's)",
    )
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile the policy")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="cpu: this process's CPU seconds, steadier on a shared machine"
        " (default); wall: elapsed seconds",
    )
    arguments = parser.parse_args(argv)
    global clock
    clock = CLOCKS[arguments.clock]
    print(f"clock: {arguments.clock} seconds", flush=True)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)

    dataset = prepare_dataset(
        arguments.data_dir, parse_size(arguments.size), arguments.files, arguments.seed
    )
    work = Path(tempfile.mkdtemp(prefix="anon-cost-"))
    try:
        plan = datamove.plan(str(dataset.directory), str(work / "out"))
        source = Location.parse(str(dataset.directory))
        units = arguments.units or len(plan.to_write)
        megabytes = sum(u.input_bytes for u in plan.to_write[:units]) / 1e6
        if not arguments.skip_end_to_end:
            report_end_to_end(
                end_to_end(plan, source, work, arguments.repeat, units), megabytes
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    held = list(islice(batches(plan, source, 1), arguments.held_batches))
    rows = sum(b.num_rows for b in held)
    print(f"\n2. transform alone: {rows} rows in {len(held)} batches held in memory")
    for label, samples in transform_alone(held, arguments.repeat).items():
        best = min(samples)
        print(f"  {label:32} {_summary(samples)}  {rows / best / 1e6:5.2f} M rows/s")
    policy = parse_policy(ANON_POLICY, source="p")
    for name in policy.columns_with("hash"):
        report_table(f"3. hash steps, {name} (no memo)", hash_steps(held, name), rows)
    for name in policy.columns_with("mask"):
        report_table(f"3. mask steps, {name}", mask_steps(held, name), rows)
    for name in policy.columns_with("hash"):
        print(f"\n4. per distinct value of {name}, ns")
        for label, value in per_value_costs(held, name).items():
            print(f"  {label:42} {value:9.0f}")
    if arguments.profile:
        profile(held)
    return 0


if __name__ == "__main__":
    sys.exit(main())
