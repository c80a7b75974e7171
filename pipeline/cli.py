"""The single command-line entry: ``python -m pipeline <command>``.

Commands:
    run [--config cameras.yaml]           start the whole service (ingest, recording, analytics, API)
    check-config PATH                     validate a cameras.yaml; exits 1 and lists every error with its line
    models fetch [--mirror DIR]           download (or copy from a local mirror) the upstream weights, sha256-checked
    models verify                         check every model file against the manifest
    models derive                         produce the batch-capable model files from the upstream ones
    serve-cameras [--videos DIR]          serve sample footage as looping RTSP cameras on loopback
    export-clip CAMERA START END          cut an evidence clip with its SHA-256 manifest
    run --role worker|api [--slots N]     one role of a multi-host deployment (pipeline.cluster)
    cluster push-config PATH | status     the configuration in Redis; which worker holds which camera
    redis-setup                           generate the project's Redis credentials and redis.conf (AOF + RDB)
    backup DIR                            back up the Redis store and the export manifests (not the video)
    restore DIR [--force]                 restore a backup into an empty Redis (--force: a non-empty one)
    restore --rollback                    undo a restore that was killed (from its journal in var/restore)
    evidence-key [--public-out FILE]      make the case-package signing key if absent; print its public fingerprint
    verify-package ZIP [--public-key K]   check a case package offline: signature, every file's SHA-256, extras
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pipeline.config import ConfigError, load_config
from pipeline.secrets import install_log_redaction, url_secrets
from pipeline.settings import PROJECT_ROOT, SettingsError, get_settings

logger = logging.getLogger(__name__)


def _check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    for url in config.stream_urls():
        url_secrets(url)  # registered, so that nothing printed below can hold one
    for issue in config.warnings():
        print(f"{args.path}:{issue.line or '?'}: {issue.path}: warning: {issue.message}", file=sys.stderr)
    print(f"{args.path}: OK ({len(config.cameras)} cameras)")
    return 0


def _models(args: argparse.Namespace) -> int:
    from pipeline.models_manifest import ModelFileError, fetch_models, load_manifest, resolve_model

    model_dir = Path(args.model_dir) if args.model_dir else get_settings().model_dir
    if args.action == "fetch":
        try:
            fetch_models(model_dir, mirror=Path(args.mirror) if args.mirror else None)
        except (ModelFileError, OSError) as exc:
            print(f"models fetch failed: {exc}", file=sys.stderr)
            return 1
        print(f"all model files present and verified in {model_dir}")
        return 0
    if args.action == "derive":
        from pipeline.models.derive import derive_all

        derive_all(model_dir, get_settings().derived_model_dir)
        return 0
    failures = 0
    for entry in load_manifest():
        try:
            resolve_model(entry.path, model_dir)
            print(f"ok       {entry.path}")
        except ModelFileError as exc:
            failures += 0 if entry.optional else 1
            print(f"{'optional' if entry.optional else 'FAILED  '} {exc}")
    return 1 if failures else 0


def api_address_problem(host: str, port: int) -> str | None:
    """Why the API could not listen on ``host:port`` now (one line naming the address and the fix), or None.

    Checked before anything starts: uvicorn would otherwise fail in the API child, which the supervisor restarts
    over and over while the rest of the service runs without a control room. The probe binds as uvicorn does
    (``SO_REUSEADDR``), so a port left in TIME_WAIT by a service just stopped is not taken for a busy one."""
    import errno
    import socket

    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        return f"cannot serve the API on {where}: the host name does not resolve ({exc}); pass --host with an " \
               "address of this machine (127.0.0.1 for this machine only, 0.0.0.0 for every interface)"
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"cannot serve the API on {where}: the port is already in use by another program (see " \
                       f"`ss -ltnp 'sport = :{port}'`); stop it or choose another port with --port"
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"cannot serve the API on {where}: this machine has no such address; pass --host with one " \
                       "of its addresses (127.0.0.1 for this machine only, 0.0.0.0 for every interface)"
            if exc.errno == errno.EACCES:
                return f"cannot serve the API on {where}: ports below 1024 need root; choose another port with " \
                       "--port (or put a reverse proxy in front)"
            return f"cannot serve the API on {where}: {exc.strerror or exc}"
    return None


def _run(args: argparse.Namespace) -> int:
    from pipeline.service import run_service

    if args.config is None and args.role != "worker":
        args.config = str(PROJECT_ROOT / "cameras.yaml")
    if args.role == "api" or (args.role == "all" and not args.no_api):
        problem = api_address_problem(args.host, args.port)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    if args.role != "all":
        from pipeline.cluster.roles import run_role

        return run_role(args)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    for issue in config.warnings():
        logger.warning("%s:%s: %s: %s", args.config, issue.line or "?", issue.path, issue.message)
    from pipeline.service import ModelDeviceError
    from pipeline.store.durability import RedisStartError

    try:
        return run_service(config, api_host=args.host, api_port=args.port, with_api=not args.no_api,
                           config_path=Path(args.config))
    except (RedisStartError, ModelDeviceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _cluster(args: argparse.Namespace) -> int:
    from pipeline.cluster.roles import cluster_command

    return cluster_command(args)


def _serve_cameras(args: argparse.Namespace) -> int:
    from pipeline.testcams import serve_forever

    return serve_forever(Path(args.videos) if args.videos else get_settings().videos_dir, port=args.port)


def _export_clip(args: argparse.Namespace) -> int:
    """``export-clip``: the audit record first (as the API audits every export), then the cut; no clip is cut when
    the record cannot be written."""
    from pipeline.recording.export import export_clip_cli

    if not audit_export_clip(args):
        return 1
    return export_clip_cli(args)


def audit_export_clip(args: argparse.Namespace) -> bool:
    """Append an ``export`` record to the audit stream (:func:`pipeline.store.audit.append_audit`, the writer of the
    API's own records, so that the audit view lists it): user = the requester, params = camera, window (epoch s),
    ``via: "cli"``, the operating-system account and host that ran the command, and the output folder. False (with
    a line on stderr) when Redis refused the record. Arguments the export itself refuses (a malformed time, an empty
    requester) are left to it: no clip is cut for them, so no record is written."""
    import socket

    import redis

    from pipeline.recording.export import ExportError, parse_time
    from pipeline.store.audit import append_audit
    from pipeline.store.connection import redis_client

    try:
        start, end = parse_time(args.start), parse_time(args.end)
    except ExportError:
        return True
    if not args.requester.strip():
        return True
    params = {"camera_id": args.camera, "start": start, "end": end, "via": "cli", "os_user": _os_user(),
              "host": socket.gethostname(), "out": args.out}
    try:
        append_audit(redis_client(get_settings().redis_url, socket_connect_timeout=5), args.requester, "export",
                     params, ip="cli")
    except redis.RedisError as exc:
        sys.stderr.write(f"export-clip: cannot write the audit record (no clip is cut without it): {exc}\n")
        return False
    logger.info("export-clip of %s by %s audited", args.camera, args.requester)
    return True


def _os_user() -> str:
    """The account running the command ("?" when the system cannot say)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"


def redis_log_file(data_dir: Path) -> Path:
    """The log of the Redis whose data lives in ``data_dir``: ``var/log/redis.log`` for the project's own
    (``var/redis``), beside the data of any other (``CCTV_REDIS_DATA_DIR``), so two servers never share a log."""
    if data_dir.resolve() == (PROJECT_ROOT / "var" / "redis").resolve():
        return PROJECT_ROOT / "var" / "log" / "redis.log"
    return data_dir / "redis.log"


def _redis_setup(args: argparse.Namespace) -> int:
    from pipeline.store.redis_setup import setup_redis

    settings = get_settings()
    log_file = redis_log_file(settings.redis_data_dir)
    done = setup_redis(settings.redis_secrets_file, settings.redis_conf_file, settings.redis_data_dir,
                       settings.redis_port, log_file=log_file, pid_file=settings.redis_data_dir / "redis.pid")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    state = "generated" if done.created_credentials else "kept"
    print(f"redis credentials {state}: {done.env_file} (mode 0600)")
    print(f"redis config written: {done.conf_file} (mode 0600; AOF everysec + RDB in {done.data_dir}, "
          f"127.0.0.1:{done.port})")
    return 0


def _admin_client() -> object:
    """A client of the Redis to back up or restore: ``CCTV_REDIS_ADMIN_URL`` (else ``CCTV_REDIS_URL``); in a shell
    where neither is set, the project's own Redis from its secrets file, never the machine's 6379 by default."""
    from pipeline.settings import load_project_redis_credentials
    from pipeline.store.connection import redis_client

    secrets_file = load_project_redis_credentials()
    if secrets_file is not None:
        print(f"using the project's Redis of {secrets_file} (no CCTV_REDIS_ADMIN_URL in the environment)",
              file=sys.stderr)
    settings = get_settings()
    return redis_client(settings.redis_admin_url or settings.redis_url, socket_connect_timeout=5, socket_timeout=120)


def _backup(args: argparse.Namespace) -> int:
    import redis

    from pipeline.store.backup import BackupError, backup

    exports_root = Path(args.exports) if args.exports else get_settings().recordings_dir / "exports"
    try:
        backup(_admin_client(), Path(args.dir), exports_root)
    except (BackupError, redis.RedisError, OSError) as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _restore(args: argparse.Namespace) -> int:
    """``restore DIR`` (an unfinished earlier restore is rolled back first) or ``restore --rollback``."""
    import redis

    from pipeline.store.backup import BackupError, default_journal_dir, restore, rollback

    if (args.dir is None) == (not args.rollback):
        print("restore: give either the backup folder DIR or --rollback", file=sys.stderr)
        return 2
    exports_root = Path(args.exports) if args.exports else get_settings().recordings_dir / "exports"
    journal_dir = Path(args.journal_dir) if args.journal_dir else default_journal_dir()
    try:
        if args.rollback:
            if not rollback(_admin_client(), journal_dir):
                print("restore: no unfinished restore of this Redis; nothing to roll back")
        else:
            restore(_admin_client(), Path(args.dir), exports_root, force=args.force, journal_dir=journal_dir)
    except (BackupError, redis.RedisError, OSError) as exc:
        print(f"restore failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _evidence_key(args: argparse.Namespace) -> int:
    """``evidence-key``: the signing key of case packages, made when absent; prints only its public half."""
    from pipeline.evidence.signing import EvidenceKeyError, EvidenceKeySettings, load_signing_key

    settings = EvidenceKeySettings()
    try:
        key, created = load_signing_key(create=True, settings=settings)
    except EvidenceKeyError as exc:
        print(f"evidence-key: {exc}", file=sys.stderr)
        return 1
    where = "CCTV_EVIDENCE_SIGNING_KEY" if settings.evidence_signing_key else f"{settings.evidence_key_file} (mode 0600)"
    print(f"evidence signing key {'generated' if created else 'kept'}: {where}")
    print(f"public key fingerprint (publish it): {key.fingerprint}")
    if args.public_out:
        Path(args.public_out).write_text(key.public_pem)
        print(f"public key written: {args.public_out}")
    else:
        print(key.public_pem, end="")
    return 0


def _verify_package(args: argparse.Namespace) -> int:
    """``verify-package``: exit 0 only when the package is intact and signed by the pinned key (one line per
    problem otherwise); 3 when it is intact but no key was pinned (self-consistent, not authenticated: anyone can
    re-sign a forged package with a key of their own)."""
    from pipeline.evidence.verify import pinned_key, verify_package

    try:
        pin = pinned_key(args.public_key) if args.public_key else None
    except ValueError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 2
    verdict = verify_package(Path(args.zip), pin)
    for note in verdict.notes:
        print(f"note: {note}")
    if not verdict.ok:
        for problem in verdict.problems:
            print(f"FAILED: {problem}")
        print(f"{args.zip}: NOT INTACT ({len(verdict.problems)} problem(s))")
        return 1
    print(f"{args.zip}: INTACT: signature valid (Ed25519, key {verdict.key_fingerprint}), "
          f"{verdict.files_checked} file(s) match the signed manifest, no extra files")
    if not verdict.pinned:
        print(f"NOT AUTHENTICATED: no --public-key given; the package is consistent with its own key "
              f"{verdict.key_fingerprint}, which a forger could have made: verify again with the fingerprint your "
              f"agency published (--public-key)")
        return 3
    return 0


def _port(text: str) -> int:
    """A TCP port number (1-65535) for argparse, which reports anything else as a usage error."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port {port} is not between 1 and 65535")
    return port


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the command-line entry."""
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="start the whole service")
    p.add_argument("--config", default=None,
                   help="cameras.yaml (default: cameras.yaml of the project); role api: pushed to Redis at start only "
                        "when Redis has none; role worker: not used (workers run the configuration in Redis; a "
                        "file that differs from it is warned about)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address the API listens on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    p.add_argument("--port", type=_port, default=8000,
                   help="port of the API (default 8000); one another program holds is refused before anything starts")
    p.add_argument("--no-api", action="store_true", help="run workers only")
    p.add_argument("--role", choices=["all", "worker", "api"], default="all",
                   help="all: the whole service on this machine (default); worker: capture, recording and analysis "
                        "of the cameras this host leases (configuration from Redis); api: the API only (pushes "
                        "--config to Redis)")
    p.add_argument("--worker-id", default=os.environ.get("CCTV_WORKER_ID"),
                   help="worker role: this worker's id (default CCTV_WORKER_ID, else <host>-<pid>)")
    p.add_argument("--slots", type=int, default=None,
                   help="worker role: camera slots of this host (default CCTV_WORKER_SLOTS, else 8)")
    p.set_defaults(func=_run)

    p = sub.add_parser("cluster", help="configuration and camera leases of a multi-host deployment")
    p.add_argument("action", choices=["push-config", "status"])
    p.add_argument("path", nargs="?", help="push-config: the cameras.yaml to store in Redis")
    p.add_argument("--json", action="store_true", help="status: print JSON")
    p.set_defaults(func=_cluster)

    p = sub.add_parser("check-config", help="validate a cameras.yaml")
    p.add_argument("path")
    p.set_defaults(func=_check_config)

    p = sub.add_parser("models", help="fetch, verify or derive model files")
    p.add_argument("action", choices=["fetch", "verify", "derive"])
    p.add_argument("--mirror", help="copy from this local directory instead of downloading")
    p.add_argument("--model-dir", help="target directory (default: CCTV_MODEL_DIR)")
    p.set_defaults(func=_models)

    p = sub.add_parser("serve-cameras", help="serve footage as looping RTSP cameras on loopback")
    p.add_argument("--videos", help="folder of videos (default: CCTV_VIDEOS_DIR)")
    p.add_argument("--port", type=_port, default=8554)
    p.set_defaults(func=_serve_cameras)

    p = sub.add_parser("export-clip", help="cut an evidence clip")
    p.add_argument("camera")
    p.add_argument("start", help="ISO-8601 UTC time or epoch seconds")
    p.add_argument("end", help="ISO-8601 UTC time or epoch seconds")
    p.add_argument("--requester", required=True, help="who asked for it (recorded in the manifest and, as the user, "
                                                      "in the API's audit trail with this account and host)")
    p.add_argument("--out", help="output folder (default: recordings/exports)")
    p.set_defaults(func=_export_clip)

    p = sub.add_parser("redis-setup", help="generate the project's Redis credentials and redis.conf")
    p.set_defaults(func=_redis_setup)

    p = sub.add_parser("backup", help="back up the Redis store and the export manifests (not the video)")
    p.add_argument("dir", help="a new (or empty) folder for the backup")
    p.add_argument("--exports", help="exports folder whose manifests are copied (default: recordings/exports)")
    p.set_defaults(func=_backup)

    p = sub.add_parser("restore", help="restore a backup written by `backup`, or roll back one that was killed")
    p.add_argument("dir", nargs="?", help="the backup folder")
    p.add_argument("--rollback", action="store_true",
                   help="undo a restore into this Redis that was killed before it finished (from its journal)")
    p.add_argument("--journal-dir", help="folder of the restore's undo journal (default: var/restore)")
    p.add_argument("--exports", help="exports folder the manifests go back to (default: recordings/exports)")
    p.add_argument("--force", action="store_true",
                   help="restore into a non-empty Redis, replacing keys of the same name (others are kept)")
    p.set_defaults(func=_restore)

    p = sub.add_parser("evidence-key", help="make the case-package signing key if absent; print its public key")
    p.add_argument("--public-out", help="also write the public key (PEM) to this file, to publish")
    p.set_defaults(func=_evidence_key)

    p = sub.add_parser("verify-package", help="check a case package offline (signature, SHA-256s, extra files)")
    p.add_argument("zip", help="the case package (.zip)")
    p.add_argument("--public-key", help="the published public key: a PEM file or its fingerprint (sha256:...)")
    p.set_defaults(func=_verify_package)
    return parser


PRIVATE_WRITERS = frozenset({"run", "export-clip", "backup", "restore", "serve-cameras", "redis-setup"})
"""Commands that write recordings, exports, spools, logs or caches: they run under the service's umask
(:mod:`pipeline.fileperms`), so that nothing they create is readable by other local accounts."""


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run one command; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.command in PRIVATE_WRITERS:
        from pipeline.fileperms import apply_service_umask

        apply_service_umask()  # before any thread or child: they inherit it
    install_log_redaction()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from pipeline.store.connection import RedisUrlError, SentinelConfigError

    try:
        return int(args.func(args) or 0)
    except (RedisUrlError, SentinelConfigError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
