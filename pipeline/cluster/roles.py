"""The roles of ``pipeline run --role`` other than ``all``, and ``pipeline cluster push-config | status``.

- ``worker``: :func:`pipeline.cluster.node.run_worker_role` (capture, recording, analysis of leased cameras);
- ``api``: the control-room API only, stateless (several replicas may run behind a load balancer: users, sessions,
  alerts, exports and audit live in Redis; live alerts come from the ``alerts`` stream and ``alerts:live``
  channel that the workers' engines publish to). At start it pushes ``--config`` to Redis only when Redis has no
  configuration yet; a different configuration already there (pushed since, or by another host) is kept, with a
  WARNING naming both versions (:func:`startup_push`): only ``cluster push-config`` replaces one. It marks the
  served configuration's disabled cameras in the health.

``--config`` given to a worker is not run (workers run the configuration in Redis): a WARNING names both when the
file differs from it (:func:`check_worker_config_file`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError, load_config
from pipeline.secrets import url_secrets
from pipeline.settings import get_settings

logger = logging.getLogger(__name__)

DEFAULT_SLOTS = 8


def worker_slots(value: int | None) -> int:
    """``--slots``, else ``CCTV_WORKER_SLOTS``, else :data:`DEFAULT_SLOTS`; ValueError saying what is wrong."""
    if value is None:
        raw = os.environ.get("CCTV_WORKER_SLOTS", "").strip()
        if not raw:
            return DEFAULT_SLOTS
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"CCTV_WORKER_SLOTS must be a whole number of camera slots (got {raw!r})") from None
    if not 1 <= value <= 4096:
        raise ValueError(f"camera slots must be between 1 and 4096 (got {value})")
    return value


def run_role(args: argparse.Namespace) -> int:
    """``pipeline run --role worker|api``."""
    from pipeline.store.durability import RedisStartError

    try:
        if args.role == "worker":
            from pipeline.cluster.leases import check_worker_id
            from pipeline.cluster.node import run_worker_role

            slots = worker_slots(args.slots)
            worker_id = check_worker_id(args.worker_id) if args.worker_id else None
            if getattr(args, "config", None):
                check_worker_config_file(Path(args.config))
            start_worker_clock_watch()
            return run_worker_role(worker_id, slots)
        return run_api_role(Path(args.config), args.host, args.port)
    except RedisStartError as exc:
        _say(f"error: {exc}", err=True)
        return 2
    except ValueError as exc:
        _say(f"error: {exc}", err=True)
        return 1


def _say(text: str, err: bool = False) -> None:
    """A line for the person at the terminal (command-line output, not logging)."""
    (sys.stderr if err else sys.stdout).write(f"{text}\n")


def _client() -> Any:
    from pipeline.cluster import cluster_redis_client

    return cluster_redis_client(get_settings().redis_url, socket_timeout=5, socket_connect_timeout=5)


def push_config_file(client: Any, path: Path, replace: bool = True, pushed_by: str = "") -> Any:
    """Validate and push a cameras.yaml; returns :class:`~pipeline.cluster.configstore.PushResult`.

    ``replace=False``: an API host's start-up push, which never replaces a configuration already in Redis."""
    from pipeline.cluster.configstore import push_config

    load_config(path)  # errors with the file's own name and lines
    return push_config(client, path.read_text(encoding="utf-8"), source=f"{_host()}:{path.resolve()}",
                       pushed_by=pushed_by or _pusher(), replace=replace)  # fmt: skip


def _pusher() -> str:
    """``<user>@<host>`` of whoever runs this command."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "?"
    return f"{user}@{_host()}"


def startup_push(client: Any, path: Path) -> Any:
    """An API host's start-up push of ``path``: stored only when Redis has no configuration yet (or it is this
    very text); a different one in Redis is kept and a WARNING names both. Returns the
    :class:`~pipeline.cluster.configstore.StoredConfig` the API serves (None: nothing readable in Redis)."""
    from pipeline.cluster.configstore import config_origin, load_cluster_config

    result = push_config_file(client, path, replace=False, pushed_by=f"api@{_host()}")
    if not result.kept:
        logger.info("configuration %s: version %d in Redis (%s)", path, result.version,
                    "pushed" if result.changed else "unchanged")  # fmt: skip
        return load_cluster_config(client)
    origin = config_origin(client, path.read_text(encoding="utf-8"))
    mine = (f"was version {origin.text_version}" if origin is not None and origin.text_version is not None
            else "was never pushed")  # fmt: skip
    logger.warning("configuration %s differs from the one in Redis and was NOT pushed (this file %s; Redis has %s): "
                   "the API serves and the workers run Redis's; to make this file the cluster's configuration, run "
                   "`python -m pipeline cluster push-config %s`", path, mine,
                   origin.describe() if origin is not None else f"version {result.version}", path)  # fmt: skip
    return load_cluster_config(client)


def check_worker_config_file(path: Path) -> None:
    """``--config`` given to a worker: workers run the configuration in Redis, never a file. Say so, and WARN naming
    both when the file differs from Redis's (or is missing, or Redis has none yet)."""
    import redis

    from pipeline.cluster.configstore import config_origin, text_sha256

    if not path.is_file():
        logger.warning("--config %s: no such file; workers run the configuration in Redis anyway", path)
        return
    text = path.read_text(encoding="utf-8")
    client = _client()
    try:
        origin = config_origin(client, text)
    except redis.RedisError as exc:
        logger.warning("--config %s is not used by a worker (it runs the configuration in Redis, unreadable now: "
                       "%s)", path, exc)  # fmt: skip
        return
    finally:
        client.close()
    if origin is not None and origin.sha256 == text_sha256(text):
        logger.info("--config %s is the configuration in Redis (version %d); workers run Redis's", path,
                    origin.version)  # fmt: skip
        return
    mine = (f"was version {origin.text_version}" if origin is not None and origin.text_version is not None
            else "was never pushed")  # fmt: skip
    logger.warning("--config %s is IGNORED by a worker: workers run the configuration in Redis (%s), and this file "
                   "differs from it (it %s); to run it, push it with `python -m pipeline cluster push-config %s`",
                   path, origin.describe() if origin is not None else "none pushed yet", mine, path)  # fmt: skip


def start_worker_clock_watch() -> Any:
    """The worker's clock check against Redis ``TIME`` (:mod:`pipeline.cluster.clock`): once now, then in a
    thread; while beyond ``cluster.clock_refuse_s`` this process takes no camera lease."""
    from pipeline.cluster.clock import ClockWatch

    return ClockWatch(_client(), _host()).start()


def push_warnings(config: Any) -> list[Any]:
    """What ``check-config`` warns about, plus every password written into a URL itself: pushed, it is stored in
    Redis with the configuration and read by every host (a ``${VARIABLE}`` stays on each host)."""
    from urllib.parse import urlsplit

    from pipeline.config import ConfigIssue

    issues = list(config.warnings())
    for i, cam in enumerate(config.cameras):
        for key in ("url", "sub_stream"):
            url = getattr(cam, key)
            if not url or "://" not in url:
                continue
            try:
                password = urlsplit(url).password
            except ValueError:
                continue
            if password and "${" not in password:
                issues.append(ConfigIssue(f"cameras[{i}].{key}", None, "a password written in the URL is stored in "
                                          "Redis with the configuration; put it in a ${VARIABLE} set on each "
                                          "worker host"))  # fmt: skip
    return issues


def _host() -> str:
    from pipeline.cluster.node import host_name

    return host_name()


def _file_sha(path: Path) -> str:
    from pipeline.cluster.configstore import text_sha256

    return text_sha256(path.read_text(encoding="utf-8"))


def redis_unreachable(exc: Exception) -> str:
    """One line for a Redis that refused the API host's start: its URL (password masked), the error, what to
    check."""
    from pipeline.secrets import redact_text, redact_url

    settings = get_settings()
    where = redact_url(settings.redis_url)
    if settings.redis_sentinels:
        where += f" (primary {settings.redis_sentinel_master!r} of the Sentinels {settings.redis_sentinels})"
        names = "CCTV_REDIS_URL, CCTV_REDIS_SENTINELS and CCTV_REDIS_SENTINEL_PASSWORD"
    else:
        names = "CCTV_REDIS_URL"
    return redact_text(f"cannot start: Redis at {where} did not answer ({exc}); check that Redis runs and is "
                       f"reachable from this host (address, port, firewall) and that {names} give the right address "
                       "and password")


def run_api_role(config_path: Path, host: str, port: int) -> int:
    """The API alone, supervised (restarted when it dies) until SIGINT/SIGTERM; 2 without starting when Redis does
    not answer the start-up configuration push."""
    import redis

    from pipeline.secrets import install_log_redaction
    from pipeline.service import (
        ChildSpec,
        _api_child,
        _mark_disabled_cameras,
        _stop_all,
        _supervise,
        check_redis_durable,
    )

    install_log_redaction()
    check_redis_durable()
    if config_path.is_file():
        try:
            config = load_config(config_path)
        except ConfigError as exc:
            _say(str(exc), err=True)
            return 1
        for url in config.stream_urls():
            url_secrets(url)
        client = _client()
        try:
            stored = startup_push(client, config_path)
        except redis.RedisError as exc:
            _say(f"error: {redis_unreachable(exc)}", err=True)
            return 2
        finally:
            client.close()
        if stored is not None and stored.sha256 != _file_sha(config_path):
            config = stored.config  # Redis's was kept: its warnings are its pusher's business
        else:
            for issue in push_warnings(config):
                logger.warning("%s:%s: %s: %s", config_path, issue.line or "?", issue.path, issue.message)
        _mark_disabled_cameras(config)
    else:
        logger.info("no %s here: the API serves the configuration already in Redis", config_path)
    from pipeline.ingest.framebus import StopFlag

    stop_event = StopFlag()
    settings = get_settings()
    children = [ChildSpec("api", _api_child, (host, port, logging.getLogger().level, settings.api_redis_url),
                          graceful_signal=signal.SIGTERM)]  # fmt: skip
    requested: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _f: requested.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}  # fmt: skip
    try:
        while not requested:
            _supervise(children)
            time.sleep(0.5)
    finally:
        _stop_all(children, stop_event)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def cluster_status(client: Any) -> dict[str, Any]:
    """Workers alive (with their host's last clock check: ``clock_offset_s``, ``clock``), the configuration version
    and the holder of every enabled camera."""
    from pipeline.cluster.clock import read_clock_reports
    from pipeline.cluster.configstore import load_cluster_config
    from pipeline.cluster.leases import LeaseStore

    leases = LeaseStore(client)
    stored = load_cluster_config(client)
    cameras = [cam.id for cam in stored.config.cameras if cam.enabled] if stored else []
    holders = leases.holders(cameras)
    workers = leases.live_workers()
    clocks = read_clock_reports(client, [w.host for w in workers.values()])
    return {
        "config_version": stored.version if stored else 0,
        "workers": [{"worker": w.worker_id, "host": w.host, "pid": w.pid, "slots": w.slots, "held": w.held,
                     "clock_offset_s": clocks.get(w.host, {}).get("offset_s"),
                     "clock": clocks.get(w.host, {}).get("state", "unknown")}
                    for w in workers.values()],
        "cameras": [{"camera": cam, "worker": h.worker_id if h else None, "token": h.token if h else None,
                     "host": workers[h.worker_id].host if h and h.worker_id in workers else None}
                    for cam, h in holders.items()],
    }  # fmt: skip


def _clock_note(worker: dict[str, Any]) -> str:
    """`` clock +120.0 s off Redis (refusing leases)`` for a worker whose host's clock is off, else ``""``."""
    if worker.get("clock") not in ("skewed", "refusing"):
        return ""
    what = "refusing leases" if worker["clock"] == "refusing" else "fix NTP"
    return f"  CLOCK {worker['clock_offset_s']:+.1f} s off Redis ({what})"


def _warn_single_host(client: Any) -> None:
    """Tell the user when a single-host ``--role all`` service uses this Redis: it ignores pushes."""
    from pipeline.cluster.configstore import single_host_service

    where = single_host_service(client)
    if where:
        _say(f"warning: a single-host `--role all` service ({where}) uses this Redis and ignores pushed "
             "configurations: edit its file and restart it, or run --role api/worker hosts", err=True)


def cluster_command(args: argparse.Namespace) -> int:
    """``pipeline cluster push-config PATH`` / ``pipeline cluster status [--json]``."""
    import redis

    client = _client()
    try:
        if args.action == "push-config":
            if not args.path:
                _say("push-config needs the path of a cameras.yaml", err=True)
                return 1
            try:
                config = load_config(args.path)
                result = push_config_file(client, Path(args.path))
            except ConfigError as exc:
                _say(str(exc), err=True)
                return 1
            for url in config.stream_urls():
                url_secrets(url)  # registered: no warning below can print one
            for issue in push_warnings(config):
                _say(f"{args.path}:{issue.line or '?'}: {issue.path}: warning: {issue.message}", err=True)
            state = "stored as" if result.changed else "unchanged, still"
            _say(f"{args.path}: {result.cameras} cameras, {state} version {result.version}")
            _warn_single_host(client)
            return 0
        status = cluster_status(client)
    except redis.RedisError as exc:
        _say(f"Redis unreachable: {exc}", err=True)
        return 1
    finally:
        client.close()
    if args.json:
        _say(json.dumps(status, indent=2))
        return 0
    free = sum(1 for c in status["cameras"] if not c["worker"])
    _say(f"configuration version {status['config_version']}; {len(status['workers'])} workers; "
         f"{len(status['cameras']) - free} cameras held, {free} without a worker")
    for w in status["workers"]:
        _say(f"  worker {w['worker']:<32} host {w['host']:<20} slots {w['slots']:>4} holds {w['held']:>4}"
             f"{_clock_note(w)}")
    for c in status["cameras"]:
        _say(f"  camera {c['camera']:<32} {c['worker'] or '(free)':<32} {c['host'] or ''}")
    return 0
