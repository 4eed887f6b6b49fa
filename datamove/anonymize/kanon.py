"""k-anonymity of the anonymized output over its quasi-identifier columns.

A quasi-identifier (a postcode prefix, a birth year) identifies nobody alone
but may in combination. Rows sharing one combination of quasi-identifier
values form a group; a table is k-anonymous when every group has at least k
rows. :class:`KAnonymityCounter` counts group sizes batch by batch; counters
from different shards or workers merge by adding their counts, so the figure
for a whole run is exact however the rows were split. Null is a value like any
other here: rows with a null quasi-identifier form their own group.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_COUNT = "__datamove_group_size__"
_COMPACT_ROWS = 1_000_000
_COMPACT_PARTS = 64


@dataclass(frozen=True)
class KAnonymityReport:
    """Group-size figures over ``columns``.

    ``smallest_group`` is None when no rows were counted; ``rows_below_k`` and
    ``groups_below_k`` count rows and groups in groups smaller than ``k``.
    """

    columns: tuple[str, ...]
    k: int
    rows: int
    groups: int
    smallest_group: int | None
    rows_below_k: int
    groups_below_k: int

    @property
    def satisfied(self) -> bool:
        """Whether every group has at least ``k`` rows."""
        return self.rows_below_k == 0

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready values."""
        data = asdict(self)
        data["columns"] = list(self.columns)
        data["satisfied"] = self.satisfied
        return data


class KAnonymityCounter:
    """Mergeable counts of rows per quasi-identifier combination.

    Args:
        columns: the quasi-identifier columns, as named in the batches fed to
            :meth:`update`.

    Raises:
        ValueError: ``columns`` is empty.
    """

    def __init__(self, columns: Sequence[str]) -> None:
        if not columns:
            raise ValueError("a k-anonymity counter needs at least one column")
        self.columns = tuple(columns)
        self._parts: list[pa.Table] = []
        self._pending_rows = 0

    def __repr__(self) -> str:
        return f"KAnonymityCounter(columns={list(self.columns)!r})"

    def update(self, data: pa.RecordBatch | pa.Table) -> None:
        """Count the rows of ``data`` (which must hold every counted column).

        Raises:
            KeyError: a counted column is missing from ``data``.
        """
        missing = [name for name in self.columns if name not in data.schema.names]
        if missing:
            raise KeyError(f"k-anonymity columns missing from the batch: {missing}")
        table = (
            pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
        )
        keys = table.select(list(self.columns))
        keys = pa.table(
            [_decoded(column) for column in keys.columns], names=keys.column_names
        )
        if keys.num_rows == 0:
            return
        grouped = keys.group_by(list(self.columns), use_threads=False).aggregate(
            [([], "count_all")]
        )
        ordered = grouped.select([*self.columns, "count_all"])
        self._add(ordered.rename_columns([*self.columns, _COUNT]))

    def merge(self, other: KAnonymityCounter) -> KAnonymityCounter:
        """Add ``other``'s counts to this counter; returns this counter.

        Raises:
            ValueError: the counters count different columns.
        """
        if other.columns != self.columns:
            raise ValueError(
                f"cannot merge k-anonymity counts over {list(other.columns)} into "
                f"counts over {list(self.columns)}"
            )
        for part in other._parts:
            self._add(part)
        return self

    def counts(self) -> pa.Table:
        """One row per group: the quasi-identifier values and ``group_size``."""
        self._compact()
        table = self._parts[0] if self._parts else self._empty()
        return table.rename_columns([*self.columns, "group_size"])

    def report(self, k: int) -> KAnonymityReport:
        """The figures for threshold ``k``."""
        self._compact()
        sizes = (
            self._parts[0].column(_COUNT).to_numpy()
            if self._parts
            else np.array([], dtype=np.int64)
        )
        small = sizes[sizes < k]
        return KAnonymityReport(
            columns=self.columns,
            k=k,
            rows=int(sizes.sum()),
            groups=int(sizes.size),
            smallest_group=int(sizes.min()) if sizes.size else None,
            rows_below_k=int(small.sum()),
            groups_below_k=int(small.size),
        )

    def to_ipc(self) -> bytes:
        """The counts as Arrow IPC bytes, to ship between processes."""
        self._compact()
        sink = io.BytesIO()
        table = self._parts[0] if self._parts else self._empty()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue()

    @classmethod
    def from_ipc(cls, data: bytes) -> KAnonymityCounter:
        """A counter rebuilt from :meth:`to_ipc` bytes."""
        table = pa.ipc.open_stream(data).read_all()
        counter = cls([name for name in table.column_names if name != _COUNT])
        if table.num_rows:
            counter._add(table)
        return counter

    @staticmethod
    def merged(counters: Iterable[KAnonymityCounter]) -> KAnonymityCounter:
        """One counter holding the sum of ``counters`` (at least one).

        Raises:
            ValueError: ``counters`` is empty or count different columns.
        """
        items = list(counters)
        if not items:
            raise ValueError("no k-anonymity counters to merge")
        total = KAnonymityCounter(items[0].columns)
        for counter in items:
            total.merge(counter)
        return total

    def _empty(self) -> pa.Table:
        return pa.table(
            {
                **{name: pa.array([], pa.null()) for name in self.columns},
                _COUNT: pa.array([], pa.int64()),
            }
        )

    def _add(self, part: pa.Table) -> None:
        self._parts.append(part)
        self._pending_rows += part.num_rows
        if self._pending_rows > _COMPACT_ROWS or len(self._parts) > _COMPACT_PARTS:
            self._compact()

    def _compact(self) -> None:
        if len(self._parts) <= 1:
            return
        combined = pa.concat_tables(self._parts, promote_options="permissive")
        summed = combined.group_by(list(self.columns), use_threads=False).aggregate(
            [(_COUNT, "sum")]
        )
        ordered = summed.select([*self.columns, f"{_COUNT}_sum"])
        self._parts = [ordered.rename_columns([*self.columns, _COUNT])]
        self._pending_rows = 0


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        return pc.cast(column, column.type.value_type)
    return column
