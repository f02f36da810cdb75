"""URL signing: the scheme, verification, and the `previewer sign` helper."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from previewer import cli, signing
from previewer.config.settings import ConfigError
from previewer.errors import InvalidSignature

KEY = bytes.fromhex("736563726574")
SALT = bytes.fromhex("68656c6c6f")
PATH = "/fill/300/200/example.com/photos/owl.jpg?size=large"


def test_signature_is_unpadded_base64url_hmac_sha256_of_salt_and_path() -> None:
    digest = hmac.new(KEY, SALT + PATH.encode(), hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert signing.sign(PATH, KEY, SALT) == expected
    assert "=" not in expected


def test_verify_returns_the_unsigned_path() -> None:
    assert signing.verify(signing.signed_path(PATH, KEY, SALT), KEY, SALT) == PATH


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p.replace("300", "301"),
        lambda p: p.replace("owl", "Owl"),
        lambda p: p.replace("size=large", "size=huge"),
        lambda p: p + "&x=1",
        lambda p: "/" + "A" * 43 + p[p.index("/fill") :],
        lambda p: p[p.index("/fill") :],  # signature removed
        lambda p: "/" + p.split("/")[1],  # nothing after the signature
        lambda p: "//fill" + p.split("/fill", 1)[1],  # empty signature
    ],
)
def test_any_change_breaks_the_signature(tamper: object) -> None:
    signed = signing.signed_path(PATH, KEY, SALT)
    with pytest.raises(InvalidSignature) as info:
        signing.verify(tamper(signed), KEY, SALT)  # type: ignore[operator]
    assert info.value.status == 403


def test_other_key_or_salt_fails() -> None:
    signed = signing.signed_path(PATH, KEY, SALT)
    with pytest.raises(InvalidSignature):
        signing.verify(signed, b"other", SALT)
    with pytest.raises(InvalidSignature):
        signing.verify(signed, KEY, b"")


def test_non_ascii_signature_is_refused_not_crashed() -> None:
    with pytest.raises(InvalidSignature):
        signing.verify("/\udcff\u00e9/fill/1/1/a/b", KEY, SALT)


def test_sign_paths_handles_paths_and_urls() -> None:
    path, url = cli.sign_paths([PATH, "https://previews.example:8443" + PATH], KEY, SALT)
    assert path == signing.signed_path(PATH, KEY, SALT)
    assert url == "https://previews.example:8443" + path


def test_a_signed_url_verifies_and_keeps_its_fragment_unsigned() -> None:
    (url,) = cli.sign_paths(["http://[::1]:8080" + PATH + "#top"], KEY, SALT)
    assert url.startswith("http://[::1]:8080/")
    assert url.endswith("#top")
    sent = url.removeprefix("http://[::1]:8080").removesuffix("#top")  # what a client sends
    assert signing.verify(sent, KEY, SALT) == PATH


@pytest.mark.parametrize(
    "text",
    [
        "/health",
        "https://previews.example/health",
        "https://previews.example",
        "fill/1/1/a",
        "/fitx/1/1/a",
        "/fit",
    ],
)
def test_sign_paths_refuses_other_paths(text: str) -> None:
    with pytest.raises(ConfigError, match="not a /fill/ or /fit/ path"):
        cli.sign_paths([text], KEY, SALT)


def test_sign_command_prints_signed_paths(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["sign", "--signing-key", KEY.hex(), "--signing-salt", SALT.hex(), PATH])
    assert code == 0
    assert capsys.readouterr().out.strip() == signing.signed_path(PATH, KEY, SALT)


def test_sign_command_needs_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sign", PATH]) == 2
    assert "PREVIEWER_SIGNING_KEY" in capsys.readouterr().err


FIT = PATH.replace("/fill/", "/fit/")


def test_the_signature_covers_the_operation() -> None:
    """A /fill signature never opens the /fit path of the same size and source."""
    fill_signature = signing.sign(PATH, KEY, SALT)
    assert signing.verify(signing.signed_path(FIT, KEY, SALT), KEY, SALT) == FIT
    with pytest.raises(InvalidSignature):
        signing.verify(f"/{fill_signature}{FIT}", KEY, SALT)
    with pytest.raises(InvalidSignature):
        signing.verify(f"/{signing.sign(FIT, KEY, SALT)}{PATH}", KEY, SALT)


def test_sign_command_signs_fit_paths_and_urls(capsys: pytest.CaptureFixture[str]) -> None:
    url = "https://previews.example" + FIT
    code = cli.main(["sign", "--signing-key", KEY.hex(), "--signing-salt", SALT.hex(), FIT, url])
    assert code == 0
    path, signed_url = capsys.readouterr().out.split()
    assert path == signing.signed_path(FIT, KEY, SALT)
    assert signed_url == "https://previews.example" + path
