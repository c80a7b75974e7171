"""``python -m pipeline.store.redis_ha``: bad arguments are refused, saying which and why (the files it writes are
started as a real group in tests/cluster/test_redis_ha_config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.store.redis_ha import main


def test_bad_arguments_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCTV_REDIS_SECRETS_FILE", str(tmp_path / "none.env"))
    from pipeline.settings import get_settings

    get_settings.cache_clear()
    try:
        assert main(["--bind", "10.0.0.x", "--primary", "10.0.0.1", "--sentinels", "10.0.0.1,10.0.0.2,10.0.0.3",
                     "--out", str(tmp_path / "o")]) == 1
        assert "--bind: '10.0.0.x' is not an IP address" in capsys.readouterr().err
        assert main(["--bind", "10.0.0.2", "--primary", "10.0.0.1", "--sentinels", "10.0.0.1,10.0.0.2",
                     "--out", str(tmp_path / "o")]) == 1
        assert "three Redis hosts" in capsys.readouterr().err
        assert main(["--bind", "10.0.0.2", "--primary", "10.0.0.1", "--sentinels", "10.0.0.1,10.0.0.2,10.0.0.3",
                     "--out", str(tmp_path / "o")]) == 1
        assert "none.env is missing: run `python -m pipeline redis-setup`" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
