"""Origins for the integration tests, all on 127.0.0.1.

- `Origin`: a programmable aiohttp origin. Each route is registered by the
  test with its status, headers and body (or a handler), and every request is
  recorded with its raw header list.
- `NginxOrigin`: a real nginx serving a directory of generated images, with an
  access log the tests count requests in.
- `StubResolver`: names for the service's fetcher without a DNS server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from waiting import until

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    method: str
    path: str
    headers: list[tuple[str, str]]


@dataclass
class Origin:
    """A programmable origin server on 127.0.0.1."""

    routes: dict[str, RouteHandler] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    hits: Counter[str] = field(default_factory=Counter)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def authority(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(
        self,
        path: str,
        body: bytes = b"",
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        content_type: str = "image/jpeg",
    ) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(
                body=body, status=status, headers=headers or {}, content_type=content_type
            )

        self.routes[path] = handler

    def route(self, path: str, handler: RouteHandler) -> None:
        self.routes[path] = handler

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path
        self.hits[path] += 1
        self.requests.append(
            Recorded(
                request.method,
                path,
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers],
            )
        )
        handler = self.routes.get(path) or self.routes.get(path.partition("?")[0])
        if handler is None:
            return web.Response(status=404, text="not here")
        return await handler(request)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class StubResolver(AbstractResolver):
    """Resolves the names in `table`; every other name fails like NXDOMAIN."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = table or {}
        self.lookups: Counter[str] = Counter()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups[host] += 1
        addresses = self.table.get(host)
        if not addresses:
            raise OSError(socket.EAI_NONAME, f"stub resolver: no such host {host}")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_NGINX_MAIN = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
{http}
}}
"""

_ORIGIN_HTTP = """
    types {{ image/jpeg jpg; image/png png; image/gif gif; image/webp webp; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /error/500 {{ return 500; }}
        location /error/403 {{ return 403; }}
    }}
"""


class _PortTaken(Exception):
    """nginx could not bind its port: someone took it after it was chosen."""


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


class Nginx:
    """nginx with an `http` block of the caller's, on a free loopback port.

    `configure(port)` gives the `http` block's contents for a port, with a
    server listening on 127.0.0.1:port. Around it, one worker in the
    foreground, and its pid, logs and temporary files under `prefix`.
    """

    def __init__(self, prefix: Path, configure: Callable[[int], str]) -> None:
        self.prefix = prefix
        self.configure = configure
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start nginx and wait until it answers.

        The port is free when chosen but not reserved: another process (another
        test session on the machine) may take it before nginx binds. nginx then
        exits at once, and it is started again on a newly chosen port.
        """
        for _ in range(5):
            try:
                self._start_once()
                return
            except _PortTaken:
                self.port = free_port()
        raise RuntimeError("nginx found no free port in 5 tries")

    def _start_once(self) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(binary):
            raise RuntimeError("nginx is not installed: run scripts/install-system-deps.sh")
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""  # workers must read the files
        http = self.configure(self.port)
        conf.write_text(_NGINX_MAIN.format(prefix=self.prefix, user=user, http=http))
        (self.prefix / "error.log").write_text("")
        stderr = self.prefix / "stderr.log"
        with open(stderr, "wb") as err:
            self._proc = subprocess.Popen(
                [binary, "-p", str(self.prefix), "-c", str(conf)],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                errors = stderr.read_text() + _read(self.prefix / "error.log")
                if "Address already in use" in errors:
                    raise _PortTaken(errors)
                raise RuntimeError(f"nginx exited at start: {errors}")
            if self._answers():
                return
            time.sleep(0.02)  # polling another process's state: no event to wait on
        self.stop()
        raise RuntimeError("nginx did not start answering within 10s")

    def _answers(self) -> bool:
        """Whether nginx itself answers on the port (not some other listener)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
                return b"\r\nServer: nginx" in sock.recv(4096)
        except OSError:  # refused, or a timeout from a listener that is not nginx
            return False

    def stop(self) -> None:
        """Stop gracefully (SIGQUIT), or kill after 5 s."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGQUIT)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


class NginxOrigin:
    """nginx serving `root` on a free loopback port, with a countable access log."""

    def __init__(self, root: Path, prefix: Path) -> None:
        self.root = root
        self.prefix = prefix
        self._nginx = Nginx(prefix, self._conf)

    def _conf(self, port: int) -> str:
        return _ORIGIN_HTTP.format(port=port, root=self.root)

    @property
    def port(self) -> int:
        return self._nginx.port

    @property
    def authority(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start nginx and wait until it answers (on another port if its first was taken)."""
        self._nginx.start()

    def stop(self) -> None:
        self._nginx.stop()

    def requests_for(self, path: str) -> int:
        """Requests nginx has logged for `path` (nginx logs once a response is sent)."""
        log = self.prefix / "access.log"
        if not log.exists():
            return 0
        needle = f'"GET {path} '
        return sum(1 for line in log.read_text().splitlines() if needle in line)

    async def wait_for_requests(self, path: str, count: int) -> int:
        """Wait until nginx has logged `count` requests for `path`; returns the count."""
        with contextlib.suppress(TimeoutError):
            await until(lambda: self.requests_for(path) >= count, within=5)
        return self.requests_for(path)


class Gate:
    """An origin handler that holds every request until released.

    `all_arrived` is set once `expected` requests are being held, so a test
    knows its requests are all in flight before it acts.
    """

    def __init__(self, body: bytes, expected: int = 1, content_type: str = "image/jpeg") -> None:
        self.body = body
        self.expected = expected
        self.content_type = content_type
        self.arrived = 0
        self.all_arrived = asyncio.Event()
        self.released = asyncio.Event()

    async def handler(self, request: web.Request) -> web.Response:
        self.arrived += 1
        if self.arrived >= self.expected:
            self.all_arrived.set()
        await self.released.wait()
        return web.Response(body=self.body, content_type=self.content_type)

    def release(self) -> None:
        self.released.set()
