"""Shared fixtures: clean environment, generated images, origins, the service."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
import hypothesis
import pytest
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

import images
from origin import NginxOrigin, Origin, StubResolver
from previewer.cli import SOURCES_DIR, Running, RunningWorker, running, running_worker
from previewer.config.settings import WORKER, load, options_for
from previewer.http.accesslog import FLUSH_INTERVAL
from previewer.render.renderer import BrokerHealth
from rabbitmq import RabbitNode
from waiting import until

# Property tests draw the same examples on every run (seeded from each test), and
# no example database carries failures from one run into the next.
hypothesis.settings.register_profile("deterministic", derandomize=True, database=None)
hypothesis.settings.load_profile("deterministic")

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable may route a test's traffic off loopback."""
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _on_this_machine(address: object) -> bool:
    if not isinstance(address, tuple):
        return True  # a Unix socket path
    try:
        ip = ipaddress.ip_address(address[0])
    except ValueError:
        return False  # a name: tests connect by address
    return ip.is_loopback or ip.is_unspecified


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connection a test process makes stays on this machine.

    The address policy is what keeps previewer from dialling 169.254.169.254
    or 10.0.0.1; if a regression ever broke it, the attack tests must fail
    here instead of sending a packet off the machine.
    """
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(address: object) -> None:
        if not _on_this_machine(address):
            raise OSError(errno.ENETUNREACH, f"tests stay on loopback, refused {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        refuse(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        refuse(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


# --- the nginx origin ----------------------------------------------------------

GOPHER_SIZES = [(50, 50), (256, 126), (500, 500), (1024, 252), (333, 666), (200, 700), (2000, 1000)]


@pytest.fixture(scope="session")
def nginx_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxOrigin]:
    """nginx serving images the suite makes itself; a missing nginx is an error."""
    root = tmp_path_factory.mktemp("www")
    (root / "_gopher_original_1024x504.jpg").write_bytes(images.jpeg(1024, 504))
    (root / "_gopher_not_image.jpg").write_bytes(b"This is a text file, not an image.\n")
    (root / "small_40x30.jpg").write_bytes(images.jpeg(40, 30))
    (root / "alpha.png").write_bytes(images.png_alpha())
    for path in (root, *root.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    origin = NginxOrigin(root, tmp_path_factory.mktemp("nginx"))
    origin.start()
    yield origin
    origin.stop()


# --- the programmable origin -----------------------------------------------------


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    server = Origin()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
async def tls_origin(tls_files: tuple[Path, Path]) -> AsyncIterator[int]:
    """An HTTPS origin on 127.0.0.1 whose certificate no system CA signed; yields its port."""
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=images.jpeg(64, 48), content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/{tail:.*}", image)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    yield runner.addresses[0][1]
    await runner.cleanup()


# --- the service, in process -------------------------------------------------------


@dataclass
class Service:
    running: Running
    client: aiohttp.ClientSession
    resolver: StubResolver
    source_cache_dir: Path  # the render stage's: the front's, or in broker mode the worker's
    worker: RunningWorker | None = None  # broker mode: the worker answering the front

    @property
    def url(self) -> str:
        return self.running.url

    async def render_stage(self) -> dict[str, Any]:
        """The render stage's figures, from wherever the renders happened.

        Embedded: the front's /health. Broker mode: the worker's render
        stage (a front in broker mode fetches and renders nothing itself).
        Keys: fetches, source_hits, renders, abandoned, renders_in_progress,
        source_cache (None when off).
        """
        if self.worker is None:
            health = json.loads((await self.get("/health"))[2])
            counters = health["counters"]
            figures = {name: counters[name] for name in _STAGE_COUNTERS}
            figures["renders_in_progress"] = health["renders_in_progress"]
            figures["source_cache"] = health.get("source_cache")
            return figures
        stage = dataclasses.asdict(self.worker.worker.rendering())
        figures = {name: stage[name] for name in _STAGE_COUNTERS}
        figures["renders_in_progress"] = stage["renders_running"] + stage["renders_waiting"]
        figures["source_cache"] = stage["source_cache"]
        return figures

    async def get(
        self, path: str, headers: dict[str, str] | list[tuple[str, str]] | None = None
    ) -> tuple[int, CIMultiDict[str], bytes]:
        return await self.request("GET", path, headers)

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | list[tuple[str, str]] | None = None,
    ) -> tuple[int, CIMultiDict[str], bytes]:
        url = URL(self.url + path, encoded=True)
        async with self.client.request(method, url, headers=headers) as resp:
            return resp.status, CIMultiDict(resp.headers), await resp.read()


_STAGE_COUNTERS = ("fetches", "source_hits", "renders", "abandoned")
ServiceFactory = Callable[..., Awaitable[Service]]
_NO_BROKER = BrokerHealth(False, None, 0, 0, 0, 0, 0, 0)


MODES = ("embedded", "broker")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `both_modes` run against the embedded mode and a front with a worker."""
    marked = metafunc.definition.get_closest_marker
    if "mode" in metafunc.fixturenames and marked("both_modes") and not marked("embedded_only"):
        metafunc.parametrize("mode", MODES, indirect=True)


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> str:
    """`embedded`, or `broker`: a front in broker mode and one worker, both in process."""
    return str(getattr(request, "param", "embedded"))


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A private RabbitMQ node for the session; a missing rabbitmq-server is an error."""
    node = RabbitNode(tmp_path_factory.mktemp("rabbitmq"))
    node.start()
    yield node
    node.stop()


@pytest.fixture
async def start_service(
    tmp_path: Path, mode: str, request: pytest.FixtureRequest
) -> AsyncIterator[ServiceFactory]:
    """Start previewer in this event loop on 127.0.0.1:0.

    Keyword arguments are settings by flag name with `_` for `-`. Loopback
    sources are allowed unless `allow_private_networks="false"` is given.
    In broker mode (the `mode` fixture) the front publishes each miss to a
    queue of its own on the session's RabbitMQ node, and one worker, with
    the same settings where it takes them, answers it.
    `flush_interval` sets how long the access log keeps successes' lines.
    """
    stack = contextlib.AsyncExitStack()
    client = await stack.enter_async_context(
        aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=("User-Agent",))
    )

    async def start(
        resolver: StubResolver | None = None,
        *,
        flush_interval: float = FLUSH_INTERVAL,
        **overrides: object,
    ) -> Service:
        values = {
            "port": "0",
            "cache-dir": str(tmp_path / "cache"),
            "allow-private-networks": "true",
            "log-level": "debug",
        }
        values.update({k.replace("_", "-"): str(v) for k, v in overrides.items()})
        resolver = resolver or StubResolver({"origin.test": ["127.0.0.1"]})
        worker = None
        stage_dir = values["cache-dir"]  # where the render stage keeps its sources
        if mode == "broker":
            node: RabbitNode = request.getfixturevalue("rabbit")
            values.setdefault("broker", node.url)
            values.setdefault("broker-queue", f"previewer.test.{uuid.uuid4().hex}")
            worker_flags = {opt.flag for opt in options_for(WORKER)}
            worker_values = {k: v for k, v in values.items() if k in worker_flags}
            worker_values["cache-dir"] = stage_dir = str(tmp_path / "worker-cache")
            worker = await stack.enter_async_context(
                running_worker(load({}, worker_values, command=WORKER), resolver)
            )
            await worker.consumer.wait_ready()
        settings = load({}, values)
        run = await stack.enter_async_context(
            running(settings, resolver, flush_interval=flush_interval)
        )
        await run.service.wait_loaded()  # tests start from a known index
        if worker is not None:
            await until(lambda: (run.service.health().broker or _NO_BROKER).consumers == 1)
        return Service(run, client, resolver, Path(stage_dir) / SOURCES_DIR, worker)

    yield start
    await stack.aclose()


@pytest.fixture
async def service(start_service: ServiceFactory) -> Service:
    return await start_service()


# --- the service, as a separate process ----------------------------------------------


@dataclass
class ServiceProcess:
    proc: subprocess.Popen[str]
    url: str
    log_lines: list[str]

    drain: threading.Thread | None = None
    worker: ServiceProcess | None = None  # broker mode: the worker answering this front

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.close()
        return code

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/health", timeout=10) as resp:
            payload: dict[str, Any] = json.load(resp)
            return payload

    def wait_loaded(self, within: float = 30) -> None:
        """Poll /health until every cache reports its index loaded."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            health = self.health()
            if all(health[name]["loaded"] for name in ("cache", "source_cache") if name in health):
                return
            time.sleep(0.01)
        raise TimeoutError(f"the cache index did not load within {within}s")

    def close(self) -> None:
        """Collect the rest of the log and release the pipe (after the process ended)."""
        if self.drain is not None:
            self.drain.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def _drain(stream: IO[str], lines: list[str]) -> None:
    """Keep reading the child's log so a full pipe never blocks it."""
    for line in stream:
        lines.append(line.rstrip("\n"))


_LISTENING = re.compile(r"listening on (http://\S+)")


_CONSUMING = re.compile(r"worker consuming (\S+)")
PREVIEWER = (sys.executable, "-m", "previewer")  # the command that runs previewer


def spawn_service(
    args: list[str],
    env: dict[str, str] | None = None,
    wait_loaded: bool = True,
    command: str = "serve",
    program: Sequence[str] = PREVIEWER,
) -> ServiceProcess:
    """Run `python -m previewer serve ARGS` and wait for its listening line.

    The service serves before its cache index is loaded; unless `wait_loaded`
    is false, this also waits until /health says the index is complete.
    With `command="worker"`, runs a worker and waits for its consuming line
    (its `url` is then the queue's name). `program` is the command that runs
    previewer (the installed `previewer` script, for example).
    """
    full_env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    full_env.update(env or {})
    ready = _LISTENING if command == "serve" else _CONSUMING
    port = ["--port", "0"] if command == "serve" else []
    proc = subprocess.Popen(
        [*program, command, *port, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 30
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        match = ready.search(line)
        if match:
            drain = threading.Thread(target=_drain, args=(proc.stderr, lines), daemon=True)
            drain.start()
            process = ServiceProcess(proc, match.group(1), lines, drain)
            if wait_loaded and command == "serve":
                process.wait_loaded(deadline - time.monotonic())
            return process
    proc.kill()
    proc.wait()
    proc.stderr.close()
    raise RuntimeError("previewer did not start:\n" + "\n".join(lines))


def worker_args(args: list[str], cache_dir: Path) -> list[str]:
    """The flags of a `serve` command line that a worker takes too, with its own cache.

    A worker takes the source policy, the fetch and size limits and the
    imaging settings; a front's cache flags are its previews', so the
    worker gets a cache directory of its own.
    """
    options = {f"--{opt.flag}": opt for opt in options_for(WORKER)}
    switches = {f"--no-{opt.flag}": opt for opt in options.values() if opt.is_switch}
    kept: list[str] = []
    words = iter(args)
    for word in words:
        name = word.split("=", 1)[0]
        option = options.get(name) or switches.get(name)
        takes_value = option is not None and not option.is_switch and "=" not in word
        value = next(words) if takes_value else None
        if option is None or option.flag in ("cache-dir", "cache-size", "cache-max-items"):
            continue
        kept.extend([word] if value is None else [word, value])
    return [*kept, "--cache-dir", str(cache_dir)]


@pytest.fixture
def service_process(
    mode: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., ServiceProcess]]:
    """Spawn `previewer serve` (or `worker`) processes; each is killed at the end.

    In broker mode (the `mode` fixture) every `serve` process is a front on
    a queue of its own on the session's RabbitMQ node, and a worker process
    with the same source policy, limits and imaging settings consumes it;
    the front is returned once /health counts that worker.
    """
    started: list[ServiceProcess] = []

    def spawn(
        args: list[str],
        env: dict[str, str] | None = None,
        wait_loaded: bool = True,
        command: str = "serve",
        program: Sequence[str] = PREVIEWER,
    ) -> ServiceProcess:
        if mode == "broker" and command == "serve":
            return spawn_front(args, env, wait_loaded, program)
        return spawn_one(args, env, wait_loaded, command, program)

    def spawn_one(
        args: list[str],
        env: dict[str, str] | None,
        wait_loaded: bool,
        command: str,
        program: Sequence[str] = PREVIEWER,
    ) -> ServiceProcess:
        process = spawn_service(args, env, wait_loaded, command, program)
        started.append(process)
        return process

    def spawn_front(
        args: list[str],
        env: dict[str, str] | None,
        wait_loaded: bool,
        program: Sequence[str] = PREVIEWER,
    ) -> ServiceProcess:
        node: RabbitNode = request.getfixturevalue("rabbit")
        queue = f"previewer.test.{uuid.uuid4().hex}"
        link = ["--broker", node.url, "--broker-queue", queue]
        worker_cache = tmp_path / f"worker-cache-{len(started)}"
        worker = spawn_one([*worker_args(args, worker_cache), *link], env, True, "worker", program)
        front = spawn_one([*args, *link], env, wait_loaded, "serve", program)
        front.worker = worker
        deadline = time.monotonic() + 30
        while front.health()["broker"]["consumers"] != 1:  # polled by the front every second
            if time.monotonic() > deadline:
                raise TimeoutError("the front did not see its worker within 30s")
            time.sleep(0.05)
        return front

    yield spawn
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()
        process.close()
