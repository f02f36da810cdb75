"""Operations: Prometheus metrics on their own address, /ready and draining,
X-Request-Id from the client to the origin and into every log line, JSON logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

import images
import metric_contract
from conftest import Service, ServiceFactory, ServiceProcess
from origin import Gate, Origin
from previewer.metrics import BROKER_METRICS
from previewer.observe.logs import RequestIdFilter, TextFormatter
from waiting import until

JPEG = images.jpeg(400, 300)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape_text(url: str) -> str:
    async with aiohttp.ClientSession() as client, client.get(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return await resp.text()


async def scrape(service: Service) -> Samples:
    assert service.running.metrics_url is not None
    text = await scrape_text(service.running.metrics_url)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# --- metrics -----------------------------------------------------------------------------


async def test_metrics_count_a_known_sequence_of_requests(
    start_service: ServiceFactory, origin: Origin
) -> None:
    origin.add("/a.jpg", JPEG)
    service = await start_service(metrics_address="127.0.0.1:0")
    fill = f"/fill/120/90/{origin.authority}"
    status, _, miss_body = await service.get(f"{fill}/a.jpg")
    assert status == 200
    assert (await service.get(f"{fill}/a.jpg"))[0] == 200  # hit, from memory
    assert (await service.request("HEAD", f"{fill}/a.jpg"))[0] == 200  # hit, no body sent
    assert (await service.get(f"{fill}/gone.jpg"))[0] == 404  # the origin's 404
    assert (await service.get("/nowhere"))[0] == 404
    assert (await service.request("POST", f"{fill}/a.jpg"))[0] == 405
    assert (await service.get("/fill/0/0/x"))[0] == 400
    assert (await service.get(f"/fit/120/90/{origin.authority}/a.jpg"))[0] == 200  # a fit miss
    assert (await service.get("/fit/0/0/x"))[0] == 400
    assert (await service.get("/fitx/1/1/x"))[0] == 404
    for probe in ("/health", "/ready", "/health"):  # probes are not counted
        assert (await service.get(probe))[0] == 200

    samples = await scrape(service)
    requests = {
        (dict(labels)["status_class"], dict(labels)["code"], dict(labels)["operation"]): count
        for (name, labels), count in samples.items()
        if name == "previewer_requests_total"
    }
    assert requests == {
        ("2xx", "ok", "fill"): 3,
        ("2xx", "ok", "fit"): 1,
        ("4xx", "source_status", "fill"): 1,
        ("4xx", "not_found", "none"): 2,
        ("4xx", "method_not_allowed", "none"): 1,
        ("4xx", "bad_request", "fill"): 1,
        ("4xx", "bad_request", "fit"): 1,
    }
    duration = "previewer_request_duration_seconds_count"
    assert value(samples, duration, cache="hit") == 2
    assert value(samples, duration, cache="miss") == 2
    assert value(samples, "previewer_cache_requests_total", result="hit") == 2
    assert value(samples, "previewer_cache_requests_total", result="miss") == 3
    phases = "previewer_miss_phase_seconds_count"
    assert {p: value(samples, phases, phase=p) for p in ("queue", "fetch", "render", "store")} == {
        "queue": 2,
        "fetch": 1,  # the failed fetch has an outcome, not a phase; the fit's source is cached
        "render": 2,
        "store": 2,
    }
    assert value(samples, "previewer_miss_phase_seconds_sum", phase="render") > 0
    fetches = "previewer_origin_fetches_total"
    assert value(samples, fetches, outcome="ok") == 1
    assert value(samples, fetches, outcome="origin_4xx") == 1
    assert value(samples, fetches, outcome="timeout") == 0
    assert value(samples, "previewer_fetched_bytes_total") == len(JPEG)
    assert value(samples, "previewer_served_bytes_total") > 2 * len(miss_body)  # and the fit's
    assert value(samples, "previewer_overloaded_total", reason="queue_full") == 0
    assert value(samples, "previewer_renders_in_progress") == 0
    assert value(samples, "previewer_renders_waiting") == 0
    health = service.running.service.health()
    assert value(samples, "previewer_cache_entries", cache="preview") == 2
    assert value(samples, "previewer_cache_bytes", cache="preview") == health.cache.bytes > 0
    # the source is written in the background; the gauge follows it
    source_bytes = ("previewer_cache_bytes", frozenset({("cache", "source")}))

    async def source_stored() -> bool:
        return (await scrape(service)).get(source_bytes, 0) > len(JPEG)

    await until(source_stored)


async def test_live_metrics_are_the_contract(start_service: ServiceFactory, origin: Origin) -> None:
    """Every embedded-mode metric of deploy/metrics.txt is served, with its type and
    labels, and every previewer_* metric served is in the contract."""
    origin.add("/a.jpg", JPEG)
    service = await start_service(metrics_address="127.0.0.1:0")
    assert (await service.get(f"/fill/60/60/{origin.authority}/a.jpg"))[0] == 200
    assert service.running.metrics_url is not None
    text = await scrape_text(service.running.metrics_url)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    served = {name: f for name, f in families.items() if name.startswith("previewer_")}
    contract = metric_contract.load()
    embedded = {name: m for name, m in contract.items() if "embedded" in m.exported_by}
    assert len(embedded) == 15
    for name, metric in embedded.items():
        family = served.get(name.removesuffix("_total"))
        assert family is not None, f"{name} is not in /metrics"
        assert family.type == metric.type, name
        series = metric.series
        for sample in family.samples:
            assert sample.name in series, sample.name
            assert set(sample.labels) == series[sample.name], sample
        assert family.samples, f"{name} has no series yet"
    for name in served:
        assert name in embedded or name + "_total" in embedded, f"{name} is not in the contract"
    # what broker mode adds: the rest of the contract
    assert set(BROKER_METRICS) == set(contract) - set(embedded)


async def test_overloaded_answers_are_counted_by_reason(
    start_service: ServiceFactory, origin: Origin
) -> None:
    big = images.jpeg(3000, 3000)
    gate = Gate(big, expected=12)
    for i in range(12):  # distinct sources: each request fetches on its own
        origin.route(f"/big{i}.jpg", gate.handler)
    service = await start_service(workers="1", queue_size="1", metrics_address="127.0.0.1:0")
    paths = [f"/fill/{300 + i}/200/{origin.authority}/big{i}.jpg" for i in range(12)]
    tasks = [asyncio.ensure_future(service.get(p)) for p in paths]
    await gate.all_arrived.wait()
    gate.release()
    statuses = [status for status, _, _ in await asyncio.gather(*tasks)]
    refused = statuses.count(503)
    assert refused >= 1, statuses
    samples = await scrape(service)
    assert value(samples, "previewer_overloaded_total", reason="queue_full") == refused
    overloaded = {"status_class": "5xx", "code": "overloaded", "operation": "fill"}
    assert value(samples, "previewer_requests_total", **overloaded) == refused
    phases = "previewer_miss_phase_seconds_count"
    assert value(samples, phases, phase="render") == statuses.count(200)
    assert value(samples, phases, phase="queue") == statuses.count(200)
    assert value(samples, "previewer_origin_fetches_total", outcome="ok") == 12


async def test_metrics_are_off_by_default_and_never_on_the_public_port(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    service = await start_service()
    assert service.running.metrics_url is None
    status, _, body = await service.get("/metrics")
    assert status == 404
    assert json.loads(body)["error"] == "not_found"

    on = await start_service(metrics_address="127.0.0.1:0", cache_dir=str(tmp_path / "other"))
    assert on.running.metrics_url is not None
    assert not on.running.metrics_url.startswith(on.url)
    assert (await on.get("/metrics"))[0] == 404
    assert "previewer_requests_total" in await scrape_text(on.running.metrics_url)


# --- /ready ------------------------------------------------------------------------------


async def test_ready_answers_200_with_no_reasons(service: Service) -> None:
    status, headers, body = await service.get("/ready")
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert json.loads(body) == {"ready": True, "reasons": []}


async def test_ready_answers_503_when_the_cache_directory_cannot_be_written(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    service = await start_service(cache_dir=str(blocker / "cache"))
    status, _, body = await service.get("/ready")
    assert status == 503
    assert json.loads(body) == {"ready": False, "reasons": ["cache_dir_not_writable"]}
    assert (await service.get("/health"))[0] == 200  # alive all the same


async def test_sigterm_turns_ready_503_while_a_held_request_finishes(
    service_process: Callable[..., ServiceProcess], origin: Origin, tmp_path: Path
) -> None:
    gate = Gate(JPEG)
    origin.route("/held.jpg", gate.handler)
    proc = await asyncio.to_thread(
        service_process,
        ["--cache-dir", str(tmp_path / "c"), "--allow-private-networks"],
    )
    host, port = proc.url.removeprefix("http://").split(":")
    async with aiohttp.ClientSession() as client:

        async def get(path: str) -> tuple[int, dict[str, object]]:
            async with client.get(proc.url + path) as resp:
                body = await resp.read()
                parsed = json.loads(body) if resp.content_type == "application/json" else {}
                return resp.status, parsed

        assert await get("/ready") == (200, {"ready": True, "reasons": []})
        held = asyncio.ensure_future(get(f"/fill/100/80/{origin.authority}/held.jpg"))
        await asyncio.wait_for(gate.all_arrived.wait(), 30)
        proc.proc.send_signal(signal.SIGTERM)
        await until(lambda: any("stopping" in line for line in proc.log_lines))
        assert await get("/ready") == (503, {"ready": False, "reasons": ["shutting_down"]})
        assert (await get("/health"))[0] == 200  # alive: only not ready
        assert not held.done()
        gate.release()
        status, _ = await held
        assert status == 200
    assert await asyncio.to_thread(proc.proc.wait, 30) == 0

    def refused() -> bool:
        try:
            socket.create_connection((host, int(port)), 2).close()
        except ConnectionRefusedError:
            return True
        return False

    assert refused()
    proc.close()


# --- request ids -------------------------------------------------------------------------


@pytest.fixture
def request_log() -> Iterator[io.StringIO]:
    """previewer's log records, formatted as `--log-format text` writes them."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("previewer")
    logger.addHandler(handler)
    yield out
    logger.removeHandler(handler)


@pytest.fixture
def access_lines_on() -> Iterator[None]:
    logger = logging.getLogger("previewer.access")
    before = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(before)


@pytest.mark.usefixtures("access_lines_on")
async def test_a_well_formed_request_id_is_kept_and_forwarded(
    service: Service, origin: Origin, capsys: pytest.CaptureFixture[str]
) -> None:
    origin.add("/a.jpg", JPEG)
    sent = "req-42.a:b_C"
    path = f"/fill/50/50/{origin.authority}/a.jpg"
    status, headers, _ = await service.get(path, {"X-Request-Id": sent})
    assert status == 200
    assert headers["X-Request-Id"] == sent
    forwarded = [v for k, v in origin.requests[-1].headers if k.lower() == "x-request-id"]
    assert forwarded == [sent]
    status, headers, _ = await service.get(path, {"X-Request-Id": "hit-1"})
    assert headers["X-Request-Id"] == "hit-1"
    service.running.access_log.flush()
    lines = capsys.readouterr().err.splitlines()
    assert any(
        f"GET {path} status=200 cache=MISS" in ln and ln.endswith(f" request_id={sent}")
        for ln in lines
    )
    assert any("cache=HIT" in ln and ln.endswith(" request_id=hit-1") for ln in lines)


@pytest.mark.parametrize(
    "sent",
    ["has space", "x" * 129, "semi;colon", "", "ünïcode", "a/b"],
)
async def test_a_malformed_request_id_is_replaced_everywhere(
    service: Service, origin: Origin, sent: str
) -> None:
    origin.add("/a.jpg", JPEG)
    status, headers, _ = await service.get(
        f"/fill/50/50/{origin.authority}/a.jpg",
        [("X-Request-Id", sent.encode().decode("latin-1"))],
    )
    assert status == 200
    made = headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    forwarded = [v for k, v in origin.requests[-1].headers if k.lower() == "x-request-id"]
    assert forwarded == [made]


async def test_every_response_carries_a_request_id(service: Service) -> None:
    ids = set()
    for method, path, expected in [
        ("GET", "/health", 200),
        ("GET", "/ready", 200),
        ("GET", "/nowhere", 404),
        ("POST", "/health", 405),
        ("GET", "/fill/0/0/x", 400),
        ("GET", "/", 200),
    ]:
        status, headers, _ = await service.request(method, path)
        assert status == expected, path
        assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-Id"]), path
        ids.add(headers["X-Request-Id"])
    assert len(ids) == 6  # a new one each time


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 17000 + b"\r\n\r\n",
            431,
            "header_too_large",
        ),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "bad_request"),
    ],
)
async def test_requests_the_parser_refuses_get_a_request_id_and_are_counted(
    start_service: ServiceFactory, request_bytes: bytes, status: int, code: str
) -> None:
    service = await start_service(metrics_address="127.0.0.1:0")
    host, port = service.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request_bytes)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    assert re.match(rf"HTTP/1\.[01] {status} ", head), head
    assert re.search(r"(?im)^X-Request-Id: [0-9a-f]{32}\r?$", head), head
    samples = await scrape(service)
    counted = {
        labels: count
        for (name, labels), count in samples.items()
        if name == "previewer_requests_total"
    }
    # the parser refused it before any route: no operation
    assert counted == {
        frozenset({("status_class", "4xx"), ("code", code), ("operation", "none")}): 1
    }


async def test_log_lines_about_a_request_carry_its_id(
    service: Service, origin: Origin, request_log: io.StringIO
) -> None:
    whole = images.jpeg(600, 400)
    origin.add("/truncated.jpg", whole[: len(whole) // 2])
    status, _, _ = await service.get(
        f"/fill/60/40/{origin.authority}/truncated.jpg", {"X-Request-Id": "cut-1"}
    )
    assert status == 200
    (line,) = [ln for ln in request_log.getvalue().splitlines() if "source truncated" in ln]
    assert line.endswith(" request_id=cut-1")
    assert " WARNING previewer.render.renderer source truncated" in line


# --- JSON logs ---------------------------------------------------------------------------


async def test_json_logs_are_one_object_a_line_with_the_request_id(
    service_process: Callable[..., ServiceProcess], origin: Origin, tmp_path: Path
) -> None:
    whole = images.jpeg(600, 400)
    origin.add("/truncated.jpg", whole[: len(whole) // 2])
    origin.add("/a.jpg", JPEG)
    proc = await asyncio.to_thread(
        service_process,
        [
            "--cache-dir",
            str(tmp_path / "c"),
            "--allow-private-networks",
            "--log-format",
            "json",
            "--metrics-address",
            "127.0.0.1:0",
        ],
    )
    async with aiohttp.ClientSession() as client:
        for path, rid in [("truncated.jpg", "j-1"), ("a.jpg", "j-2"), ("gone.jpg", "j-3")]:
            url = f"{proc.url}/fill/60/40/{origin.authority}/{path}"
            async with client.get(url, headers={"X-Request-Id": rid}) as resp:
                await resp.read()
                assert resp.headers["X-Request-Id"] == rid
    assert await asyncio.to_thread(proc.stop) == 0
    records = [json.loads(line) for line in proc.log_lines]  # every line is one object
    for record in records:
        assert {"time", "level", "logger", "message", "request_id"} <= set(record), record
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    (metrics_line,) = [
        r for r in records if r["message"].startswith("metrics on http://127.0.0.1:")
    ]
    assert metrics_line["request_id"] is None
    (truncated,) = [r for r in records if "source truncated" in r["message"]]
    assert (truncated["level"], truncated["logger"], truncated["request_id"]) == (
        "WARNING",
        "previewer.render.renderer",
        "j-1",
    )
    access = {
        r["request_id"]: r
        for r in records
        if r["logger"] == "previewer.access" and r["path"].startswith("/fill/")
    }
    assert set(access) == {"j-1", "j-2", "j-3"}
    assert access["j-2"]["method"] == "GET"
    assert access["j-2"]["path"] == f"/fill/60/40/{origin.authority}/a.jpg"
    assert (access["j-2"]["status"], access["j-2"]["cache"], access["j-2"]["error"]) == (
        200,
        "MISS",
        None,
    )
    assert isinstance(access["j-2"]["ms"], float)
    assert (access["j-3"]["status"], access["j-3"]["error"]) == (404, "source_status")
    assert "404" in access["j-3"]["cause"]
