"""A private RabbitMQ node on 127.0.0.1, for the tests and the broker benchmarks (bench/).

Debian's rabbitmq-server (installed by scripts/install-system-deps.sh) is run
from its real scripts under /usr/lib/rabbitmq/bin (the /usr/sbin wrappers
switch users, and the Erlang cookie would then differ), configured entirely
by environment variables: its own node name, ports, data and log folders,
cookie (HOME) and epmd port, so that several nodes can run side by side and
none touches the machine's defaults. `stop` ends the node and the epmd it
started; `restart` keeps the data folder, so durable queues come back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
START_TIMEOUT = 60.0  # seconds; start to ready takes 3-6 s on an idle machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RabbitNode:
    """One RabbitMQ node under `folder`, listening on a free loopback port."""

    def __init__(self, folder: Path, name: str = "previewer-test") -> None:
        self.folder = folder
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.nodename = f"{name}-{self.port}@localhost"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        home = self.folder / "home"
        config = self.folder / "rabbitmq"  # RabbitMQ adds the .conf suffix itself
        plugins = self.folder / "enabled_plugins"
        for path in (home, self.folder / "mnesia", self.folder / "log"):
            path.mkdir(parents=True, exist_ok=True)
        config.with_suffix(".conf").write_text(
            "disk_free_limit.absolute = 50MB\n"
            "loopback_users = none\n"
            "log.console = false\n"
            "log.file.level = warning\n"
        )
        plugins.write_text("[].\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            HOME=str(home),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_MNESIA_BASE=str(self.folder / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.folder / "log"),
            RABBITMQ_PID_FILE=str(self.folder / "rabbitmq.pid"),
            RABBITMQ_CONFIG_FILE=str(config),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(plugins),
            RABBITMQ_CONF_ENV_FILE="/dev/null",
        )
        return env

    def start(self) -> None:
        server = RABBITMQ_BIN / "rabbitmq-server"
        if not server.exists():
            raise RuntimeError(
                "rabbitmq-server is not installed: run scripts/install-system-deps.sh"
            )
        env = self.env()
        with open(self.folder / "server.out", "ab") as out:
            self._proc = subprocess.Popen(
                [str(server)], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited at start:\n{self.output()}")
            if self._ctl("rabbitmq-diagnostics", "-q", "ping", timeout=20).returncode == 0:
                self._ctl("rabbitmqctl", "-q", "await_startup", timeout=60, check=True)
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rabbitmq-server was not ready within {START_TIMEOUT}s")

    def output(self) -> str:
        path = self.folder / "server.out"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def _ctl(
        self, tool: str, *args: str, timeout: float = 30, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBITMQ_BIN / tool), "-n", self.nodename, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def ctl(self, *args: str) -> str:
        """Run `rabbitmqctl ARGS` against this node; returns its output."""
        return self._ctl("rabbitmqctl", "-q", *args, check=True).stdout

    def queue_stats(self, name: str) -> dict[str, int]:
        """messages, ready, unacknowledged and consumers of one queue (absent: empty dict)."""
        out = self.ctl(
            "list_queues",
            "--no-table-headers",
            "name",
            "messages",
            "messages_ready",
            "messages_unacknowledged",
            "consumers",
        )
        for line in out.splitlines():
            fields = line.split("\t")
            if fields and fields[0] == name:
                keys = ("messages", "ready", "unacked", "consumers")
                return dict(zip(keys, (int(v) for v in fields[1:]), strict=True))
        return {}

    def stop(self) -> None:
        """SIGTERM the node and wait; then stop the epmd it started (by its port)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        self._proc = None
        self._stop_epmd()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _stop_epmd(self) -> None:
        found = subprocess.run(
            ["ss", "-ltnpH", f"sport = :{self.epmd_port}"], capture_output=True, text=True
        ).stdout
        for token in found.replace(",", " ").split():
            if token.startswith("pid="):
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(token[4:]), signal.SIGTERM)
