"""The hostile soak's attackers: slowloris, non-reading clients and waves of idle connections.

    .venv/bin/python bench/attackers.py --url http://127.0.0.1:PORT --duration 600
        --big-path /fill/4000/3000/HOST:PORT/big.jpg [--slowloris 2000] [--non-readers 300]
        [--flood 3000]

Run by bench/soak.py --hostile in a process of its own; docs/reliability.md ("Hostile soak")
tells what each kind does. Prints an `Attacked` as JSON on its last line.
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
from dataclasses import asdict, dataclass, field
from math import inf
from typing import Any

import uvloop

TCP_ESTABLISHED = 1  # tcpi_state, the first byte of struct tcp_info
SMALL_RCVBUF = 4096  # a non-reader's receive buffer: the service's writes stall early
PROBE_EVERY = 1.0  # seconds between checks of a held connection
NON_READER_HOLD = 45.0  # seconds before a non-reader gives up
FLOOD_EVERY, FLOOD_HOLD = 30.0, 20.0  # seconds between waves; each connection held
RAMP = 10.0  # seconds to open the first ones


@dataclass(frozen=True)
class Seen:
    """What happened to one kind of attacker's connections."""

    opened: int
    cut: int
    gave_up: int  # closed by the attacker after its hold, with no sign of a cut
    refused_503: int
    other_answers: int  # data other than a 503 on a connection that asked nothing
    still_open: int  # closed by the attacker when a hold or the run ended
    connect_errors: dict[str, int]
    held_median_s: float | None  # how long the cut connections lasted
    held_max_s: float | None
    open_max: int


@dataclass(frozen=True)
class Attacked:
    slowloris: Seen
    non_readers: Seen
    flood: Seen
    fd_limit: int
    cpu_s: float


@dataclass
class Tally:
    opened: int = 0
    cut: int = 0
    gave_up: int = 0
    refused_503: int = 0
    other_answers: int = 0
    still_open: int = 0
    connect_errors: Counter[str] = field(default_factory=Counter)
    held: list[float] = field(default_factory=list)
    open_now: int = 0
    open_max: int = 0

    def seen(self) -> Seen:
        counts = {k: v for k, v in vars(self).items() if k in Seen.__dataclass_fields__}
        counts["connect_errors"] = dict(self.connect_errors)  # asdict would miscopy a Counter
        if not self.held:
            return Seen(**counts, held_median_s=None, held_max_s=None)
        median, longest = round(statistics.median(self.held), 1), round(max(self.held), 1)
        return Seen(**counts, held_median_s=median, held_max_s=longest)


def _alive(sock: socket.socket) -> bool:
    """Is the connection still ESTABLISHED (no FIN or RST from the service)?"""
    try:
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)
    except OSError:
        return False
    return state[0] == TCP_ESTABLISHED


def _close(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): no TIME_WAIT left behind."""
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
        tally.opened += 1
        tally.open_now += 1
        tally.open_max = max(tally.open_max, tally.open_now)
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

    async def again_and_again(
        self, kind: str, request: bytes, drip: bytes, hold: float, rcvbuf: int | None = None
    ) -> None:
        """Connect and send `request`, then each second check the connection and send `drip`
        (formatted with a counter, if any), until cut or `hold` s have passed; then again."""
        tally = self.tallies[kind]
        while not self.over():
            sock = await self._connect(tally, rcvbuf)
            if sock is None:
                await asyncio.sleep(1)
                continue
            opened, cut, count = time.monotonic(), False, 0
            try:
                await self.loop.sock_sendall(sock, request)
                while not cut and not self.over() and time.monotonic() - opened < hold:
                    await asyncio.sleep(PROBE_EVERY)
                    cut = not _alive(sock)
                    if drip and not cut:
                        await self.loop.sock_sendall(sock, drip % (count, count))
                        count += 1
            except OSError:
                cut = True
            self._ended(tally, sock, opened, cut, gave_up=not self.over())

    async def _idle(self, connects: asyncio.Semaphore) -> None:
        """A connection that sends nothing, held FLOOD_HOLD s unless the service closes it."""
        tally = self.tallies["flood"]
        async with connects:
            sock = await self._connect(tally)
        if sock is None:
            return
        opened, cut = time.monotonic(), False
        while (left := min(opened + FLOOD_HOLD, self.until) - time.monotonic()) > 0:
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

    async def flood(self, size: int) -> None:
        """Every FLOOD_EVERY s, a wave of `size` idle connections, the first RAMP s in."""
        connects = asyncio.Semaphore(256)  # connects in flight at once
        await asyncio.sleep(RAMP)
        waves: list[asyncio.Future[list[None]]] = []
        next_wave = time.monotonic()
        while not self.over():
            if time.monotonic() >= next_wave:
                next_wave += FLOOD_EVERY
                waves.append(asyncio.gather(*(self._idle(connects) for _ in range(size))))
            await asyncio.sleep(PROBE_EVERY)
        await asyncio.gather(*waves)


async def _staggered(delay: float, work: Coroutine[Any, Any, None]) -> None:
    await asyncio.sleep(delay)
    await work


async def attack(args: argparse.Namespace) -> dict[str, Seen]:
    host, port = args.url.removeprefix("http://").split(":")
    attack = Attack(host, int(port), time.monotonic() + args.duration)

    def stop() -> None:  # on SIGTERM: end every attacker now
        attack.until = time.monotonic()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop)
    slow_path = args.big_path.replace("4000/3000", "100/100")
    big = f"GET {args.big_path} HTTP/1.1\r\nHost: soak\r\n\r\n".encode()
    slowloris = [
        # a request line, then one header line a second, never the blank line
        attack.again_and_again(
            "slowloris", f"GET {slow_path}?s={i} HTTP/1.1\r\n".encode(), b"X-Slow-%d: %d\r\n", inf
        )
        for i in range(args.slowloris)
    ]
    # the large preview with a small receive buffer, never read
    non_readers = [
        attack.again_and_again("non_readers", big, b"", NON_READER_HOLD, SMALL_RCVBUF)
        for _ in range(args.non_readers)
    ]
    await asyncio.gather(
        *(_staggered(RAMP * i / len(slowloris), work) for i, work in enumerate(slowloris)),
        *(_staggered(RAMP * i / len(non_readers), work) for i, work in enumerate(non_readers)),
        attack.flood(args.flood),
    )
    return {name: tally.seen() for name, tally in attack.tallies.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--big-path", required=True, help="the large preview non-readers ask for")
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--slowloris", type=int, default=2000)
    parser.add_argument("--non-readers", type=int, default=300)
    parser.add_argument("--flood", type=int, default=3000, help="connections per wave")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started = time.process_time()
    seen = uvloop.run(attack(args))
    cpu_s = round(time.process_time() - started, 1)
    print(json.dumps(asdict(Attacked(**seen, fd_limit=hard, cpu_s=cpu_s))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
