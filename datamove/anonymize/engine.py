"""Apply a policy to record batches, before anything is written.

:class:`Anonymizer` is what the sharder calls: ``check`` once per source
schema (fail closed), ``output_schema`` to open writers, ``apply`` per batch.
Because every anonymized column is transformed before it reaches the Parquet
writer, the statistics, page indexes and bloom filters the writer builds only
ever see output values; no statistics need to be disabled. The output schema
carries no schema-level metadata and no field metadata on transformed columns,
since source metadata may describe raw values.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from datamove.anonymize import actions
from datamove.anonymize.actions import ActionTypeError, KeyedHasher
from datamove.anonymize.kanon import KAnonymityCounter
from datamove.anonymize.key import AnonKey
from datamove.anonymize.policy import (
    ColumnRule,
    DropRule,
    GeneralizeRule,
    HashRule,
    KeepRule,
    MaskRule,
    NoiseRule,
    Policy,
    RedactRule,
)
from datamove.anonymize.pseudonyms import PSEUDONYM_SCHEMA, concat_pairs
from datamove.errors import InputError, UsageError

logger = logging.getLogger(__name__)


class Anonymizer:
    """Applies one policy with one key.

    Args:
        policy: the parsed policy.
        key: the anonymization key; required when the policy hashes or adds
            noise.
        run_seed: mixes into ``noise`` with ``seed: run``. With a seed, the
            noise of a batch is a function of (key, seed, column, stream) and a
            re-run reproduces it; without one, noise is fresh OS randomness.
        memo: let ``hash`` reuse the digests of values this process has
            already hashed under the same key and domain, across batches,
            units and instances (see :class:`~datamove.anonymize.actions.DigestMemo`;
            the memo stays in the process and is never pickled). Tokens are
            the same either way.

    Raises:
        UsageError: the policy needs a key and none was given.

    Instances pickle (Dask ships them to workers) together with the key, so
    workers must run where raw data may go: on-prem.
    """

    def __init__(
        self,
        policy: Policy,
        key: AnonKey | None = None,
        run_seed: int | None = None,
        *,
        memo: bool = True,
    ) -> None:
        if policy.needs_key and key is None:
            columns = [
                name
                for name, rule in policy.rules.items()
                if isinstance(rule, HashRule | NoiseRule)
            ]
            raise UsageError(
                f"{policy.source}: columns {', '.join(columns)} need the anonymization "
                "key: export DATAMOVE_ANON_KEY or give a key file"
            )
        self.policy = policy
        self.key = key
        self.run_seed = run_seed
        self.memo = memo
        self._hashers: dict[str, KeyedHasher] = {}
        self._schemas: dict[pa.Schema, pa.Schema] = {}

    def __repr__(self) -> str:
        source, fingerprint = self.policy.source, self.key_fingerprint
        return f"Anonymizer(policy={source!r}, key_fingerprint={fingerprint!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_hashers"] = {}
        state["_schemas"] = {}
        return state

    @property
    def fails_closed(self) -> bool:
        """Whether :meth:`check` uses scan findings (not under ``default: keep``).

        When False, scanning the source for personal data before a sync only
        costs time: pass no findings to :meth:`check`.
        """
        return self.policy.default != "keep"

    @property
    def key_fingerprint(self) -> str | None:
        """The key's fingerprint, to record in receipts (None without a key)."""
        return self.key.fingerprint if self.key else None

    def receipt_fields(self) -> dict[str, Any]:
        """What a receipt should record about anonymization; no secrets."""
        return {
            "policy_sha256": self.policy.digest,
            "key_fingerprint": self.key_fingerprint,
            "columns": {name: rule.action for name, rule in self.policy.rules.items()},
        }

    def check(
        self, schema: pa.Schema, flagged: Mapping[str, str] | None = None
    ) -> None:
        """Validate the policy against a source schema, failing closed.

        Args:
            schema: the source schema.
            flagged: columns ``datamove scan`` flags as personal data, mapped to
                a description of what was found (see
                :func:`datamove.anonymize.detect.flagged_columns`).

        Raises:
            UsageError: a policy column is missing from the schema or its action
                does not fit its type; or, under ``default: fail``, a flagged
                column is not in the policy. Messages name policy lines.
        """
        self.policy.check_columns(schema)
        self.output_schema(schema)
        if not self.fails_closed or not flagged:
            return
        unmentioned = [
            f"{name} ({flagged[name]})"
            for name in schema.names
            if name in flagged and self.policy.rule(name) is None
        ]
        if unmentioned:
            raise UsageError(
                f"{self.policy.source}: columns flagged as personal data are not in "
                f"the policy: {'; '.join(unmentioned)}; give each an action under "
                "'columns:' ('keep' to pass it through) or set 'default: keep'"
            )

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """The schema ``apply`` produces from batches of ``schema``.

        Raises:
            UsageError: a rule does not fit its column's type (names the line).
        """
        cached = self._schemas.get(schema)
        if cached is not None:
            return cached
        output: list[pa.Field] = []
        problems: list[str] = []
        for field in schema:
            rule = self.policy.rule(field.name)
            if rule is None or isinstance(rule, KeepRule):
                output.append(field)
                continue
            try:
                data_type = actions.output_type(rule, field.type)
            except ActionTypeError as error:
                problems.append(
                    self.policy.problem(
                        rule.line,
                        f"column {field.name!r} has type {field.type}: {error}",
                    )
                )
                continue
            if data_type is not None:
                output.append(pa.field(field.name, data_type, nullable=True))
        if problems:
            raise UsageError(
                "\n".join(problems) + "\nchange those actions or the column types"
            )
        result = pa.schema(output)
        self._schemas[schema] = result
        return result

    def apply(self, batch: pa.RecordBatch, *, stream: str = "") -> pa.RecordBatch:
        """Anonymize one batch.

        Args:
            batch: source rows.
            stream: names this batch's place in the run, e.g.
                ``"part-00012/3"``; only ``noise`` with ``seed: run`` and a run
                seed uses it. Give every batch a distinct stream: the same
                stream under the same seed repeats the same noise.

        Returns:
            The anonymized batch, with :meth:`output_schema`.

        Raises:
            UsageError: a rule does not fit its column's type.
            InputError: an action failed on this batch's values (the message
                names the column, never a value).
        """
        return self._apply(batch, stream, pairs=None)

    def apply_with_pseudonyms(
        self, batch: pa.RecordBatch, *, stream: str = ""
    ) -> tuple[pa.RecordBatch, pa.Table]:
        """``apply`` plus the pseudonym pairs of the batch's hashed columns.

        Returns:
            (anonymized batch, table of distinct ``column, token, raw`` rows).
            The pairs hold raw values: write them on-prem only (see
            :func:`datamove.anonymize.pseudonyms.check_pseudonym_map_url`).
        """
        pairs: list[pa.Table] = []
        result = self._apply(batch, stream, pairs=pairs)
        return result, concat_pairs(pairs)

    def pseudonym_pairs(self, batch: pa.RecordBatch) -> pa.Table:
        """The distinct ``column, token, raw`` rows of ``batch``'s hashed columns."""
        pairs: list[pa.Table] = []
        for name in self.policy.columns_with("hash"):
            index = batch.schema.get_field_index(name)
            if index >= 0:
                self._hash(name, batch.column(index), pairs)
        return concat_pairs(pairs)

    def apply_table(self, table: pa.Table, *, stream: str = "") -> pa.Table:
        """``apply`` over every batch of ``table`` (streams ``stream/0``, ...)."""
        batches = [
            self.apply(batch, stream=f"{stream}/{number}")
            for number, batch in enumerate(table.to_batches())
        ]
        return pa.Table.from_batches(batches, schema=self.output_schema(table.schema))

    def iter_apply(
        self, batches: Iterator[pa.RecordBatch], *, stream: str = ""
    ) -> Iterator[pa.RecordBatch]:
        """``apply`` lazily over ``batches`` (streams ``stream/0``, ...)."""
        for number, batch in enumerate(batches):
            yield self.apply(batch, stream=f"{stream}/{number}")

    def kanon_counter(self, schema: pa.Schema) -> KAnonymityCounter | None:
        """A counter over the quasi-identifiers that survive into ``schema``.

        ``schema`` is the output schema (dropped quasi-identifiers identify
        nobody); None when no quasi-identifier is left. Feed it output batches.
        """
        columns = [
            name for name in self.policy.quasi_identifiers if name in schema.names
        ]
        return KAnonymityCounter(columns) if columns else None

    def _apply(
        self, batch: pa.RecordBatch, stream: str, pairs: list[pa.Table] | None
    ) -> pa.RecordBatch:
        schema = self.output_schema(batch.schema)
        arrays: list[pa.Array] = []
        for field, column in zip(batch.schema, batch.columns, strict=True):
            rule = self.policy.rule(field.name)
            if rule is None or isinstance(rule, KeepRule):
                arrays.append(column)
            elif not isinstance(rule, DropRule):
                arrays.append(self._transform(rule, column, stream, pairs))
        logger.debug(
            "batch %s: anonymized %d rows, %d columns out",
            stream or "-",
            batch.num_rows,
            len(arrays),
        )
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _transform(
        self,
        rule: ColumnRule,
        column: pa.Array,
        stream: str,
        pairs: list[pa.Table] | None,
    ) -> pa.Array:
        try:
            if isinstance(rule, HashRule):
                return self._hash(rule.column, column, pairs)
            if isinstance(rule, MaskRule):
                return actions.mask_array(column, rule)
            if isinstance(rule, RedactRule):
                return actions.redact_array(column, rule)
            if isinstance(rule, GeneralizeRule):
                return actions.generalize_array(column, rule)
            if isinstance(rule, NoiseRule):
                return self._noise(rule, column, stream)
        except (pa.ArrowException, ValueError, TypeError, OverflowError) as error:
            # Arrow's messages can quote a value; report the kind of failure only.
            raise InputError(
                f"column {rule.column!r}: {rule.action} failed "
                f"({type(error).__name__}); check the column's values against "
                f"{self.policy.source}:{rule.line}"
            ) from None
        raise UsageError(f"{self.policy.source}:{rule.line}: no action {rule.action!r}")

    def _hash(
        self, column: str, array: pa.Array, pairs: list[pa.Table] | None
    ) -> pa.Array:
        rule = self.policy.rules[column]
        assert isinstance(rule, HashRule)
        hasher = self._hasher(f"hash\x00{rule.domain}", memo=self.memo)
        if pairs is None:
            return actions.hash_tokens(array, rule, hasher)
        tokens, raw, distinct_tokens = actions.hash_array(array, rule, hasher)
        if len(raw):
            present = raw.is_valid()
            pairs.append(
                pa.table(
                    {
                        "column": pa.array(
                            [column] * int(present.true_count), pa.string()
                        ),
                        "token": distinct_tokens.filter(present),
                        "raw": raw.filter(present).cast(pa.string()),
                    },
                    schema=PSEUDONYM_SCHEMA,
                )
            )
        return tokens

    def _noise(self, rule: NoiseRule, column: pa.Array, stream: str) -> pa.Array:
        hasher: KeyedHasher | None = None
        rng: np.random.Generator | None = None
        if rule.seed == "keyed":
            hasher = self._hasher(f"noise\x00{rule.column}")
        elif self.run_seed is None:
            rng = np.random.default_rng()
        else:
            seed = self._hasher("noise-run").digests(
                [f"{self.run_seed}\x00{rule.column}\x00{stream}".encode()]
            )
            rng = np.random.default_rng(int.from_bytes(seed.tobytes(), "big"))
        offsets = actions.noise_offsets(column, rule, hasher=hasher, rng=rng)
        return actions.add_noise(column, offsets)

    def _hasher(self, purpose: str, *, memo: bool = False) -> KeyedHasher:
        hasher = self._hashers.get(purpose)
        if hasher is None:
            assert self.key is not None
            hasher = KeyedHasher(self.key.derive(purpose), memo=memo)
            self._hashers[purpose] = hasher
        return hasher
