"""Configuration files of one node of the three-node Redis Sentinel layout (README, *Redis high availability*).

``python -m pipeline.store.redis_ha --bind 10.0.0.2 --primary 10.0.0.1 --sentinels 10.0.0.1,10.0.0.2,10.0.0.3``
run on each Redis host writes, mode 0600, into ``--out`` (default ``var/secrets/ha``):

- ``redis.conf``: the project's durable server (:func:`pipeline.store.redis_setup.render_conf`: AOF + RDB, the ACL
  users of ``var/secrets/redis.env``) bound to ``--bind``, ``min-replicas-to-write 1``, authenticating to its
  primary as ``default``, and ``replicaof --primary`` unless this host *is* the primary;
- ``sentinel.conf``: a Sentinel on ``--bind`` monitoring ``--primary`` with quorum 2
  (:func:`~pipeline.store.redis_setup.render_sentinel_conf`);
- ``client.env``: what every worker and API host adds to its environment (``CCTV_REDIS_SENTINELS``,
  ``CCTV_REDIS_SENTINEL_MASTER``, ``CCTV_REDIS_SENTINEL_PASSWORD``).

The passwords are those of ``var/secrets/redis.env`` (``python -m pipeline redis-setup`` on the first host; copy it
to the others) and a Sentinel password generated once into ``var/secrets/sentinel.env`` (copy it too).
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.settings import get_settings
from pipeline.store.redis_setup import read_credentials, render_conf, render_sentinel_conf, write_private

SENTINEL_PORT = 26379
MASTER = "cctv"


@dataclass(frozen=True)
class HaFiles:
    """Where the node's files were written."""

    redis_conf: Path
    sentinel_conf: Path
    client_env: Path
    primary: bool


def sentinel_password(env_file: Path) -> str:
    """The Sentinels' password from ``env_file``, generated (mode 0600) on first use."""
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() == "CCTV_REDIS_SENTINEL_PASSWORD" and value.strip():
                return value.strip()
        raise ValueError(f"{env_file} has no CCTV_REDIS_SENTINEL_PASSWORD; delete it to generate one")
    password = secrets.token_hex(24)
    write_private(env_file, "# the Redis Sentinels' password (requirepass); the same file on every host\n"
                            f"CCTV_REDIS_SENTINEL_PASSWORD={password}\n")
    return password


def _address(text: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not an IP address (the Redis hosts' private addresses)") from None


def write_node(bind: str, primary: str, sentinels: list[str], out: Path, secrets_file: Path, sentinel_env: Path,
               data_dir: Path, port: int = 6379, down_after_ms: int = 2000) -> HaFiles:
    """Write the node's ``redis.conf``, ``sentinel.conf`` and the clients' ``client.env`` (see the module doc)."""
    bind, primary = _address(bind, "--bind"), _address(primary, "--primary")
    hosts = [_address(s, "--sentinels") for s in sentinels]
    if len(hosts) < 3:
        raise ValueError("--sentinels: name the three Redis hosts (a quorum of 2 needs 3 Sentinels)")
    if not secrets_file.exists():
        raise ValueError(f"{secrets_file} is missing: run `python -m pipeline redis-setup` on the first Redis host "
                         "and copy the file to the others")
    credentials = read_credentials(secrets_file)
    s_password = sentinel_password(sentinel_env)
    is_primary = bind == primary
    data_dir.mkdir(parents=True, exist_ok=True)
    conf = render_conf(port, data_dir, credentials, bind=bind, replica_of=None if is_primary else (primary, port),
                       min_replicas=1, group=True)
    files = HaFiles(out / "redis.conf", out / "sentinel.conf", out / "client.env", is_primary)
    write_private(files.redis_conf, conf)
    write_private(files.sentinel_conf, render_sentinel_conf(SENTINEL_PORT, bind, out, MASTER, (primary, port), 2,
                                                            credentials.admin, s_password,
                                                            down_after_ms=down_after_ms))
    write_private(files.client_env, "# add to the environment of every worker and API host\n"
                                    f"CCTV_REDIS_SENTINELS={','.join(f'{h}:{SENTINEL_PORT}' for h in hosts)}\n"
                                    f"CCTV_REDIS_SENTINEL_MASTER={MASTER}\n"
                                    f"CCTV_REDIS_SENTINEL_PASSWORD={s_password}\n")
    return files


def main(argv: list[str] | None = None) -> int:
    """Command-line entry; exit 0, or 1 with the reason."""
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m pipeline.store.redis_ha", description=__doc__.split("\n")[0])
    parser.add_argument("--bind", required=True, help="this Redis host's private address")
    parser.add_argument("--primary", required=True, help="the address of the Redis host that starts as primary")
    parser.add_argument("--sentinels", required=True, help="the three Redis hosts' addresses, comma-separated")
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--out", type=Path, default=settings.redis_secrets_file.parent / "ha")
    parser.add_argument("--data-dir", type=Path, default=settings.redis_data_dir)
    parser.add_argument("--down-after-ms", type=int, default=2000)
    args = parser.parse_args(argv)
    try:
        files = write_node(args.bind, args.primary, args.sentinels.split(","), args.out, settings.redis_secrets_file,
                           settings.redis_secrets_file.parent / "sentinel.env", args.data_dir, args.port,
                           args.down_after_ms)
    except ValueError as exc:
        sys.stderr.write(f"redis_ha: {exc}\n")
        return 1
    role = "primary" if files.primary else f"replica of {args.primary}"
    sys.stdout.write(f"{files.redis_conf} (0600): Redis on {args.bind}:{args.port}, starts as {role}\n"
                     f"{files.sentinel_conf} (0600, must stay writable by the Sentinel): Sentinel on "
                     f"{args.bind}:{SENTINEL_PORT}\n{files.client_env}: settings for the worker and API hosts\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
