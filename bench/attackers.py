"""The hostile soak's attackers: slowloris, non-reading clients and waves of idle connections.

    .venv/bin/python bench/attackers.py --url http://127.0.0.1:PORT --duration 600
        --big-path /fill/4000/3000/HOST:PORT/big.jpg [--slowloris 2000] [--non-readers 300]
        [--flood 3000] [--flood-every 30] [--flood-hold 20]

bench/soak.py --hostile runs this in a process of its own, so that thousands
of attacking sockets do not share an event loop with the normal clients. It
first raises its own soft RLIMIT_NOFILE to the hard limit. Three kinds of
attacker come and go for `--duration` seconds:

- slowloris: `--slowloris` connections, each sending a request line, then
  one header line a second and never the blank line that ends the head;
  when the service cuts one, it connects again at once;
- non-readers: `--non-readers` connections, each asking for `--big-path`
  (a large preview) with a 4 KiB receive buffer and never reading a byte;
  when the service cuts one, or after `--non-reader-hold` seconds, it
  connects and asks again (a cut can be invisible to such a client: the
  service's FIN waits behind the response bytes the client never reads);
- flood: every `--flood-every` seconds a wave of `--flood` connections that
  send nothing, each held for `--flood-hold` seconds unless the service
  closes it first (with a 503 or without a word).

A connection counts as cut when its TCP state leaves ESTABLISHED (the
service sent FIN or RST), checked once a second. Every socket is closed with
RST (SO_LINGER 0), so the attackers leave no TIME_WAIT behind. At the end
the script prints one JSON line: for each kind, connections opened, cut by
the service (and how long they were held: median and max), given up after
their hold, answered 503, failed connects, still open at the end, and the
most open at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import signal
import socket
import statistics
import struct
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import uvloop

TCP_ESTABLISHED = 1  # tcpi_state, the first byte of struct tcp_info
CONNECT_TIMEOUT = 10.0
SMALL_RCVBUF = 4096  # a non-reader's receive buffer: the service's writes stall early
PROBE_EVERY = 1.0  # seconds between checks of a held connection


@dataclass
class Tally:
    """What happened to one kind of attacker's connections."""

    opened: int = 0
    cut: int = 0
    gave_up: int = 0  # closed by the attacker after its hold, with no sign of a cut
    refused_503: int = 0
    other_answers: int = 0  # data other than a 503 arrived on a connection that asked nothing
    still_open: int = 0  # closed by us when a hold or the run ended
    connect_errors: Counter[str] = field(default_factory=Counter)
    held: list[float] = field(default_factory=list)  # seconds each cut connection lasted
    open_now: int = 0
    open_max: int = 0

    def opening(self) -> None:
        self.opened += 1
        self.open_now += 1
        self.open_max = max(self.open_max, self.open_now)

    def summary(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "cut": self.cut,
            "gave_up": self.gave_up,
            "refused_503": self.refused_503,
            "other_answers": self.other_answers,
            "still_open": self.still_open,
            "connect_errors": dict(self.connect_errors),
            "held_median_s": round(statistics.median(self.held), 1) if self.held else None,
            "held_max_s": round(max(self.held), 1) if self.held else None,
            "open_max": self.open_max,
        }


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one; the limit in use."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _alive(sock: socket.socket) -> bool:
    """Is the connection still ESTABLISHED (no FIN or RST from the service)?"""
    try:
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)
    except OSError:
        return False
    return state[0] == TCP_ESTABLISHED


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Attack:
    """The three kinds of attacker against one service, until `until` (monotonic)."""

    def __init__(self, host: str, port: int, until: float) -> None:
        self.host, self.port, self.until = host, port, until
        self.loop = asyncio.get_running_loop()
        self.tallies = {"slowloris": Tally(), "non_readers": Tally(), "flood": Tally()}

    def over(self) -> bool:
        return time.monotonic() >= self.until

    async def _connect(self, tally: Tally, rcvbuf: int | None = None) -> socket.socket | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        try:
            await asyncio.wait_for(self.loop.sock_connect(sock, (self.host, self.port)), 10)
        except (OSError, TimeoutError) as exc:
            tally.connect_errors[type(exc).__name__] += 1
            _close(sock)
            return None
        tally.opening()
        return sock

    def _ended(
        self, tally: Tally, sock: socket.socket, opened: float, cut: bool, gave_up: bool = False
    ) -> None:
        tally.open_now -= 1
        if cut:
            tally.cut += 1
            tally.held.append(time.monotonic() - opened)
        elif gave_up:
            tally.gave_up += 1
        else:
            tally.still_open += 1
        _close(sock)

    async def slowloris(self, slot: int, path: str) -> None:
        tally = self.tallies["slowloris"]
        while not self.over():
            sock = await self._connect(tally)
            if sock is None:
                await asyncio.sleep(1)
                continue
            opened, line, cut = time.monotonic(), 0, False
            try:
                await self.loop.sock_sendall(sock, f"GET {path}?s={slot} HTTP/1.1\r\n".encode())
                while not self.over():
                    await asyncio.sleep(PROBE_EVERY)
                    if not _alive(sock):
                        cut = True
                        break
                    await self.loop.sock_sendall(sock, f"X-Slow-{line}: {line}\r\n".encode())
                    line += 1
            except OSError:
                cut = True
            self._ended(tally, sock, opened, cut)

    async def non_reader(self, path: str, hold: float) -> None:
        tally = self.tallies["non_readers"]
        request = f"GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n".encode()
        while not self.over():
            sock = await self._connect(tally, rcvbuf=SMALL_RCVBUF)
            if sock is None:
                await asyncio.sleep(1)
                continue
            opened, cut = time.monotonic(), False
            try:
                await self.loop.sock_sendall(sock, request)
                while not self.over() and time.monotonic() - opened < hold:
                    await asyncio.sleep(PROBE_EVERY)
                    if not _alive(sock):
                        cut = True
                        break
            except OSError:
                cut = True
            self._ended(tally, sock, opened, cut, gave_up=not self.over())

    async def _idle(self, hold: float, connects: asyncio.Semaphore) -> None:
        tally = self.tallies["flood"]
        async with connects:
            sock = await self._connect(tally)
        if sock is None:
            return
        opened, cut = time.monotonic(), False
        while (left := min(opened + hold, self.until) - time.monotonic()) > 0:
            await asyncio.sleep(min(PROBE_EVERY, left))
            with contextlib.suppress(BlockingIOError, OSError):
                data = sock.recv(64, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                if data.startswith(b"HTTP/1.1 503"):
                    tally.refused_503 += 1
                elif data:
                    tally.other_answers += 1
                if data:
                    cut = True
                    break
            if not _alive(sock):
                cut = True
                break
        self._ended(tally, sock, opened, cut)

    async def flood(self, size: int, every: float, hold: float, first: float) -> None:
        """Waves of `size` silent connections, the first `first` seconds in."""
        connects = asyncio.Semaphore(256)  # connects in flight at once
        await asyncio.sleep(first)
        waves: list[asyncio.Task[None]] = []
        next_wave = time.monotonic()
        while not self.over():
            if time.monotonic() >= next_wave:
                next_wave += every
                waves.append(asyncio.create_task(self._wave(size, hold, connects)))
            await asyncio.sleep(PROBE_EVERY)
        await asyncio.gather(*waves)

    async def _wave(self, size: int, hold: float, connects: asyncio.Semaphore) -> None:
        await asyncio.gather(*(self._idle(hold, connects) for _ in range(size)))


async def _staggered(delay: float, work: Coroutine[Any, Any, None]) -> None:
    await asyncio.sleep(delay)
    await work


async def attack(args: argparse.Namespace) -> dict[str, Any]:
    host, port = args.url.removeprefix("http://").split(":")
    until = time.monotonic() + args.duration
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    attack = Attack(host, int(port), until)
    ramp = args.ramp
    slow_path = args.big_path.replace("4000/3000", "100/100")
    tasks = [
        *(
            _staggered(ramp * i / max(1, args.slowloris), attack.slowloris(i, slow_path))
            for i in range(args.slowloris)
        ),
        *(
            _staggered(
                ramp * i / max(1, args.non_readers),
                attack.non_reader(args.big_path, args.non_reader_hold),
            )
            for i in range(args.non_readers)
        ),
        attack.flood(args.flood, args.flood_every, args.flood_hold, ramp),
    ]
    running = asyncio.gather(*tasks)

    async def on_sigterm() -> None:  # end every attacker now
        await stop.wait()
        attack.until = time.monotonic()

    watcher = asyncio.create_task(on_sigterm())
    await running
    watcher.cancel()
    return {name: tally.summary() for name, tally in attack.tallies.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--big-path", required=True, help="the large preview non-readers ask for")
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--slowloris", type=int, default=2000)
    parser.add_argument("--non-readers", type=int, default=300)
    parser.add_argument(
        "--non-reader-hold", type=float, default=45.0, help="seconds before a non-reader gives up"
    )
    parser.add_argument("--flood", type=int, default=3000, help="connections per wave")
    parser.add_argument("--flood-every", type=float, default=30.0, help="seconds between waves")
    parser.add_argument("--flood-hold", type=float, default=20.0, help="seconds each is held")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds to open the first ones")
    args = parser.parse_args()
    limit = raise_fd_limit()
    started = time.process_time()
    found = uvloop.run(attack(args))
    found["fd_limit"] = limit
    found["cpu_s"] = round(time.process_time() - started, 1)
    print(json.dumps(found), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
