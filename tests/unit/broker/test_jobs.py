"""The broker wire format: jobs and replies survive a round trip; bad messages are refused."""

from __future__ import annotations

import dataclasses
import json
from http import HTTPStatus

import pytest

from previewer.broker import jobs
from previewer.errors import (
    BadImage,
    Overloaded,
    PreviewError,
    SourceStatus,
    SourceTimeout,
    SourceTooLarge,
    error_from_reply,
)
from previewer.options import PreviewOptions, parse_source

LIMITS = {
    "max_dimension": 4096,
    "gravities": ("attention", "attention-only", "centre"),
    "formats": ("auto", "webp", "avif"),
}


def _job(**changes: object) -> jobs.Job:
    options = PreviewOptions(
        operation="fill",
        width=300,
        height=200,
        gravity="centre",
        quality=80,
        source=parse_source("example.com/photos/owl.jpg?size=large"),
    )
    values: dict[str, object] = {
        "options": options,
        "headers": [("Accept", "image/webp"), ("Cookie", "a=1"), ("Cookie", "b=2")],
        "client_address": "203.0.113.9",
        "deadline": 1_900_000_000.25,
        "request_id": "req-1",
    }
    values.update(changes)
    return jobs.Job(**values)  # type: ignore[arg-type]


def test_a_job_survives_the_round_trip() -> None:
    job = _job()
    assert jobs.decode_job(jobs.encode_job(job), **LIMITS) == job  # type: ignore[arg-type]


@pytest.mark.parametrize(("output_format", "quality", "effort"), [("webp", 78, 0), ("avif", 60, 3)])
def test_a_negotiated_format_and_its_settings_survive_the_round_trip(
    output_format: str, quality: int, effort: int
) -> None:
    """A worker must render the format, quality and effort the front's cache key names."""
    options = dataclasses.replace(
        _job().options, output_format=output_format, quality=quality, effort=effort
    )
    job = _job(options=options)
    decoded = jobs.decode_job(jobs.encode_job(job), **LIMITS)  # type: ignore[arg-type]
    assert decoded == job
    assert decoded.options.cache_key() == options.cache_key()


def test_a_job_without_an_effort_is_read_as_effort_0() -> None:
    """Jobs from fronts that predate negotiation carry no effort (and only "auto")."""
    document = json.loads(jobs.encode_job(_job()))
    del document["options"]["effort"]
    assert jobs.decode_job(json.dumps(document).encode(), **LIMITS) == _job()  # type: ignore[arg-type]


def test_a_job_without_client_or_request_id_survives_the_round_trip() -> None:
    job = _job(client_address=None, request_id=None, headers=[])
    assert jobs.decode_job(jobs.encode_job(job), **LIMITS) == job  # type: ignore[arg-type]


def _document(**changes: object) -> bytes:
    document = json.loads(jobs.encode_job(_job()))
    for key, value in changes.items():
        if key.startswith("options_"):
            document["options"][key.removeprefix("options_")] = value
        else:
            document[key] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (_document(v=4), "unknown version 4"),
        (_document(v=True), "unknown version True"),
        (_document(v=[1]), "unknown version"),
        (_document(v=None), "unknown version"),
        (_document(options_width=0), "width"),
        (_document(options_width=5000), "width"),
        (_document(options_height="200"), "height"),
        (_document(options_width=True), "width"),
        (_document(options_gravity="north"), "gravity"),
        (_document(options_quality=101), "quality"),
        (_document(options_output_format="bmp"), "output_format"),
        (_document(options_effort=10), "effort"),
        (_document(options_effort=-1), "effort"),
        (_document(options_effort="3"), "effort"),
        (_document(options_operation="fit"), "operation"),
        (_document(options_source="ftp://example.com/a.jpg"), "bad source"),
        (_document(options_source="user@example.com/a.jpg"), "bad source"),
        (_document(options_source=7), "source"),
        (_document(options=None), "options"),
        (_document(headers=[["Accept"]]), "headers"),
        (_document(headers=[["Accept", 5]]), "headers"),
        (_document(headers="Accept: */*"), "headers"),
        (_document(client=5), "client"),
        (_document(deadline="soon"), "deadline"),
        (_document(deadline=True), "deadline"),
        (_document(request_id=5), "request_id"),
    ],
)
def test_malformed_jobs_are_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(jobs.MalformedMessage, match=reason):
        jobs.decode_job(body, **LIMITS)  # type: ignore[arg-type]


def test_the_worker_applies_its_own_dimension_limit() -> None:
    body = jobs.encode_job(_job())
    limits = {**LIMITS, "max_dimension": 250}
    with pytest.raises(jobs.MalformedMessage, match="width"):
        jobs.decode_job(body, **limits)  # type: ignore[arg-type]


def test_a_preview_reply_survives_the_round_trip() -> None:
    reply = jobs.Reply(b"\xff\xd8jpeg bytes", "image/jpeg", shareable=False, complete=True)
    body, headers = jobs.encode_reply(reply)
    assert jobs.decode_reply(body, headers) == reply


@pytest.mark.parametrize(
    "error",
    [
        BadImage(),
        SourceTooLarge("The source image has more than 5 pixels."),
        SourceTimeout(),
        SourceStatus(404),
        SourceStatus(503),
        Overloaded(),
        PreviewError(),
    ],
)
def test_an_error_reply_raises_the_same_code_status_and_message(error: PreviewError) -> None:
    body, headers = jobs.encode_error(error)
    with pytest.raises(PreviewError) as raised:
        jobs.decode_reply(body, headers)
    assert type(raised.value) is type(error)
    assert (raised.value.code, raised.value.status) == (error.code, error.status)
    assert raised.value.public_message == error.public_message
    assert raised.value.headers() == error.headers()


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {"v": 2, "ok": True},
        {"v": 1, "ok": True, "content_type": "image/jpeg", "complete": True},
        {"v": 1, "ok": True, "content_type": "image/jpeg", "shareable": True},
        {"v": 1, "ok": False, "code": "bad_request"},
        {"v": 1, "ok": False, "status": 400},
    ],
)
def test_malformed_replies_are_refused(headers: dict[str, object] | None) -> None:
    with pytest.raises(jobs.MalformedMessage):
        jobs.decode_reply(b"", headers)


def test_an_unknown_error_code_becomes_an_internal_error_with_the_status_given() -> None:
    error = error_from_reply("no_such_code", 502, "Something upstream.")
    assert (type(error), error.code, error.status) == (PreviewError, "internal", HTTPStatus(502))
    assert error.public_message == "Something upstream."


def test_an_impossible_status_becomes_500() -> None:
    assert error_from_reply("bad_request", 999, "x").status == HTTPStatus.INTERNAL_SERVER_ERROR
    assert error_from_reply("bad_request", 200, "x").status == HTTPStatus.INTERNAL_SERVER_ERROR


# --- versions: fit jobs are version 2, fill jobs stay version 1 -----------------------


def _fit_job() -> jobs.Job:
    return _job(options=dataclasses.replace(_job().options, operation="fit"))


def test_a_fit_job_survives_the_round_trip_as_version_2() -> None:
    job = _fit_job()
    body = jobs.encode_job(job)
    assert json.loads(body)["v"] == 2
    assert jobs.decode_job(body, **LIMITS) == job  # type: ignore[arg-type]


def test_a_fill_job_is_written_as_version_1_which_every_worker_reads() -> None:
    """Workers that predate fit read only version 1: fill jobs keep reaching them."""
    assert json.loads(jobs.encode_job(_job()))["v"] == 1


def test_a_version_2_fill_job_is_read_too() -> None:
    assert jobs.decode_job(_document(v=2), **LIMITS) == _job()  # type: ignore[arg-type]


def test_a_version_1_job_cannot_carry_fit() -> None:
    """What a worker that predates fit does with a fit job: refuse it as malformed."""
    document = json.loads(jobs.encode_job(_fit_job()))
    document["v"] = 1
    with pytest.raises(jobs.MalformedMessage, match="operation"):
        jobs.decode_job(json.dumps(document).encode(), **LIMITS)  # type: ignore[arg-type]


# --- version 3: `attention` with its face step, and `attention-only` -----------------


def _gravity_job(gravity: str) -> jobs.Job:
    return _job(options=dataclasses.replace(_job().options, gravity=gravity))


@pytest.mark.parametrize("gravity", ["attention", "attention-only"])
def test_a_fill_at_an_attention_gravity_is_version_3_and_survives_the_round_trip(
    gravity: str,
) -> None:
    job = _gravity_job(gravity)
    body = jobs.encode_job(job)
    assert json.loads(body)["v"] == 3 == jobs.VERSION
    assert jobs.decode_job(body, **LIMITS) == job  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_fronts_attention_is_rendered_without_the_face_step(version: int) -> None:
    """A front that predates version 3 keyed its `attention` previews as the analysis
    alone: a new worker renders them that way."""
    document = json.loads(jobs.encode_job(_gravity_job("attention")))
    document["v"] = version
    decoded = jobs.decode_job(json.dumps(document).encode(), **LIMITS)  # type: ignore[arg-type]
    assert decoded.options.gravity == "attention-only"
    assert decoded.options.cache_key() == _gravity_job("attention-only").options.cache_key()


def test_attention_only_is_not_a_word_of_the_older_versions() -> None:
    document = json.loads(jobs.encode_job(_gravity_job("attention-only")))
    document["v"] = 2
    with pytest.raises(jobs.MalformedMessage, match="gravity"):
        jobs.decode_job(json.dumps(document).encode(), **LIMITS)  # type: ignore[arg-type]


def test_fit_and_centre_jobs_stay_in_their_older_versions() -> None:
    """Only the face step needs version 3: the rest still reaches older workers."""
    assert json.loads(jobs.encode_job(_gravity_job("centre")))["v"] == 1
    fit_at_attention = dataclasses.replace(_fit_job().options, gravity="attention")
    assert json.loads(jobs.encode_job(_job(options=fit_at_attention)))["v"] == 2


def test_replies_stay_version_1() -> None:
    reply = jobs.Reply(b"x", "image/jpeg", shareable=True, complete=True)
    assert jobs.encode_reply(reply)[1]["v"] == 1
    assert jobs.encode_error(BadImage())[1]["v"] == 1
