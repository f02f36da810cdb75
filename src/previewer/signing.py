"""URL signing: HMAC-SHA256 over the request path, checked in constant time.

Pure: imports nothing that touches the network, the disk or libvips.

A signed request puts the signature in front of the unsigned path:

    /{signature}/{operation}/{width}/{height}/{source}[?query]
    signature = base64url(HMAC-SHA256(key, salt + "/{operation}/{w}/{h}/{source}[?query]"))

without `=` padding. The operation (`fill` or `fit`) is part of the signed
text, so a signature made for a `/fill` path never opens the `/fit` path of
the same size and source, nor the other way round. Key and salt are
configured hex-encoded and used as raw bytes; the signed text is the path
exactly as it will be sent, query included, so no part of the request can be
changed without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from previewer.errors import InvalidSignature


def sign(path: str, key: bytes, salt: bytes = b"") -> str:
    """The signature of `path` (which starts with `/fill/` or `/fit/`)."""
    digest = hmac.new(key, salt + path.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def signed_path(path: str, key: bytes, salt: bytes = b"") -> str:
    return f"/{sign(path, key, salt)}{path}"


def verify(raw_path: str, key: bytes, salt: bytes = b"") -> str:
    """Check `/{signature}/rest` and return `/rest`; InvalidSignature otherwise."""
    signature, slash, rest = raw_path.removeprefix("/").partition("/")
    if not slash or not signature:
        raise InvalidSignature(detail="no signature in the path")
    path = "/" + rest
    expected = sign(path, key, salt)
    if not hmac.compare_digest(signature.encode("utf-8", "surrogateescape"), expected.encode()):
        raise InvalidSignature(detail="signature does not match")
    return path
