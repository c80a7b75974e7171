"""Credentials: expansion from the environment and redaction everywhere else."""

import pytest

from pipeline.secrets import MissingSecretError, expand_env, redact_text, redact_url


def test_expand_env_substitutes_and_reports_missing() -> None:
    assert expand_env("rtsp://admin:${PW}@h/s", {"PW": "s3cret"}) == "rtsp://admin:s3cret@h/s"
    with pytest.raises(MissingSecretError, match="PW"):
        expand_env("rtsp://admin:${PW}@h/s", {})


def test_redact_url_hides_password_keeps_user_and_host() -> None:
    assert redact_url("rtsp://admin:s3cret@10.0.0.3:554/stream1") == "rtsp://admin:***@10.0.0.3:554/stream1"
    assert redact_url("rtsp://10.0.0.3/stream1") == "rtsp://10.0.0.3/stream1"


def test_redact_text_hides_urls_and_known_values() -> None:
    text = "Connection to rtsp://admin:s3cret@10.0.0.3/s failed; token s3cret"
    out = redact_text(text, secrets=["s3cret"])
    assert "s3cret" not in out
    assert "10.0.0.3" in out
