"""The servers of the benchmark, each started on 127.0.0.1 with its own files.

docs/benchmarks.md ("How it was measured") describes each peer. A start
function returns a `procs.Server`, which the caller stops; `Peer.path` maps
a corpus file to the peer's request path.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from procs import Server, free_port, spawn, wait_ready

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
IMAGE_FILTER_MODULE = "/usr/lib/nginx/modules/ngx_http_image_filter_module.so"
THUMBOR_ENV = Path(__file__).resolve().parent / ".work" / "thumbor-venv"
TARGET = (300, 200)

_NGINX_CONF = """
{modules}
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    types {{ image/jpeg jpg; application/json json; }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    {upstream}
    server {{
        listen 127.0.0.1:{port};
        location = /ready {{ return 200 "ready\\n"; }}
        {body}
    }}
}}
"""

_THUMBOR_CONF = """
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = {result_storage!r}
RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = {result_root!r}
RESULT_STORAGE_STORES_UNSAFE = True
RESULT_STORAGE_EXPIRATION_SECONDS = 0
ALLOW_UNSAFE_URL = True
HTTP_LOADER_CURL_ASYNC_HTTP_CLIENT = True
QUALITY = 80
"""


@dataclass(frozen=True)
class Peer:
    """A server under test: how to start it and how to ask it for a corpus file."""

    name: str
    label: str
    start: Callable[[Path, int], Server]  # (work dir, origin port) -> running server
    path: Callable[[str, int], str]  # (corpus file, origin port) -> request path


def nginx(
    prefix: Path,
    port: int,
    body: str,
    *,
    upstream: str = "",
    module: str = "",
    workers: str = "auto",
) -> Server:
    """Start an nginx in the foreground whose only server block holds `body`."""
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        _NGINX_CONF.format(
            modules=f"load_module {module};" if module else "",
            workers=workers,
            prefix=prefix,
            user="user root;" if os.geteuid() == 0 else "",
            upstream=upstream,
            port=port,
            body=body,
        )
    )
    log = prefix / "stderr.log"
    argv = [NGINX, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
    proc = spawn(argv, log)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/ready", [proc], prefix / "error.log")
    return Server(name=prefix.name, url=url, procs=[proc])


def start_origin(prefix: Path, root: Path) -> Server:
    return nginx(prefix, free_port(), f"location / {{ root {root}; }}")


def balancer(prefix: Path, ports: list[int]) -> Server:
    """nginx on a free port spreading requests over `ports` (least_conn, keep-alive).

    Left to the kernel, wrk's few connections can land unevenly on a server's
    processes and leave a core idle.
    """
    servers = "".join(f"server 127.0.0.1:{port}; " for port in ports)
    upstream = f"upstream backends {{ least_conn; {servers}keepalive 64; }}"
    body = """location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 120s;
        }"""
    return nginx(prefix, free_port(), body, upstream=upstream, workers="1")


def start_image_filter(work: Path, origin_port: int) -> Server:
    """One single-worker image_filter nginx per core, behind a balancer."""
    body = f"""location / {{
            proxy_pass http://127.0.0.1:{origin_port};
            image_filter crop {TARGET[0]} {TARGET[1]};
            image_filter_buffer 64M;
            image_filter_jpeg_quality 80;
        }}"""
    prefix = work / "nginx-image-filter"
    started: list[Server] = []
    try:
        for i in range(os.cpu_count() or 1):
            started.append(
                nginx(
                    prefix / f"worker-{i}",
                    free_port(),
                    body,
                    module=IMAGE_FILTER_MODULE,
                    workers="1",
                )
            )
        front = balancer(prefix / "balancer", [int(s.url.rsplit(":", 1)[1]) for s in started])
    except BaseException:
        for server in started:
            server.stop()
        raise
    procs = [*front.procs, *(p for server in started for p in server.procs)]
    return Server(name=prefix.name, url=front.url, procs=procs)


def start_thumbor(work: Path, result_storage: bool) -> Server:
    """`os.cpu_count()` thumbor processes behind a balancer."""
    name = "thumbor-rs" if result_storage else "thumbor"
    prefix = work / name
    result_root = prefix / "result-storage"
    shutil.rmtree(result_root, ignore_errors=True)
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "thumbor.conf"
    conf.write_text(
        _THUMBOR_CONF.format(
            result_storage="thumbor.result_storages.file_storage" if result_storage else None,
            result_root=str(result_root),
        )
    )
    binary = THUMBOR_ENV / "bin" / "thumbor"
    if not binary.exists():
        install_log = THUMBOR_ENV.parent / "thumbor-install.log"
        why = install_log.read_text().strip().splitlines()[-3:] if install_log.exists() else []
        raise RuntimeError(f"thumbor is not installed at {binary}: {' / '.join(why)}")
    ports = [free_port() for _ in range(os.cpu_count() or 1)]
    procs = []
    try:
        for port in ports:
            log = prefix / f"thumbor-{port}.log"
            argv = [str(binary), "-p", str(port), "-i", "127.0.0.1", "-c", str(conf)]
            argv += ["-l", "warning"]
            procs.append(spawn(argv, log))
        for port, proc in zip(ports, procs, strict=True):
            wait_ready(
                f"http://127.0.0.1:{port}/healthcheck", [proc], prefix / f"thumbor-{port}.log"
            )
        front = balancer(prefix / "nginx", ports)
    except BaseException:
        Server(name=name, url="", procs=procs).stop()
        raise
    return Server(name=name, url=front.url, procs=[*front.procs, *procs])


def previewer_binary() -> Path:
    """`previewer` beside the Python running the bench (the project's .venv)."""
    return Path(sys.executable).parent / "previewer"


def start_previewer(
    work: Path,
    gravity: str,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    name: str = "",
) -> Server:
    """`previewer serve` on a free port with an empty cache directory of its own.

    `extra` adds flags and `env` environment variables; `name` tells apart the
    work directories of previewers started with different ones.
    """
    prefix = work / (name or f"previewer-{gravity}")
    cache = prefix / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    port = free_port()
    argv = [str(previewer_binary()), "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--allow-private-networks", "--cache-dir", str(cache), "--gravity", gravity]
    argv += list(extra)
    log = prefix / "previewer.log"
    proc = spawn(argv, log, env={**os.environ, **(env or {})})
    server = Server(name=prefix.name, url=f"http://127.0.0.1:{port}", procs=[proc])
    try:
        wait_ready(f"{server.url}/health", [proc], log)
    except BaseException:
        server.stop()
        raise
    return server


def _thumbor_path(file: str, origin_port: int) -> str:
    return f"/unsafe/{TARGET[0]}x{TARGET[1]}/127.0.0.1:{origin_port}/{file}"


def _previewer_path(file: str, origin_port: int) -> str:
    return f"/fill/{TARGET[0]}/{TARGET[1]}/127.0.0.1:{origin_port}/{file}"


STATIC_FILE = "static.jpg"

PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        Peer("thumbor", "thumbor", lambda w, _p: start_thumbor(w, False), _thumbor_path),
        Peer(
            "thumbor-rs",
            "thumbor + result storage",
            lambda w, _p: start_thumbor(w, True),
            _thumbor_path,
        ),
        Peer("image_filter", "nginx image_filter", start_image_filter, lambda f, _p: f"/{f}"),
        Peer(
            "static",  # serves its own copy of one preview, work/static-root/static.jpg
            "nginx static 20 KB",
            lambda w, _p: start_origin(w / "nginx-static", w / "static-root"),
            lambda _f, _p: f"/{STATIC_FILE}",
        ),
        Peer(
            "previewer-attention",
            "previewer (attention)",
            lambda w, _p: start_previewer(w, "attention"),
            _previewer_path,
        ),
        Peer(
            "previewer-centre",
            "previewer (centre)",
            lambda w, _p: start_previewer(w, "centre"),
            _previewer_path,
        ),
        Peer(
            "previewer-quiet",
            "previewer (access log off)",
            lambda w, _p: start_previewer(
                w, "attention", extra=("--access-log", "off"), name="previewer-quiet"
            ),
            _previewer_path,
        ),
    )
}

# Which peers run on which path. A miss fetches and renders every request; a
# hit serves a stored preview. Gravity does not change a hit, so one
# previewer runs there.
MISS_PEERS = ("thumbor", "image_filter", "previewer-attention", "previewer-centre")
HIT_PEERS = ("thumbor-rs", "previewer-attention", "previewer-quiet", "static")
