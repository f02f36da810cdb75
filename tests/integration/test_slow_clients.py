"""Slow, idle and non-reading clients, and connection floods, over real sockets.

Each protection of http/connections.py against the real server: the head
deadline (slowloris, silent connections), the keep-alive idle timeout, the
send timeout (clients that never read, and slow readers that must not be
cut), the connection cap (eviction of the longest-waiting connection, 503
when every connection is busy), the open-file limit and EMFILE during a
miss. Short settings keep the suite fast; one test runs at the defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psutil
import pytest

import images
from conftest import Service, ServiceFactory, ServiceProcess
from origin import Gate, NginxOrigin, Origin
from waiting import until

pytestmark = pytest.mark.both_modes

JPEG = images.jpeg(400, 300)
HEALTH = b"GET /health HTTP/1.1\r\nHost: previewer.test\r\n\r\n"
METRIC_LINE = re.compile(r"^(previewer_connections_\w+)(?:\{reason=\"(\w+)\"\})? (\S+)$", re.M)
# The large preview of the non-reading clients: 4000x3000 of a noisy photo,
# 4.7 MB as JPEG, larger than what the kernel's socket buffers take in.
BIG = (4000, 3000)
BIG_FILE = "noisy_4000x3000.jpg"
BURST = 512 * 1024  # what the slow reader takes at a time


async def connection_metrics(service: Service) -> dict[str, float]:
    """The connection families from the metrics port: name or name:reason -> value."""
    assert service.running.metrics_url is not None
    async with service.client.get(service.running.metrics_url) as resp:
        text = await resp.text()
    return {
        f"{name}:{reason}" if reason else name: float(value)
        for name, reason, value in METRIC_LINE.findall(text)
    }


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Read until the server closes the connection; what it sent before closing."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await reader.read(65536):
            received += chunk
    return received


async def trickle(writer: asyncio.StreamWriter, interval: float) -> None:
    """A slowloris: a request line, then one header line every `interval` seconds."""
    writer.write(b"GET /health HTTP/1.1\r\n")
    for n in range(1000):
        await asyncio.sleep(interval)
        writer.write(f"X-Slow-{n}: {'a' * 10}\r\n".encode())
        with contextlib.suppress(ConnectionError):
            await writer.drain()


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(*_host_port(url))
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


# --- the head deadline -------------------------------------------------------------


async def test_a_slowloris_is_cut_at_the_head_deadline(start_service: ServiceFactory) -> None:
    service = await start_service(
        header_timeout=1, keepalive_timeout=60, metrics_address="127.0.0.1:0"
    )
    async with connected(service.url) as (reader, writer):
        started = time.monotonic()
        slow = asyncio.ensure_future(trickle(writer, 0.2))  # 5 lines a second, for 200 s
        try:
            received = await asyncio.wait_for(closed_by_server(reader), 30)
        finally:
            slow.cancel()
        elapsed = time.monotonic() - started
    assert received == b""  # cut, not answered: the head never completed
    assert elapsed >= 1.0  # trickled bytes neither extend the deadline nor cut it early
    counts = await connection_metrics(service)
    assert counts["previewer_connections_closed_total:header_timeout"] == 1
    # the service answers everyone else all the while
    assert (await service.get("/health"))[0] == 200


async def test_a_silent_connection_is_cut_at_the_head_deadline(
    start_service: ServiceFactory,
) -> None:
    service = await start_service(header_timeout=0.5, metrics_address="127.0.0.1:0")
    async with connected(service.url) as (reader, _):
        started = time.monotonic()
        assert await asyncio.wait_for(closed_by_server(reader), 30) == b""
        assert time.monotonic() - started >= 0.5
    counts = await connection_metrics(service)
    assert counts["previewer_connections_closed_total:header_timeout"] == 1
    assert counts["previewer_connections_closed_total:idle_timeout"] == 0


async def test_the_head_deadline_of_a_kept_alive_connection_starts_at_its_first_byte(
    start_service: ServiceFactory,
) -> None:
    """Idle after a response, a connection waits for the keep-alive timeout, not the head's."""
    service = await start_service(header_timeout=0.5, keepalive_timeout=30)
    async with connected(service.url) as (reader, writer):
        for _ in range(2):
            await ask_health(reader, writer)
            # idle for three head deadlines: a kept-alive connection is not cut for it
            await asyncio.sleep(1.5)
        writer.write(b"GET /health HTTP/1.1\r\n")  # a first byte, and no whole head
        first_byte = time.monotonic()
        assert await asyncio.wait_for(closed_by_server(reader), 30) == b""
        assert time.monotonic() - first_byte >= 0.5  # the deadline counts from that byte


async def ask_health(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """GET /health on a kept-alive connection; it must answer 200."""
    writer.write(HEALTH)
    status = await reader.readline()
    assert status.startswith(b"HTTP/1.1 200"), status
    await _read_rest(reader)


async def _read_rest(reader: asyncio.StreamReader) -> bytes:
    """The rest of a response whose status line was read: headers, then the body."""
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return await reader.readexactly(length)


# --- the keep-alive idle timeout ---------------------------------------------------


async def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout(
    start_service: ServiceFactory,
) -> None:
    service = await start_service(
        header_timeout=30, keepalive_timeout=0.5, metrics_address="127.0.0.1:0"
    )
    async with connected(service.url) as (reader, writer):
        await ask_health(reader, writer)
        answered = time.monotonic()
        assert await asyncio.wait_for(closed_by_server(reader), 30) == b""
        assert time.monotonic() - answered >= 0.5
    counts = await connection_metrics(service)
    assert counts["previewer_connections_closed_total:idle_timeout"] == 1
    assert counts["previewer_connections_closed_total:header_timeout"] == 0


# --- the connection cap -------------------------------------------------------------


async def test_at_the_cap_the_connection_waiting_longest_is_closed_for_a_new_one(
    start_service: ServiceFactory,
) -> None:
    service = await start_service(
        max_connections=3, header_timeout=60, metrics_address="127.0.0.1:0"
    )
    async with contextlib.AsyncExitStack() as stack:
        silent = [await stack.enter_async_context(connected(service.url)) for _ in range(3)]
        await until(lambda: _open_at_least(service, 3))
        # a fourth: the oldest silent one makes room, and the newcomer is answered
        status, _, _ = await service.get("/health")
        assert status == 200
        assert await asyncio.wait_for(closed_by_server(silent[0][0]), 10) == b""
        for reader, writer in silent[1:]:  # the others still stand
            await ask_health(reader, writer)
    counts = await connection_metrics(service)
    assert counts["previewer_connections_closed_total:evicted"] >= 1
    assert counts["previewer_connections_refused_total"] == 0


async def _open_at_least(service: Service, count: int) -> bool:
    return (await connection_metrics(service))["previewer_connections_open"] >= count


async def test_at_the_cap_with_every_connection_busy_a_new_one_gets_503(
    start_service: ServiceFactory, origin: Origin
) -> None:
    service = await start_service(max_connections=2, metrics_address="127.0.0.1:0")
    gate = Gate(JPEG, expected=2)
    origin.route("/held.jpg", gate.handler)
    path = f"/fill/50/40/{origin.authority}/held.jpg"
    held = []
    for n in range(2):  # two connections, each with a request in flight
        reader, writer = await asyncio.open_connection(*_host_port(service.url))
        writer.write(f"GET {path}?n={n} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        held.append((reader, writer))
    await asyncio.wait_for(gate.all_arrived.wait(), 30)
    async with connected(service.url) as (reader, _):
        answer = await asyncio.wait_for(closed_by_server(reader), 10)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503")
    assert b"Retry-After: 1" in head
    assert b"Cache-Control: no-store" in head
    assert json.loads(body)["error"] == "overloaded"
    gate.release()
    for reader, writer in held:  # the busy ones finish untouched
        assert (await asyncio.wait_for(reader.readline(), 30)).startswith(b"HTTP/1.1 200")
        writer.close()
    counts = await connection_metrics(service)
    assert counts["previewer_connections_refused_total"] == 1


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


# --- the metrics port ----------------------------------------------------------------


async def test_the_metrics_port_has_the_same_head_deadline(
    start_service: ServiceFactory, mode: str
) -> None:
    service = await start_service(header_timeout=0.5, metrics_address="127.0.0.1:0")
    ports = [service.running.metrics_url]
    if mode == "broker":
        assert service.worker is not None
        ports.append(service.worker.metrics_url)
    for url in ports:
        assert url is not None
        async with connected(url.removesuffix("/metrics")) as (reader, writer):
            writer.write(b"GET /metrics HTTP/1.1\r\n")  # and nothing more
            assert await asyncio.wait_for(closed_by_server(reader), 30) == b""


# --- the service as a process: memory, descriptors, defaults -----------------------


@pytest.fixture(scope="module")
def big_source(nginx_origin: NginxOrigin) -> str:
    """The authority and path of a 4000x3000 noisy photo on the nginx origin."""
    file = nginx_origin.root / BIG_FILE
    if not file.exists():
        file.write_bytes(images.photo(*BIG, sigma=60).jpegsave_buffer(Q=90))
        file.chmod(0o644)
    return f"{nginx_origin.authority}/{BIG_FILE}"


def _rss(process: ServiceProcess) -> int:
    return int(psutil.Process(process.proc.pid).memory_info().rss)


def _get(url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """One request on a connection of its own, read whole."""
    with socket.create_connection(_host_port(url), timeout=60) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(1 << 20):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _metrics_of(url: str) -> dict[str, float]:
    status, _, body = _get(url.removesuffix("/metrics"), "/metrics")
    assert status == 200
    return {
        f"{name}:{reason}" if reason else name: float(value)
        for name, reason, value in METRIC_LINE.findall(body.decode())
    }


def _metrics_url(process: ServiceProcess) -> str:
    pattern = re.compile(r"metrics on (http://\S+)")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in list(process.log_lines):
            if match := pattern.search(line):
                return match.group(1)
        time.sleep(0.05)
    raise AssertionError("no metrics line in the log:\n" + "\n".join(process.log_lines))


def _wait_for(check: Callable[[], bool], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


@contextlib.contextmanager
def _stalled_readers(url: str, path: str, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections that ask for `path` and never read a byte of the answer."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(_host_port(url))
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.subprocess
@pytest.mark.nginx
def test_clients_that_never_read_a_large_preview_hold_no_copy_of_it_and_are_cut(
    service_process: Callable[..., ServiceProcess], big_source: str, tmp_path: Path
) -> None:
    readers = 100
    process = service_process(
        [
            "--cache-dir",
            str(tmp_path / "cache"),
            "--allow-private-networks",
            "--max-dimension",
            "4096",
            "--send-timeout",
            "10",  # long enough for all of them to be open and stalled at once
            "--metrics-address",
            "127.0.0.1:0",
        ]
    )
    metrics = _metrics_url(process)
    path = f"/fill/{BIG[0]}/{BIG[1]}/{big_source}"
    status, _, body = _get(process.url, path)  # rendered once, read whole
    assert status == 200, body[:200]
    size = len(body)
    assert size > 3_000_000  # larger than the socket buffers take in
    before = _rss(process)
    with _stalled_readers(process.url, path, readers):
        # every one is answered as far as the kernel takes it, then stalls
        _wait_for(lambda: _metrics_of(metrics)["previewer_connections_open"] >= readers)
        peak = before
        while _metrics_of(metrics)["previewer_connections_closed_total:send_timeout"] < readers:
            peak = max(peak, _rss(process))
            time.sleep(0.1)
        # cut with a reset: no socket lingers with the unread bytes, waiting to send its FIN
        port = _host_port(process.url)[1]
        lingering = [
            c
            for c in psutil.net_connections("tcp")
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_FIN_WAIT1
        ]
        assert not lingering, f"{len(lingering)} cut sockets still hold their unsent bytes"
    after = _rss(process)
    growth = peak - before
    print(f"RSS {before >> 20} MiB -> peak {peak >> 20} -> {after >> 20} MiB; {size} B each")
    # a copy of the body per client would be readers x 4.7 MB = 470 MB
    assert growth < readers * 256 * 1024, f"{growth >> 20} MiB for {readers} stalled clients"
    # everyone else is served all the while, and after
    status, headers, again = _get(process.url, path)
    assert status == 200
    assert again == body
    assert headers["x-cache"] == "HIT"


@pytest.mark.subprocess
@pytest.mark.nginx
def test_a_slow_client_that_keeps_reading_gets_the_whole_preview(
    service_process: Callable[..., ServiceProcess], big_source: str, tmp_path: Path
) -> None:
    """It reads 512 KiB every 0.5 s: the transfer outlasts the send timeout, progress never
    stops for long."""
    process = service_process(
        [
            "--cache-dir",
            str(tmp_path / "cache"),
            "--allow-private-networks",
            "--max-dimension",
            "4096",
            "--send-timeout",
            "3",
        ]
    )
    path = f"/fill/{BIG[0]}/{BIG[1]}/{big_source}"
    status, _, body = _get(process.url, path)
    assert status == 200
    with socket.create_connection(_host_port(process.url), timeout=60) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        data = b""
        started = time.monotonic()
        while True:
            time.sleep(0.5)
            burst = b""
            while len(burst) < BURST:
                chunk = sock.recv(BURST - len(burst))
                if not chunk:
                    break
                burst += chunk
            data += burst
            if len(burst) < BURST:
                break
        elapsed = time.monotonic() - started
    assert data.partition(b"\r\n\r\n")[2] == body
    assert elapsed > 3  # longer than the send timeout


def _prlimit(open_files: int) -> tuple[str, ...]:
    """Run previewer under a soft and hard open-file limit of `open_files`."""
    return ("prlimit", f"--nofile={open_files}:{open_files}", sys.executable, "-m", "previewer")


@pytest.mark.subprocess
@pytest.mark.nginx
def test_a_flood_of_idle_connections_past_the_open_file_limit_leaves_clients_served(
    service_process: Callable[..., ServiceProcess],
    nginx_origin: NginxOrigin,
    tmp_path: Path,
) -> None:
    """1,000 silent connections against a limit of 256 open files: the cap, derived from
    the limit, closes the longest-waiting ones, and hits, misses and /health are answered
    during the flood and after it."""
    args = [
        "--cache-dir",
        str(tmp_path / "cache"),
        "--allow-private-networks",
        "--header-timeout",
        "5",
        "--metrics-address",
        "127.0.0.1:0",
    ]
    process = service_process(args, program=_prlimit(256))
    cap_line = next(line for line in process.log_lines if "client connections" in line)
    cap = int(re.search(r"at most (\d+) client connections", cap_line).group(1))  # type: ignore[union-attr]
    assert 16 <= cap < 256
    assert "open-file limit 256" in cap_line
    source = f"{nginx_origin.authority}/_gopher_original_1024x504.jpg"
    assert _get(process.url, f"/fill/64/48/{source}")[0] == 200
    flood = []
    try:
        for _ in range(1000):
            flood.append(socket.create_connection(_host_port(process.url), timeout=10))
        started = time.monotonic()
        assert _get(process.url, "/health")[0] == 200
        hit = _get(process.url, f"/fill/64/48/{source}")
        miss = _get(process.url, f"/fill/65/49/{source}")
        assert (hit[0], hit[1]["x-cache"]) == (200, "HIT")
        assert (miss[0], miss[1]["x-cache"]) == (200, "MISS")
        assert time.monotonic() - started < 5 + 15  # the head deadline plus a few seconds
    finally:
        for sock in flood:
            sock.close()
    counts = _metrics_of(_metrics_url(process))
    assert counts["previewer_connections_closed_total:evicted"] >= 1000 - cap
    assert counts["previewer_connections_refused_total"] == 0
    assert process.proc.poll() is None


@pytest.mark.subprocess
@pytest.mark.nginx
def test_running_out_of_descriptors_during_a_miss_is_503_and_leaves_no_entry(
    service_process: Callable[..., ServiceProcess],
    nginx_origin: NginxOrigin,
    tmp_path: Path,
    mode: str,
) -> None:
    """With the cap above what the limit allows, a flood takes every descriptor; a miss
    on a connection opened before it then cannot fetch (embedded) or store (broker)."""
    cache = tmp_path / "cache"
    args = [
        "--cache-dir",
        str(cache),
        "--allow-private-networks",
        "--max-connections",
        "5000",
        "--header-timeout",
        "120",
    ]
    process = service_process(args, program=_prlimit(128))
    assert any("leaves fewer than" in line for line in process.log_lines)
    source = f"{nginx_origin.authority}/_gopher_original_1024x504.jpg"
    with (
        socket.create_connection(_host_port(process.url), timeout=30) as kept,
        kept.makefile("rb") as answer,
    ):
        flood = _exhaust(process, 128)
        try:
            kept.sendall(f"GET /fill/70/50/{source} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            status_line = answer.readline()
            head = _read_head(answer)
        finally:
            for sock in flood:
                sock.close()
        status = int(status_line.split()[1])
        if mode == "embedded":  # the fetch found no descriptor for its socket
            assert status == 503, status_line
            assert head["retry-after"] == "1"
            body = json.loads(answer.read(int(head["content-length"])))
            assert body["error"] == "overloaded"
        else:  # the worker rendered it; the front could not open the entry's file
            assert status == 200, status_line
            answer.read(int(head["content-length"]))
    previews = [p for p in cache.rglob("*") if p.is_file() and cache / "sources" not in p.parents]
    assert not previews
    # once the flood's descriptors are free again, the same miss is rendered and stored
    server = psutil.Process(process.proc.pid)
    _wait_for(lambda: server.num_fds() < 64)
    again = _get(process.url, f"/fill/70/50/{source}")
    assert (again[0], again[1]["x-cache"]) == (200, "MISS")
    _wait_for(lambda: any(p.is_file() and len(p.name) == 64 for p in cache.glob("??/??/*")))
    # a write in progress (the source's, in the background) has its temporary file for a
    # moment; none is left behind
    _wait_for(lambda: not list(cache.rglob("*.tmp")))
    assert process.proc.poll() is None


def _read_head(stream: object) -> dict[str, str]:
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):  # type: ignore[attr-defined]
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


def _exhaust(process: ServiceProcess, open_files: int) -> list[socket.socket]:
    """Open connections until the server holds every descriptor its limit allows.

    The ones it cannot accept wait in the listening socket's backlog, so the
    count to watch is the server's own descriptors, not the clients'.
    """
    server = psutil.Process(process.proc.pid)
    flood: list[socket.socket] = []
    try:
        while len(flood) < 4 * open_files:
            for _ in range(8):
                flood.append(socket.create_connection(_host_port(process.url), timeout=10))
            with contextlib.suppress(TimeoutError):
                _wait_for(lambda: server.num_fds() >= open_files, within=0.5)
                return flood
        raise AssertionError(f"{server.num_fds()} descriptors after {len(flood)} connections")
    except BaseException:
        for sock in flood:
            sock.close()
        raise


@pytest.mark.subprocess
@pytest.mark.nginx
def test_at_the_defaults_a_silent_connection_is_cut_after_ten_seconds(
    service_process: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    process = service_process(["--cache-dir", str(tmp_path / "cache")])
    assert any("client connections" in line for line in process.log_lines)
    with socket.create_connection(_host_port(process.url), timeout=30) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""
        elapsed = time.monotonic() - started
    assert 10 <= elapsed < 10 + 20  # cut at the deadline, not held for an hour
