"""The render worker of broker mode: a job in, the embedded render stage, a reply out.

Knows nothing of AMQP: the broker package hands each job over as a `Delivery`
(body, delivery count, whether its front waits, reply, ack, dead-letter).
The worker renders with the same render stage as the embedded mode (source
policy, source cache, limits, admission), so both modes answer alike.

What happens to a job:
- malformed, or of an unknown version: dead-lettered with a log line, never
  retried and never a crash;
- its deadline has passed: acknowledged and dropped (nobody waits for it);
- delivered before, and its front no longer waits for it (the front lost its
  connection, which answered the request 503 and took the reply queue with
  it; a broker restart does this to every job it held): acknowledged and
  dropped. Such a job was handed back by a lost connection, not by a worker
  that died on it, so it is neither rendered nor counted as poison;
- delivered `delivery_limit` times before (each earlier delivery ended
  without an answer, so it ended its worker): answered 422 without another
  try, and dead-lettered: a poison job cannot loop;
- otherwise rendered within its deadline; the reply (preview or error) is
  sent, then the job acknowledged. A worker that dies before that leaves
  the job to the broker, which delivers it again to another worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass

from previewer.broker import jobs
from previewer.broker.consumer import Delivery
from previewer.errors import BadImage, PreviewError, RequestTimeout
from previewer.observe import logs
from previewer.options import GRAVITIES, OUTPUT_FORMATS
from previewer.render.renderer import Renderer, RendererHealth, RenderJob

log = logging.getLogger(__name__)


@dataclass
class WorkerCounters:
    jobs: int = 0
    rendered: int = 0
    failed: int = 0  # answered with an error
    expired: int = 0  # dropped: the deadline had passed on arrival
    malformed: int = 0
    poison: int = 0  # refused after too many deliveries
    redelivered: int = 0  # jobs seen again after an earlier delivery
    orphaned: int = 0  # redelivered jobs dropped: their front no longer waits


class Worker:
    """Answers render jobs with `renderer`."""

    def __init__(self, renderer: Renderer, *, max_dimension: int, delivery_limit: int) -> None:
        self._renderer = renderer
        self._max_dimension = max_dimension
        self._delivery_limit = delivery_limit
        self.counters = WorkerCounters()

    def rendering(self) -> RendererHealth:
        """The render stage's own figures: fetches, source hits, renders, the source cache."""
        return self._renderer.health()

    async def handle(self, delivery: Delivery) -> None:
        self.counters.jobs += 1
        try:
            job = jobs.decode_job(
                delivery.body,
                max_dimension=self._max_dimension,
                gravities=GRAVITIES,
                formats=OUTPUT_FORMATS,
            )
        except jobs.MalformedMessage as exc:
            self.counters.malformed += 1
            log.warning("malformed job dead-lettered: %s", exc)
            await delivery.dead_letter()
            return
        # each delivery runs in a task of its own: its log lines carry the request's id
        logs.current_request.set(job.request_id)
        source = job.options.source
        if delivery.deliveries:
            self.counters.redelivered += 1
        left = job.deadline - time.time()
        if left <= 0:
            self.counters.expired += 1
            log.info("job for %s dropped: its deadline passed %.1fs ago", source, -left)
            await delivery.ack()
            return
        if delivery.deliveries and not await delivery.awaited():
            self.counters.orphaned += 1
            log.info(
                "job for %s dropped: delivered again after its front stopped waiting for it",
                source,
            )
            await delivery.ack()
            return
        if delivery.deliveries >= self._delivery_limit:
            self.counters.poison += 1
            log.error(
                "job for %s refused: delivered %d times, each attempt ended its worker",
                source,
                delivery.deliveries + 1,
            )
            error = BadImage(
                "The source could not be rendered.",
                detail=f"delivered {delivery.deliveries + 1} times without an answer",
            )
            await delivery.reply(*jobs.encode_error(error))
            await delivery.dead_letter()
            return
        started = time.perf_counter()
        body, headers = await self._render(job, left)
        ms = (time.perf_counter() - started) * 1000
        if headers["ok"]:
            self.counters.rendered += 1
            log.info("rendered %s in %.1f ms", job.options.cache_key(), ms)
        else:
            self.counters.failed += 1
            log.info("job for %s failed in %.1f ms: %s", source, ms, headers["code"])
        await delivery.reply(body, headers)
        await delivery.ack()

    async def _render(self, job: jobs.Job, left: float) -> tuple[bytes, dict[str, object]]:
        abandoned = threading.Event()
        try:
            async with asyncio.timeout(left):
                result = await self._renderer.render(
                    RenderJob(
                        job.options, job.headers, job.client_address, request_id=job.request_id
                    ),
                    abandoned,
                )
        except TimeoutError:
            abandoned.set()
            return jobs.encode_error(RequestTimeout(detail="deadline passed on the worker"))
        except PreviewError as exc:
            if exc.status >= 500:
                log.warning("job for %s: %s (%s)", job.options.source, exc.code, exc.detail)
            return jobs.encode_error(exc)
        except Exception:
            log.exception("render of %s failed", job.options.source)
            return jobs.encode_error(PreviewError())
        return jobs.encode_reply(
            jobs.Reply(result.body, result.content_type, result.shareable, result.complete)
        )
