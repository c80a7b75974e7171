"""``python -m pipeline.store.redis_ha`` writes the files of the README's three-node layout; started as they are on
three namespace hosts they form the group: both replicas in sync with the primary, every Sentinel seeing two
replicas and three Sentinels, a client with the written ``client.env`` writing through Sentinel."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from pipeline.store.redis_ha import write_node
from pipeline.store.redis_setup import read_credentials, setup_redis
from tests.cluster.netns import Cluster, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_generated_files_form_a_sentinel_group(cluster: Cluster, tmp_path: Path) -> None:
    hosts = [cluster.add_host(f"redis-{i}") for i in range(3)]
    secrets_dir = tmp_path / "secrets"
    setup_redis(secrets_dir / "redis.env", secrets_dir / "redis.conf", tmp_path / "unused", 6380)
    admin = read_credentials(secrets_dir / "redis.env").admin
    addresses = [h.ip for h in hosts]
    for host in hosts:
        files = write_node(host.ip, addresses[0], addresses, tmp_path / host.name, secrets_dir / "redis.env",
                           secrets_dir / "sentinel.env", tmp_path / host.name / "data")
        assert files.primary == (host is hosts[0])
        text = files.redis_conf.read_text()
        assert f"bind {host.ip}" in text and "min-replicas-to-write 1" in text and "masteruser default" in text
        assert ("replicaof" in text) == (host is not hosts[0])
        assert oct(files.redis_conf.stat().st_mode & 0o777) == "0o600"
        host.popen([shutil.which("redis-server") or "redis-server", str(files.redis_conf)],
                   log=tmp_path / f"{host.name}-redis.log")
        host.popen([shutil.which("redis-sentinel") or "redis-sentinel", str(files.sentinel_conf)],
                   log=tmp_path / f"{host.name}-sentinel.log")
    client_env = dict(line.split("=", 1) for line in (tmp_path / "redis-0" / "client.env").read_text().splitlines()
                      if "=" in line and not line.startswith("#"))
    assert client_env["CCTV_REDIS_SENTINELS"] == ",".join(f"{a}:26379" for a in addresses)
    env = os.environ | {"REDISCLI_AUTH": admin}

    def cli(host, port: int, *args: str, auth: str = admin) -> str:
        return host.run(["redis-cli", "-h", host.ip, "-p", str(port), *args], env=env | {"REDISCLI_AUTH": auth},
                        timeout=20).stdout

    wait_until(lambda: cli(hosts[0], 6379, "INFO", "replication").count("state=online") == 2, 120,
               "both replicas in sync")
    for host in hosts:
        wait_until(lambda h=host: "slaves=2,sentinels=3" in cli(h, 26379, "INFO", "sentinel",
                                                                 auth=client_env["CCTV_REDIS_SENTINEL_PASSWORD"]),
                   120, f"Sentinel on {host.name} sees the group")
    # the workers' ACL user (not the admin) through Sentinel, with the engine's replicated acknowledgement (WAIT 1)
    probe = ("from pipeline.events import Alert; from pipeline.store import EventStore; "
             "from pipeline.store.connection import redis_client, wait_replicas; c = redis_client(socket_timeout=5); "
             "a = Alert(kind='plate', watchlist_id='w', entry_id='e', event_id='ev', camera_id='cam'); "
             "print('ok' if EventStore(c, wait_replicas=wait_replicas()).publish_alert(a) else 'not stored')")
    workers = read_credentials(secrets_dir / "redis.env").workers
    done = hosts[2].run([sys.executable, "-c", probe], timeout=60,
                        env=os.environ | client_env | {"PYTHONPATH": str(REPO_ROOT),
                                                       "CCTV_REDIS_URL": f"redis://cctv-workers:{workers}@x/0"})
    assert done.stdout.strip() == "ok", done.stderr[-2000:]

