"""Reports: what a sync or a verify did, as frozen, JSON-serialisable data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SyncReport:
    """The outcome of one sync run.

    ``status`` is ``ok``, ``noop`` (nothing to do), ``dry-run`` or ``failed``.
    """

    status: str
    source: str
    dest: str
    run_id: str
    rows_written: int = 0
    shards_written: int = 0
    shards_skipped: int = 0
    shards_deleted: int = 0
    units_written: int = 0
    units_failed: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    bad_rows: int = 0
    retries: int = 0
    retry_causes: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    executor: str = ""
    workers: tuple[str, ...] = ()
    failed: tuple[dict[str, str], ...] = ()
    plan: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "noop", "dry-run")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed"] = [dict(item) for item in self.failed]
        data["workers"] = list(self.workers)
        if self.plan is None:
            data.pop("plan")
        return data


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of verifying a destination against its manifest."""

    dest: str
    deep: bool
    shards_checked: int
    rows_checked: int
    problems: tuple[str, ...]
    run_id: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def status(self) -> str:
        return "ok" if self.ok else "failed"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status
        data["problems"] = list(self.problems)
        return data
