"""Credentials: expansion from the environment (percent-encoded into the user-info) and redaction everywhere else."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import pytest

from pipeline.secrets import (
    RTSP_USERINFO_MAX,
    MissingSecretError,
    UrlUserinfo,
    child_environment,
    clear_registered_secrets,
    encode_userinfo,
    expand_env,
    expand_url,
    install_log_redaction,
    redact_text,
    redact_url,
    register_secrets,
    secret_forms,
    url_secrets,
    url_warnings,
)

# the passwords real cameras get: every character a URL reserves, '%' with and without hex digits, Thai, spaces
PASSWORDS = ["Plain2024pass", "Adm!n@2024#x", "a/b?c#d", "p:a:ss", "50%off", "x%41y", "with space", "ก๊อปปี้ไทย2567",
             "quo\"te'back\\slash", "@#/:%! ~&=+$,;[]"]  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    clear_registered_secrets()
    yield
    clear_registered_secrets()


def test_expand_env_substitutes_and_reports_missing() -> None:
    assert expand_env("rtsp://admin:${PW}@h/s", {"PW": "s3cret"}) == "rtsp://admin:s3cret@h/s"
    with pytest.raises(MissingSecretError, match="PW"):
        expand_env("rtsp://admin:${PW}@h/s", {})


@pytest.mark.parametrize("password", PASSWORDS)
def test_expand_url_encodes_any_password_so_a_parser_reads_it_back(password: str) -> None:
    url = expand_url("rtsp://${CAM_USER}:${CAM_PW}@10.0.0.3:554/Streaming/Channels/101",
                     {"CAM_USER": "ad:min x", "CAM_PW": password})  # fmt: skip
    parts = urlsplit(url)
    assert (parts.hostname, parts.port, parts.path) == ("10.0.0.3", 554, "/Streaming/Channels/101")
    assert unquote(parts.username or "") == "ad:min x" and unquote(parts.password or "") == password
    assert url.isascii() and " " not in url


def test_literal_userinfo_is_kept_as_typed_and_other_variables_are_not_encoded() -> None:
    env = {"PW": "a@b", "HOST": "10.0.0.3", "TOKEN": "t=1&u=2"}
    assert expand_url("rtsp://admin:Adm%21n%402024@h/s", env) == "rtsp://admin:Adm%21n%402024@h/s"
    assert expand_url("rtsp://admin:${PW}@${HOST}/s?${TOKEN}", env) == "rtsp://admin:a%40b@10.0.0.3/s?t=1&u=2"
    assert expand_url("/data/clip.mp4", env) == "/data/clip.mp4"
    assert expand_url("rtsp://h/${HOST}", env) == "rtsp://h/10.0.0.3"


def test_long_non_ascii_password_uses_the_iri_form_that_fits_ffmpeg() -> None:
    password = "รหัสผ่านยาวมากสำหรับกล้อง"  # 25 Thai letters: 225 characters percent-encoded
    url = expand_url("rtsp://admin:${PW}@h/s", {"PW": password})
    userinfo = UrlUserinfo.split(url)
    assert userinfo is not None and userinfo.password == encode_userinfo(password, iri=True)
    assert len(f"admin:{userinfo.password}".encode()) <= RTSP_USERINFO_MAX and unquote(userinfo.password) == password
    assert expand_url("http://admin:${PW}@h/s", {"PW": password}).isascii()  # the limit is ffmpeg's RTSP client's


def test_url_secrets_are_the_values_and_a_literal_password_both_ways() -> None:
    env = {"PW": "Adm!n@2024#x", "EMPTY": ""}
    assert url_secrets("rtsp://admin:${PW}@h/s?x=${EMPTY}", env) == ["Adm!n@2024#x"]
    assert url_secrets("rtsp://admin:Adm%21n%40@h/s", env) == ["Adm%21n%40", "Adm!n@"]
    assert redact_text("Adm%21n%402024%23x and Adm!n@") == "*** and ***"  # registered as a side effect


def test_redact_url_hides_password_keeps_user_and_host() -> None:
    assert redact_url("rtsp://admin:s3cret@10.0.0.3:554/stream1") == "rtsp://admin:***@10.0.0.3:554/stream1"
    assert redact_url("rtsp://10.0.0.3/stream1") == "rtsp://10.0.0.3/stream1"
    assert redact_url("rtsp://admin:${CAM_PW}@10.0.0.3/s") == "rtsp://admin:***@10.0.0.3/s"


def test_redact_url_hides_a_password_holding_at_and_hash_whole() -> None:
    """The issue: redaction stopped at the first '@' and printed '2024#x' of 'Adm!n@2024#x'."""
    url = "rtsp://admin:Adm!n@2024#x@127.0.0.1:8654/Streaming/Channels/101"
    assert redact_url(url) == "rtsp://admin:***@127.0.0.1:8654/Streaming/Channels/101"
    text = f"stream ended: {url}: Invalid data found when processing input"
    assert "2024" not in redact_text(text) and "127.0.0.1:8654/Streaming" in redact_text(text)


def test_redact_text_hides_urls_and_known_values() -> None:
    text = "Connection to rtsp://admin:s3cret@10.0.0.3/s failed; token s3cret"
    out = redact_text(text, secrets=["s3cret"])
    assert "s3cret" not in out
    assert "10.0.0.3" in out


@pytest.mark.parametrize("password", PASSWORDS)
def test_registered_secret_is_removed_in_every_printed_form(password: str) -> None:
    register_secrets([password])
    for form in secret_forms(password):
        out = redact_text(f"error near {form} (ffmpeg: rtsp://admin:{encode_userinfo(password)}@h/s)")
        assert form not in out and encode_userinfo(password) not in out and "***" in out
    assert {password, encode_userinfo(password), repr(password)[1:-1]} <= secret_forms(password)


def test_log_records_are_redacted_message_args_and_exception(caplog: pytest.LogCaptureFixture) -> None:
    register_secrets(["Adm!n@2024#x"])
    install_log_redaction()
    install_log_redaction()  # idempotent
    log = logging.getLogger("tests.secrets")
    with caplog.at_level(logging.INFO):
        log.info("opening %s with %s", "rtsp://admin:Adm%21n%402024%23x@h/s", "Adm!n@2024#x")
        try:
            raise RuntimeError("camera said no to Adm!n@2024#x")
        except RuntimeError:
            log.exception("failed")
        log.info("untouched %d%%", 5)
    assert "Adm" not in caplog.text and "2024" not in caplog.text
    assert "opening rtsp://admin:***@h/s with ***" in caplog.text and "camera said no to ***" in caplog.text
    assert "untouched 5%" in caplog.text and caplog.records[-1].args == (5,)  # unchanged records keep their args


@pytest.mark.parametrize(
    ("url", "env", "expected"),
    [
        ("rtsp://admin:${PW}@h/s", {}, "environment variable PW is referenced but not set"),
        ("rtsp://admin:Adm!n@2024#x@h:8654/s", {}, "the URL holds an '@' after a '#'"),
        ("rtsp://admin:Adm!n@2024#x@h:8654/s", {}, "password written in clear"),
        ("rtsp://admin:p@ss@h/s", {}, "unencoded '@': write it %40"),
        ("rtsp://admin:50%off@h/s", {}, "not followed by two hex digits"),
        ("rtsp://admin:with space@h/s", {}, "characters a URL cannot carry unencoded"),
        ("rtsp://admin:${PW}@h/s", {"PW": "Adm%21n%40"}, "PW looks percent-encoded"),
        ("rtsp://${U}:${PW}@h/s", {"U": "a:b", "PW": "x"}, "U is used as the user name and holds ':'"),
        ("rtsp://admin:${PW}@h/s", {"PW": "ก" * 50}, "more than the 127 that ffmpeg's RTSP client keeps"),
    ],
)
def test_url_warnings(url: str, env: dict[str, str], expected: str) -> None:
    warnings = url_warnings(url, env)
    assert any(expected in w for w in warnings), warnings
    for secret in ("Adm!n", "2024", "p@ss", "50%off", "with space", "21n"):
        assert secret not in " ".join(warnings)


@pytest.mark.parametrize("url", ["rtsp://admin:${PW}@h:554/Streaming/Channels/101", "rtsp://h/s", "/data/clip.mp4",
                                 "rtsp://admin:Adm%21n%402024@h/s"])  # fmt: skip
def test_no_warning_for_a_sound_url(url: str) -> None:
    warnings = url_warnings(url, {"PW": "Adm!n@2024#x/:% ก"})
    assert warnings == ([] if "Adm%21n" not in url else [w for w in warnings if "password written in clear" in w])


def test_child_environment_drops_variables_holding_secrets() -> None:
    url_secrets("rtsp://admin:${PW}@h/s", {"PW": "Adm!n@2024#x"})
    env = child_environment({"PW": "Adm!n@2024#x", "PATH": "/usr/bin", "OTHER_COPY": "Adm!n@2024#x", "E": ""})
    assert env == {"PATH": "/usr/bin", "E": ""}
