"""Settings from the environment: a wrong ``CCTV_*`` value is one clear line naming the variable, never a
traceback and never the value of a secret."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.settings import get_settings

REPO = Path(__file__).resolve().parents[2]
TOKEN = "Sh0rtT0k3n"  # under the 16 characters CCTV_INTERNAL_TOKEN needs
SENTINEL_PASSWORD = "S3nt1nelPw" * 120  # over the 1024 characters allowed


@pytest.fixture()
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_bad_values_name_each_variable_and_never_a_secret(monkeypatch: pytest.MonkeyPatch,
                                                          fresh_settings: None) -> None:
    from pipeline.settings import SettingsError  # imported here: the CLI test below runs without it

    monkeypatch.setenv("CCTV_REDIS_PORT", "70000")
    monkeypatch.setenv("CCTV_INTERNAL_TOKEN", TOKEN)
    monkeypatch.setenv("CCTV_REDIS_SENTINEL_PASSWORD", SENTINEL_PASSWORD)
    with pytest.raises(SettingsError) as err:
        get_settings()
    text = str(err.value)
    assert "CCTV_REDIS_PORT: Input should be less than or equal to 65535 (got '70000')" in text
    assert "CCTV_INTERNAL_TOKEN: String should have at least 16 characters" in text
    assert "CCTV_REDIS_SENTINEL_PASSWORD: String should have at most 1024 characters" in text
    assert "Sh0rt" not in text and "S3nt1nel" not in text


def test_cli_reports_a_bad_setting_in_one_line_without_traceback() -> None:
    env = {**os.environ, "CCTV_INTERNAL_TOKEN": TOKEN, "CCTV_REDIS_PORT": "abc"}
    run = subprocess.run([sys.executable, "-m", "pipeline", "redis-setup"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "CCTV_REDIS_PORT" in run.stderr and "CCTV_INTERNAL_TOKEN" in run.stderr
    assert TOKEN not in run.stderr + run.stdout


def test_console_commands_take_the_projects_redis_only_when_none_is_named(tmp_path: Path) -> None:
    """No Redis variable set: the URLs come from the secrets file; any one set (or no file): nothing changes."""
    from pipeline.settings import load_project_redis_credentials

    secrets_file = tmp_path / "redis.env"
    secrets_file.write_text("# comment\nCCTV_REDIS_URL=redis://w:pw@127.0.0.1:6390/0\n"
                            "CCTV_REDIS_ADMIN_URL=redis://default:adm@127.0.0.1:6390/0\nREDISCLI_AUTH=adm\n")
    env = {"CCTV_REDIS_SECRETS_FILE": str(secrets_file)}
    assert load_project_redis_credentials(env) == secrets_file
    assert env["CCTV_REDIS_URL"] == "redis://w:pw@127.0.0.1:6390/0" and "REDISCLI_AUTH" not in env
    named = {"CCTV_REDIS_SECRETS_FILE": str(secrets_file), "CCTV_REDIS_SENTINELS": "10.0.0.1:26379"}
    assert load_project_redis_credentials(named) is None and "CCTV_REDIS_URL" not in named
    missing = {"CCTV_REDIS_SECRETS_FILE": str(tmp_path / "absent.env")}
    assert load_project_redis_credentials(missing) is None and "CCTV_REDIS_URL" not in missing
