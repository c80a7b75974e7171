"""A Redis Sentinel group on namespace hosts: one primary, replicas and a Sentinel per Redis host.

Every server is configured by the project's own generators (:func:`pipeline.store.redis_setup.render_conf` with
``bind``/``replica_of``/``min_replicas``, :func:`~pipeline.store.redis_setup.render_sentinel_conf`), durable (AOF),
with a password for the ``default`` user and one for the Sentinels. Clients on other hosts get the environment
of the README's layout from :meth:`SentinelGroup.client_env` (``CCTV_REDIS_SENTINELS`` and friends).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.store.redis_setup import RedisCredentials, render_conf, render_sentinel_conf, write_private
from tests.cluster.netns import Host, wait_until

REDIS_PORT = 6379
SENTINEL_PORT = 26379
MASTER = "cctv"


@dataclass
class SentinelGroup:
    """Redis on ``hosts`` (the first one starts as primary) and a Sentinel on each of ``hosts``."""

    hosts: list[Host]
    workdir: Path
    down_after_ms: int = 1000
    failover_timeout_ms: int = 10_000
    admin_password: str = field(default_factory=lambda: secrets.token_hex(16))
    sentinel_password: str = field(default_factory=lambda: secrets.token_hex(16))
    redis: dict[str, subprocess.Popen] = field(default_factory=dict)
    sentinels: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self) -> None:
        """Start the servers and Sentinels and wait until every Sentinel sees the whole group."""
        primary = self.hosts[0]
        for host in self.hosts:
            self.start_redis(host, None if host is primary else (primary.ip, REDIS_PORT))
        for host in self.hosts:
            folder = self.workdir / host.name / "sentinel"
            folder.mkdir(parents=True, exist_ok=True)
            conf = folder / "sentinel.conf"
            write_private(conf, render_sentinel_conf(SENTINEL_PORT, host.ip, folder, MASTER, (primary.ip, REDIS_PORT),
                                                     quorum=2, admin_password=self.admin_password,
                                                     sentinel_password=self.sentinel_password,
                                                     down_after_ms=self.down_after_ms,
                                                     failover_timeout_ms=self.failover_timeout_ms))
            self.sentinels[host.name] = host.popen([_exe("redis-sentinel"), str(conf)], log=folder / "sentinel.log")
        replicas = len(self.hosts) - 1
        wait_until(lambda: self._replicas_online(primary) == replicas, 60, f"{replicas} replicas in sync")
        for host in self.hosts:
            wait_until(lambda h=host: self._sentinel_sees_all(h), 60, f"Sentinel on {host.name} sees the group")

    def start_redis(self, host: Host, replica_of: tuple[str, int] | None) -> subprocess.Popen:
        """(Re)start the Redis server of ``host`` on its data folder (AOF kept across restarts)."""
        folder = self.workdir / host.name / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "redis.conf"
        credentials = RedisCredentials(self.admin_password, "", "")
        write_private(conf, render_conf(REDIS_PORT, folder, credentials, service_users=False, bind=host.ip,
                                        replica_of=replica_of, min_replicas=1, group=True))
        proc = host.popen([_exe("redis-server"), str(conf)], log=folder / "redis.log")
        self.redis[host.name] = proc
        wait_until(lambda: self.cli(host, REDIS_PORT, "PING") == "PONG", 60, f"redis on {host.name}")
        return proc

    def cli(self, host: Host, port: int, *command: str, on: Host | None = None) -> str:
        """``redis-cli`` against ``host:port`` run from ``on`` (default: ``host`` itself); its stdout, stripped."""
        password = self.sentinel_password if port == SENTINEL_PORT else self.admin_password
        env = os.environ | {"REDISCLI_AUTH": password}
        done = (on or host).run([_exe("redis-cli"), "-h", host.ip, "-p", str(port), *command], env=env, timeout=20)
        return done.stdout.strip()

    def primary_ip(self, asked: Host | None = None) -> str | None:
        """The primary's address as a Sentinel (default: the last host's) reports it."""
        host = asked or self.hosts[-1]
        out = self.cli(host, SENTINEL_PORT, "SENTINEL", "get-master-addr-by-name", MASTER).split()
        return out[0] if out else None

    def host_of(self, ip: str) -> Host:
        """The host with address ``ip``."""
        return next(h for h in self.hosts if h.ip == ip)

    def replica_in_sync(self, host: Host) -> bool:
        """True when ``host``'s Redis is a replica with its link to the primary up (authenticated, synced)."""
        info = self.cli(host, REDIS_PORT, "INFO", "replication")
        return "role:slave" in info and "master_link_status:up" in info

    def _replicas_online(self, primary: Host) -> int:
        info = self.cli(primary, REDIS_PORT, "INFO", "replication")
        return sum(1 for line in info.splitlines() if line.startswith("slave") and "state=online" in line)

    def _sentinel_sees_all(self, host: Host) -> bool:
        info = self.cli(host, SENTINEL_PORT, "INFO", "sentinel")
        want = f"slaves={len(self.hosts) - 1},sentinels={len(self.hosts)}"
        return want in info

    def client_env(self, url_password: bool = True) -> dict[str, str]:
        """The environment of a client of this group (the README's settings)."""
        return {
            "CCTV_REDIS_SENTINELS": ",".join(f"{h.ip}:{SENTINEL_PORT}" for h in self.hosts),
            "CCTV_REDIS_SENTINEL_MASTER": MASTER,
            "CCTV_REDIS_SENTINEL_PASSWORD": self.sentinel_password,
            "CCTV_REDIS_URL": f"redis://:{self.admin_password}@sentinel/0" if url_password else "redis://sentinel/0",
            "CCTV_REDIS_ALLOW_VOLATILE": "0",
        }

    def kill_primary(self) -> tuple[Host, float]:
        """SIGKILL the current primary's redis-server; return its host and the time (epoch s) of the kill."""
        ip = self.primary_ip()
        assert ip is not None, "no primary known to the Sentinels"
        host = self.host_of(ip)
        when = time.time()
        host.kill(self.redis[host.name])
        return host, when

    def wait_failover(self, old_ip: str, timeout_s: float = 90) -> str:
        """Wait until every Sentinel names a new primary that answers as a master; return its address."""
        def settled() -> str | None:
            answers = {self.primary_ip(h) for h in self.hosts if self.sentinels[h.name].poll() is None}
            if len(answers) != 1:
                return None
            ip = answers.pop()
            if not ip or ip == old_ip:
                return None
            role = self.cli(self.host_of(ip), REDIS_PORT, "ROLE").split()
            return ip if role[:1] == ["master"] else None
        return wait_until(settled, timeout_s, "Sentinel failover to a new primary", interval_s=0.1)


def _exe(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        raise FileNotFoundError(f"{name} is not installed (scripts/install.sh installs redis-server and "
                                "redis-sentinel)")
    return path
