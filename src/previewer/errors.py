"""The exception hierarchy of previewer. Each class carries its HTTP status.

Imports nothing that touches the network, the disk or libvips.

    PreviewError                      500  internal
    ├── InvalidRequest                400  bad_request
    │   ├── UriTooLong                414  uri_too_long
    │   └── HeaderTooLarge            431  header_too_large
    ├── NotFound                      404  not_found      (no such route)
    ├── MethodNotAllowed              405  method_not_allowed
    ├── SourceForbidden               403  source_forbidden
    ├── InvalidSignature              403  bad_signature
    ├── SourceError                        (the origin or its body is at fault)
    │   ├── SourceStatus              4xx as the origin said, 5xx -> 502   source_status
    │   ├── SourceUnavailable         502  source_unreachable
    │   ├── SourceTimeout             504  source_timeout
    │   ├── BadImage                  422  source_not_image
    │   └── SourceTooLarge            422  source_too_large
    ├── Overloaded                    503  overloaded     (with Retry-After)
    │   └── NoDescriptors             503  overloaded     (out of file descriptors)
    ├── Unavailable                   503  unavailable    (with Retry-After; broker mode)
    └── RequestTimeout                504  request_timeout

Clients get `code` and `public_message`; `detail` goes only to the log.
"""

from __future__ import annotations

from http import HTTPStatus


class PreviewError(Exception):
    """Base of every error previewer reports to a client."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "internal"
    default_message: str = "Internal error."

    def __init__(
        self,
        public_message: str | None = None,
        *,
        detail: str | None = None,
        status: HTTPStatus | None = None,
    ) -> None:
        self.public_message = public_message or self.default_message
        self.detail = detail or self.public_message
        if status is not None:
            self.status = status
        super().__init__(self.detail)

    def headers(self) -> dict[str, str]:
        """Extra response headers this error needs."""
        return {}


class InvalidRequest(PreviewError):
    status = HTTPStatus.BAD_REQUEST
    code = "bad_request"
    default_message = "The request is malformed."


class UriTooLong(InvalidRequest):
    status = HTTPStatus.REQUEST_URI_TOO_LONG
    code = "uri_too_long"
    default_message = "The request's path and query are too long."


class HeaderTooLarge(InvalidRequest):
    status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    code = "header_too_large"
    default_message = "A request header is too large."


class NotFound(PreviewError):
    status = HTTPStatus.NOT_FOUND
    code = "not_found"
    default_message = "No such endpoint."


class MethodNotAllowed(PreviewError):
    status = HTTPStatus.METHOD_NOT_ALLOWED
    code = "method_not_allowed"
    default_message = "Only GET and HEAD are supported."

    def headers(self) -> dict[str, str]:
        return {"Allow": "GET, HEAD"}


class SourceForbidden(PreviewError):
    status = HTTPStatus.FORBIDDEN
    code = "source_forbidden"
    default_message = "The source address is not allowed."


class InvalidSignature(PreviewError):
    status = HTTPStatus.FORBIDDEN
    code = "bad_signature"
    default_message = "The request's signature is missing or wrong."


class SourceError(PreviewError):
    """The origin, or what it sent, is at fault."""


class SourceStatus(SourceError):
    """The origin answered with an error status.

    A 4xx is passed through unchanged, so a missing source stays 404; a 5xx
    (or anything else that is not a success) becomes 502 Bad Gateway.
    """

    code = "source_status"

    def __init__(self, upstream_status: int, *, detail: str | None = None) -> None:
        self.upstream_status = upstream_status
        status = (
            HTTPStatus(upstream_status)
            if 400 <= upstream_status < 500 and upstream_status in HTTPStatus._value2member_map_
            else HTTPStatus.BAD_GATEWAY
        )
        super().__init__(
            f"The source server answered {upstream_status}.",
            detail=detail or f"origin status {upstream_status}",
            status=status,
        )


class SourceUnavailable(SourceError):
    status = HTTPStatus.BAD_GATEWAY
    code = "source_unreachable"
    default_message = "The source server could not be reached."


class SourceTimeout(SourceError):
    status = HTTPStatus.GATEWAY_TIMEOUT
    code = "source_timeout"
    default_message = "The source server took too long to answer."


class BadImage(SourceError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "source_not_image"
    default_message = "The source is not an image that can be previewed."


class SourceTooLarge(SourceError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "source_too_large"
    default_message = "The source image is too large."


class Overloaded(PreviewError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "overloaded"
    default_message = "The service is busy; retry shortly."

    retry_after = 1  # seconds, in Retry-After
    reason = "queue_full"  # a fixed word for the metrics: which limit was reached

    def __init__(
        self, retry_after: int = 1, *, detail: str | None = None, reason: str | None = None
    ) -> None:
        self.retry_after = retry_after
        if reason is not None:
            self.reason = reason
        super().__init__(detail=detail)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class NoDescriptors(Overloaded):
    """The process or the system is out of file descriptors (EMFILE, ENFILE).

    Transient: descriptors free up as connections close, so the request is
    worth retrying, like any other overload.
    """

    reason = "descriptors"


class Unavailable(Overloaded):
    """Broker mode: the broker is unreachable, or no worker consumes the job queue."""

    code = "unavailable"
    default_message = "The service cannot render right now; retry shortly."
    reason = "broker_down"


class RequestTimeout(PreviewError):
    status = HTTPStatus.GATEWAY_TIMEOUT
    code = "request_timeout"
    default_message = "The preview could not be made in time."


def error_from_reply(code: str, status: int, message: str) -> PreviewError:
    """Rebuild an error that a render worker reported, so a front answers what it said.

    The class is found by its code (an unknown code is an `internal` error);
    the status and public message are the worker's own.
    """
    classes: list[type[PreviewError]] = [PreviewError]
    by_code: dict[str, type[PreviewError]] = {}
    while classes:
        cls = classes.pop()
        by_code.setdefault(cls.code, cls)
        classes.extend(cls.__subclasses__())
    cls = by_code.get(code, PreviewError)
    exc = cls.__new__(cls)
    known = status in HTTPStatus._value2member_map_ and 400 <= status < 600
    PreviewError.__init__(
        exc,
        message or None,
        detail=f"worker answered {code} {status}: {message}",
        status=HTTPStatus(status) if known else HTTPStatus.INTERNAL_SERVER_ERROR,
    )
    return exc
