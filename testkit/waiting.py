"""Waiting for state that lives in another process, where no event can be awaited."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def until(check: Callable[[], bool | Awaitable[bool]], within: float = 10.0) -> None:
    """Poll `check` until it is true; TimeoutError after `within` seconds.

    Only for state outside this event loop: nginx's access log, a child
    process's log, counters read over HTTP.
    """
    async with asyncio.timeout(within):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.01)
