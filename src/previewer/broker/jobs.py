"""Render jobs and their replies as broker messages: the wire format of broker mode.

Pure: imports nothing that touches the network, the disk or libvips.

A job is a JSON document (the message body); a reply carries the preview
bytes as its body and its metadata in message headers, so a preview of a
few hundred kilobytes is never re-encoded:

    job    body  {"v": 1 | 2 | 3, "options": {...}, "headers": [[name, value], ...],
                  "client": "203.0.113.9" | null, "deadline": <Unix time>,
                  "request_id": "..." | null}
    reply  headers {"v": 1, "ok": true, "content_type": ..., "shareable": ..,
                    "complete": ..}                  body: the preview
           headers {"v": 1, "ok": false, "code": ..., "status": ..}
                                                     body: the public message

A worker validates every field again (its own limits apply), so a front can
never make a worker render what the worker's settings refuse. A message of
another version, or malformed, raises MalformedMessage.

Job versions: version 1 carries `"operation": "fill"` only; version 2 adds
`"fit"`; version 3 gives the gravity `attention` its face step and adds
`attention-only`, the analysis `attention` named before. In versions 1 and 2,
`attention` means `attention-only`: a worker renders an old front's job the
way that front keyed it. A front writes each job in the oldest version that
can carry it (a centre-gravity fill stays version 1, a fit version 2; a fill
at either attention gravity is version 3) and a worker reads all three. A job
reaching a worker that predates its version is dead-lettered as of an
unknown version, and its request ends 504 at its deadline: upgrade the
workers before the fronts (docs/scale-out.md). Replies did not change: they
stay version 1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from previewer.errors import PreviewError, error_from_reply
from previewer.options import (
    ATTENTION,
    ATTENTION_ONLY,
    CENTRE,
    FILL,
    MAX_EFFORT,
    OPERATIONS,
    PreviewOptions,
    parse_source,
)

VERSION = 3  # the newest job version; `job_version` says which one a job is written in
REPLY_VERSION = 1
_OPERATIONS_BY_VERSION = {1: (FILL,), 2: OPERATIONS, 3: OPERATIONS}
_FACES = 3  # the version from which `attention` has its face step
_FIELD_LIMIT = 64 * 1024  # bytes of one header value; larger is not a real client's


class MalformedMessage(ValueError):
    """A job or reply that this version cannot read; it is dead-lettered, never retried."""


@dataclass(frozen=True)
class Job:
    """One miss sent to the workers."""

    options: PreviewOptions
    headers: list[tuple[str, str]]  # the client's request headers, before forwarding rules
    client_address: str | None
    deadline: float  # Unix time after which nobody waits for the answer
    request_id: str | None = None


@dataclass(frozen=True)
class Reply:
    """A worker's answer: a preview, or the error the embedded mode would have raised."""

    body: bytes
    content_type: str
    shareable: bool
    complete: bool


def job_version(options: PreviewOptions) -> int:
    """The oldest job version that carries `options`: what the most workers read."""
    if options.operation == FILL and options.gravity != CENTRE:
        return _FACES
    return min(
        v for v, operations in _OPERATIONS_BY_VERSION.items() if options.operation in operations
    )


def encode_job(job: Job) -> bytes:
    options = job.options
    document = {
        "v": job_version(options),
        "options": {
            "operation": options.operation,
            "width": options.width,
            "height": options.height,
            "gravity": options.gravity,
            "quality": options.quality,
            "output_format": options.output_format,
            "effort": options.effort,
            "source": str(options.source),
        },
        "headers": [[name, value] for name, value in job.headers],
        "client": job.client_address,
        "deadline": job.deadline,
        "request_id": job.request_id,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def decode_job(
    body: bytes, *, max_dimension: int, gravities: tuple[str, ...], formats: tuple[str, ...]
) -> Job:
    """Parse and validate a job against this worker's own limits."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedMessage("not a JSON object")
    version = document.get("v")
    if type(version) is not int or version not in _OPERATIONS_BY_VERSION:
        raise MalformedMessage(f"unknown version {version!r}")
    raw = _field(document, "options", dict)
    try:
        source = parse_source(_field(raw, "source", str))
    except PreviewError as exc:
        raise MalformedMessage(f"bad source: {exc.public_message}") from None
    options = PreviewOptions(
        operation=_choice(raw, "operation", _OPERATIONS_BY_VERSION[version]),
        width=_int(raw, "width", 1, max_dimension),
        height=_int(raw, "height", 1, max_dimension),
        gravity=_gravity(raw, version, gravities),
        quality=_int(raw, "quality", 1, 100),
        source=source,
        output_format=_choice(raw, "output_format", formats),
        # absent from jobs of fronts that predate negotiation: they send only "auto"
        effort=_int(raw, "effort", 0, MAX_EFFORT) if "effort" in raw else 0,
    )
    headers = _field(document, "headers", list)
    pairs: list[tuple[str, str]] = []
    for pair in headers:
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(part, str) and len(part) <= _FIELD_LIMIT for part in pair)
        ):
            raise MalformedMessage("headers must be [name, value] string pairs")
        pairs.append((pair[0], pair[1]))
    client = document.get("client")
    if client is not None and not isinstance(client, str):
        raise MalformedMessage("client must be a string or null")
    deadline = document.get("deadline")
    if not isinstance(deadline, int | float) or isinstance(deadline, bool):
        raise MalformedMessage("deadline must be a number")
    request_id = document.get("request_id")
    if request_id is not None and not isinstance(request_id, str):
        raise MalformedMessage("request_id must be a string or null")
    return Job(options, pairs, client, float(deadline), request_id)


def encode_reply(reply: Reply) -> tuple[bytes, dict[str, Any]]:
    headers = {
        "v": REPLY_VERSION,
        "ok": True,
        "content_type": reply.content_type,
        "shareable": reply.shareable,
        "complete": reply.complete,
    }
    return reply.body, headers


def encode_error(exc: PreviewError) -> tuple[bytes, dict[str, Any]]:
    headers = {"v": REPLY_VERSION, "ok": False, "code": exc.code, "status": int(exc.status)}
    return exc.public_message.encode(), headers


def decode_reply(body: bytes, headers: Mapping[str, Any] | None) -> Reply:
    """The preview of a reply; raises the PreviewError it carries, or MalformedMessage."""
    headers = headers or {}
    if headers.get("v") != REPLY_VERSION:
        raise MalformedMessage(f"unknown reply version {headers.get('v')!r}")
    if headers.get("ok") is True:
        content_type = headers.get("content_type")
        shareable, complete = headers.get("shareable"), headers.get("complete")
        if not isinstance(content_type, str) or not isinstance(shareable, bool):
            raise MalformedMessage("reply without content_type or shareable")
        if not isinstance(complete, bool):
            raise MalformedMessage("reply without complete")
        return Reply(body, content_type, shareable, complete)
    code, status = headers.get("code"), headers.get("status")
    if not isinstance(code, str) or not isinstance(status, int):
        raise MalformedMessage("error reply without code or status")
    raise error_from_reply(code, status, body.decode("utf-8", "replace"))


def _field(document: Mapping[str, Any], name: str, kind: type) -> Any:
    value = document.get(name)
    if not isinstance(value, kind):
        raise MalformedMessage(f"{name} must be a {kind.__name__}")
    return value


def _int(document: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = document.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise MalformedMessage(f"{name} must be a whole number from {low} to {high}")
    return value


def _gravity(document: Mapping[str, Any], version: int, gravities: tuple[str, ...]) -> str:
    """The job's gravity as this version names it; before version 3, `attention`
    is the analysis without faces."""
    if version >= _FACES:
        return _choice(document, "gravity", gravities)
    older = tuple(g for g in gravities if g != ATTENTION_ONLY)
    gravity = _choice(document, "gravity", older)
    return ATTENTION_ONLY if gravity == ATTENTION else gravity


def _choice(document: Mapping[str, Any], name: str, choices: tuple[str, ...]) -> str:
    value = document.get(name)
    if value not in choices:
        raise MalformedMessage(f"{name} must be one of {', '.join(choices)}")
    assert isinstance(value, str)
    return value
