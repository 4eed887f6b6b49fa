"""The destination lease: one writing run per destination at a time.

A run that is about to write takes ``DST/_datamove/lease.json``: its owner
(host, process, run id) and an expiry a few minutes ahead, renewed while the
run lives. A second run finds an unexpired lease of someone else and refuses
(or waits, when asked to). A lease whose owner died expires and is taken
over, at once when the owner was a process of this host that is gone (a
``kill -9`` followed by a re-run), else once it expires. Object stores offer
no compare-and-swap through fsspec, so taking a lease writes it, waits a
moment and reads it back: of two runs racing for it, the one whose write did
not last backs off.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from datamove.errors import LeaseHeldError
from datamove.inventory import STATE_DIR
from datamove.state import read_json, write_json
from datamove.storage import Location

log = logging.getLogger(__name__)

LEASE = f"{STATE_DIR}/lease.json"
DEFAULT_TTL = 60.0
SETTLE = 0.5


@dataclass(frozen=True)
class LeaseRecord:
    """Who holds the lease and until when (UTC, ISO 8601)."""

    run_id: str
    host: str
    pid: int
    acquired: str
    expires: str

    @property
    def expired(self) -> bool:
        return datetime.fromisoformat(self.expires) <= datetime.now(UTC)

    @property
    def owner_dead(self) -> bool:
        """Whether the owner was a process of this host that no longer exists."""
        if self.host != socket.gethostname() or self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    @property
    def stale(self) -> bool:
        return self.expired or self.owner_dead

    def describe(self) -> str:
        return (
            f"run {self.run_id} on {self.host} (pid {self.pid}), since "
            f"{self.acquired}, expires {self.expires}"
        )


def read_lease(dest: Location) -> LeaseRecord | None:
    """The current lease at ``dest``, expired or not, or None."""
    data = read_json(dest, LEASE)
    if not data:
        return None
    try:
        return LeaseRecord(**{k: data[k] for k in LeaseRecord.__dataclass_fields__})
    except (KeyError, TypeError):
        log.warning("%s: unreadable lease, treating it as expired", dest.display(LEASE))
        return None


class Lease:
    """Hold the destination's lease for the duration of a ``with`` block.

    Args:
        dest: the destination.
        run_id: the run taking the lease.
        ttl: seconds until an unrenewed lease expires.
        wait: seconds to wait for another run's lease to be released or to
            expire before giving up; 0 refuses at once.

    Raises:
        LeaseHeldError: another live run holds the lease (on entering).
    """

    def __init__(
        self, dest: Location, run_id: str, ttl: float = DEFAULT_TTL, wait: float = 0
    ) -> None:
        self.dest = dest
        self.ttl = ttl
        self.wait = wait
        self.record = self._record(run_id)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        # Whether another run held the lease when this one asked for it.
        self.contended = False

    def _record(self, run_id: str) -> LeaseRecord:
        now = datetime.now(UTC)
        return LeaseRecord(
            run_id=run_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            acquired=now.isoformat(timespec="seconds"),
            expires=(now + timedelta(seconds=self.ttl)).isoformat(timespec="seconds"),
        )

    def _write(self) -> None:
        now = datetime.now(UTC)
        expires = (now + timedelta(seconds=self.ttl)).isoformat(timespec="seconds")
        self.record = LeaseRecord(**{**asdict(self.record), "expires": expires})
        write_json(self.dest, LEASE, asdict(self.record))

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        while True:
            holder = read_lease(self.dest)
            if holder is not None and holder.run_id != self.record.run_id:
                self.contended = True
            if holder is None or holder.stale or holder.run_id == self.record.run_id:
                if holder is not None and holder.stale:
                    log.warning(
                        "%s: taking over the lease of %s, which is gone",
                        self.dest.url,
                        holder.describe(),
                    )
                self._write()
                # Long enough for a racing writer's lease to land before the read.
                time.sleep(SETTLE / 10 if self.dest.is_local else SETTLE)
                holder = read_lease(self.dest)
                if holder is not None and holder.run_id == self.record.run_id:
                    return
            if time.monotonic() >= deadline:
                assert holder is not None
                raise LeaseHeldError(
                    f"{self.dest.url}: another sync is writing here "
                    f"({holder.describe()}); wait for it to finish, pass --wait-lease "
                    "SECONDS to wait, or, if that run is dead, re-run after its "
                    "lease expires"
                )
            time.sleep(min(5.0, max(deadline - time.monotonic(), 0.1)))

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self._write()
            except Exception as error:
                log.warning("%s: could not renew the lease: %s", self.dest.url, error)

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        try:
            holder = read_lease(self.dest)
            if holder is not None and holder.run_id == self.record.run_id:
                self.dest.fs.rm_file(self.dest.path(LEASE))
        except Exception as error:
            # The run's own outcome matters more; an unreleased lease expires.
            log.warning(
                "%s: could not release the lease (%s); it expires by itself",
                self.dest.url,
                type(error).__name__,
            )

    def __enter__(self) -> Lease:
        self.acquire()
        self._renewer = threading.Thread(target=self._renew, daemon=True)
        self._renewer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def lease_info(dest: Location) -> dict[str, Any] | None:
    """The lease as plain data, for status displays."""
    record = read_lease(dest)
    if record is None:
        return None
    return {**asdict(record), "expired": record.expired, "stale": record.stale}
