"""Where the API's camera list comes from: a single-host ``pipeline run --role all`` service serves the ``--config``
file its workers run and ignores configurations pushed with ``cluster push-config`` (warning once), while a
``--role api`` host keeps following pushes.

Before: the ``--role all`` API followed a push (the workers never do), so a camera removed by the push was still
recorded and analysed but missing from the UI, health and user grants; and after a push the API kept serving the
pushed cameras over an edited ``cameras.yaml`` across restarts."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

import pytest
import redis
import uvicorn
from fastapi.testclient import TestClient

import pipeline.cluster.roles as roles
import pipeline.service as service
from api.clusterconfig import camera_config_loop
from api.main import create_app
from api.settings import ApiSettings
from pipeline.cluster.configstore import push_config
from pipeline.config import parse_config
from tests.api.test_api_replicas import _login, _yaml

pytestmark = pytest.mark.timeout(120)
PASSWORD = "correct horse battery"
IGNORED = "a configuration pushed with `cluster push-config` is ignored by a single-host `--role all` service"


def _cameras(tc: TestClient, auth: dict[str, str]) -> set[str]:
    return {c["id"] for c in tc.get("/api/cameras", headers=auth).json()}


def _poll_once(app, rclient: redis.Redis) -> None:
    """A few steps of the API's background configuration loop (every 5 s in service)."""
    async def run() -> None:
        try:
            await asyncio.wait_for(camera_config_loop(app, rclient, poll_s=0.05), timeout=0.5)
        except TimeoutError:
            pass

    asyncio.run(run())


def _settings(api_settings: ApiSettings, tmp_path: Path, source: str | None) -> ApiSettings:
    path = tmp_path / "cameras.yaml"
    path.write_text(_yaml("walkway-01", "gate-02"))
    update: dict[str, object] = {"config_path": path}
    if source is not None:
        update["camera_config_source"] = source
    return api_settings.model_copy(update=update)


def test_a_role_all_api_serves_its_file_and_warns_about_a_pushed_config(
        api_settings: ApiSettings, rclient: redis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    push_config(rclient, _yaml("gate-02"))  # a stale push (cfg/nowalkway.yaml) from before a restart
    app = create_app(_settings(api_settings, tmp_path, "file"))
    with caplog.at_level(logging.WARNING, logger="api.clusterconfig"), TestClient(app) as tc:
        auth = _login(tc, rclient)
        assert _cameras(tc, auth) == {"walkway-01", "gate-02"}  # the file the workers run, not the push
        assert tc.get("/api/cameras/walkway-01", headers=auth).status_code == 200
        _poll_once(app, rclient)
        assert len([r for r in caplog.records if IGNORED in r.getMessage()]) == 1  # once, not once per poll
        push_config(rclient, _yaml("other-03"))  # a push while the service runs
        _poll_once(app, rclient)
        assert _cameras(tc, auth) == {"walkway-01", "gate-02"}
    warnings = [r.getMessage() for r in caplog.records if IGNORED in r.getMessage()]
    assert len(warnings) == 2, warnings  # one per pushed version, not one per poll
    assert "restart with the file, or run --role api/worker" in warnings[0]
    assert rclient.get("cctv:cluster:single-host") is not None  # what `cluster push-config` looks at


def test_a_role_all_api_does_not_warn_when_the_push_is_its_file(
        api_settings: ApiSettings, rclient: redis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = _settings(api_settings, tmp_path, "file")
    push_config(rclient, Path(settings.config_path).read_text())
    with caplog.at_level(logging.WARNING, logger="api.clusterconfig"), TestClient(create_app(settings)) as tc:
        assert _cameras(tc, _login(tc, rclient)) == {"walkway-01", "gate-02"}
    assert not [r for r in caplog.records if IGNORED in r.getMessage()]


@pytest.mark.parametrize("source", [None, "cluster"])
def test_a_role_api_api_still_follows_pushes(api_settings: ApiSettings, rclient: redis.Redis, tmp_path: Path,
                                             source: str | None) -> None:
    push_config(rclient, _yaml("gate-02"))
    app = create_app(_settings(api_settings, tmp_path, source))
    with TestClient(app) as tc:
        auth = _login(tc, rclient)
        assert _cameras(tc, auth) == {"gate-02"}
        push_config(rclient, _yaml("gate-02", "other-03"))
        _poll_once(app, rclient)
        assert _cameras(tc, auth) == {"gate-02", "other-03"}


def test_the_role_all_supervisor_tells_its_api_to_serve_the_file(tmp_path: Path, monkeypatch) -> None:
    cameras = tmp_path / "site.yaml"
    cameras.write_text(_yaml("walkway-01"))
    children = service.build_children(parse_config(cameras.read_text()), None, None, "127.0.0.1", 0, True, cameras)
    [api] = [c for c in children if c.name == "api"]
    seen: dict[str, str | None] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: seen.update(source=os.environ.get("CCTV_CAMERA_CONFIG_SOURCE"),
                                                                       path=os.environ.get("CCTV_CONFIG_PATH")))
    monkeypatch.setenv("CCTV_CONFIG_PATH", "unused.yaml")  # restored after the test
    monkeypatch.delenv("CCTV_CAMERA_CONFIG_SOURCE", raising=False)
    service._api_child(*api.args)
    assert seen == {"source": "file", "path": str(cameras.resolve())}
    assert "CCTV_CAMERA_CONFIG_SOURCE" not in os.environ  # this process's environment is left as it was


def test_push_config_says_a_role_all_service_ignores_it(api_settings: ApiSettings, rclient: redis.Redis,
                                                        tmp_path: Path, monkeypatch, capsys) -> None:
    with TestClient(create_app(_settings(api_settings, tmp_path, "file"))):
        pass  # the --role all API marks itself in Redis at start
    pushed = tmp_path / "nowalkway.yaml"
    pushed.write_text(_yaml("gate-02"))
    monkeypatch.setattr(roles, "_client", lambda: redis.Redis.from_url(api_settings.redis_url))
    assert roles.cluster_command(argparse.Namespace(action="push-config", path=str(pushed), json=False)) == 0
    err = capsys.readouterr().err
    assert "single-host `--role all` service" in err and "ignores pushed configurations" in err, err
