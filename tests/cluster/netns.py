"""Several "hosts" on one machine: Linux network namespaces joined by veth pairs to a bridge in a hub namespace.

Every host is a namespace of its own with loopback and one interface ``e0`` holding a private address
``10.213.0.<n>/24``; the bridge lives in the run's own hub namespace, so nothing is added to the machine's own
network namespace (no interface, no address, no route) and parallel runs, each with its own hub, never see each
other even though they use the same addresses. Names carry a per-run prefix (``cctvt<pid>x<random>``); whatever a
run leaves behind (a killed test process) is removed by the next run, which deletes every namespace of that prefix
whose process is gone.

    with Cluster() as cluster:
        a, b = cluster.add_host("redis-a"), cluster.add_host("worker-1")
        server = a.popen(["redis-server", "--bind", a.ip])
        b.run(["redis-cli", "-h", a.ip, "ping"])
        a.kill(server)                 # SIGKILL
        a.cut()                        # the host drops off the network (its link goes down)

Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and ``ip`` from iproute2; :func:`netns_unavailable` says why not.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.processes import pid_alive

logger = logging.getLogger(__name__)

PREFIX = "cctvt"
SUBNET = "10.213.0"
"""The hosts' /24 (private, RFC 1918); it exists only inside the run's own namespaces."""
_NAME = re.compile(r"^[a-z0-9-]{1,24}$")


def _ip(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=timeout)


def netns_unavailable() -> str | None:
    """None when namespaces can be made here, else why not (for a clear skip)."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)"
    probe = f"{PREFIX}{os.getpid():x}probe{secrets.token_hex(2)}"
    try:
        made = _ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"`ip netns add` failed: {made.stderr.strip()}"
        link = _ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1", check=False)
        if link.returncode != 0:
            return f"veth pairs cannot be made: {link.stderr.strip()}"
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`ip netns` does not work here: {exc}"
    finally:
        _ip("netns", "del", probe, check=False)


def _kill_namespace(ns: str) -> None:
    """SIGKILL every process inside ``ns``, then delete it."""
    pids = _ip("netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    _ip("netns", "del", ns, check=False)


def sweep_leftovers() -> list[str]:
    """Delete namespaces of earlier runs whose test process is gone; return their names."""
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.match(rf"^{PREFIX}([0-9a-f]+)x", name)
        if match and not pid_alive(int(match.group(1), 16)):
            _kill_namespace(name)
            removed.append(name)
    if removed:
        logger.info("removed %d namespaces left by earlier runs", len(removed))
    return removed


@dataclass
class Host:
    """One namespace host: ``ip`` on the cluster's bridge, processes started in it with :meth:`popen`."""

    name: str
    ns: str
    ip: str
    cluster: Cluster
    processes: list[subprocess.Popen] = field(default_factory=list)

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]

    def popen(self, argv: Sequence[str], log: Path | None = None, env: dict[str, str] | None = None,
              **kwargs: Any) -> subprocess.Popen:
        """Start ``argv`` in this host (``ip netns exec`` replaces itself with it: the pid is the program's);
        stdout and stderr go to ``log`` (default: discarded). Stopped by :meth:`kill` or at cluster close."""
        out: Any = subprocess.DEVNULL
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = log.open("ab")
        try:
            proc = subprocess.Popen(self.command(argv), stdout=out, stderr=subprocess.STDOUT if log else out,
                                    stdin=subprocess.DEVNULL, env=env, **kwargs)
        finally:
            if log is not None:
                out.close()
        self.processes.append(proc)
        return proc

    def run(self, argv: Sequence[str], timeout: float = 60, env: dict[str, str] | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
        """Run ``argv`` in this host to completion, capturing its output."""
        return subprocess.run(self.command(argv), capture_output=True, text=True, timeout=timeout, env=env,
                              check=check, stdin=subprocess.DEVNULL)

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL, wait_s: float = 30) -> int | None:
        """Send ``sig`` (default SIGKILL) to ``proc`` and wait for it; return its exit code."""
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout=wait_s)

    def kill_all(self) -> None:
        """SIGKILL every process in this namespace (also those its programs started)."""
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
        for pid in _ip("netns", "pids", self.ns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        for proc in self.processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                logger.warning("process %s in %s did not die", proc.pid, self.name)

    def cut(self) -> None:
        """Take the host off the network (its bridge port goes down): others' packets to it are lost."""
        _ip("-n", self.cluster.hub, "link", "set", self.port, "down")

    def reconnect(self) -> None:
        """Put the host back on the network."""
        _ip("-n", self.cluster.hub, "link", "set", self.port, "up")

    @property
    def port(self) -> str:
        """The host's veth end on the hub's bridge."""
        return f"p{self.cluster.hosts.index(self)}"


class Cluster:
    """A bridge in a hub namespace and up to 200 hosts on it; :meth:`close` removes everything."""

    def __init__(self, subnet: str = SUBNET) -> None:
        sweep_leftovers()
        self.prefix = f"{PREFIX}{os.getpid():x}x{secrets.token_hex(3)}"
        self.subnet = subnet
        self.hub = f"{self.prefix}-hub"
        self.hosts: list[Host] = []
        self._closed = False
        _ip("netns", "add", self.hub)
        try:
            _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.hub, "link", "set", "br0", "up")
        except subprocess.CalledProcessError:
            self.close()
            raise

    def add_host(self, name: str) -> Host:
        """A new namespace host ``name`` with address ``<subnet>.<n>`` (n = 1, 2, ...)."""
        if not _NAME.match(name) or any(h.name == name for h in self.hosts):
            raise ValueError(f"host name {name!r}: lower-case letters, digits and '-', unique in the cluster")
        index = len(self.hosts)
        if index >= 200:
            raise ValueError("at most 200 hosts")
        ns = f"{self.prefix}-{name}"
        host = Host(name, ns, f"{self.subnet}.{index + 1}", self)
        _ip("netns", "add", ns)
        self.hosts.append(host)
        # the pair is made straight inside the two namespaces: no name ever exists in the machine's namespace
        _ip("link", "add", "e0", "netns", ns, "type", "veth", "peer", "name", host.port, "netns", self.hub)
        _ip("-n", self.hub, "link", "set", host.port, "master", "br0")
        _ip("-n", self.hub, "link", "set", host.port, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "addr", "add", f"{host.ip}/24", "dev", "e0")
        _ip("-n", ns, "link", "set", "e0", "up")
        return host

    def host(self, name: str) -> Host:
        """The host called ``name``."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def close(self) -> None:
        """Kill every process of every host and delete all the run's namespaces (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        for host in self.hosts:
            host.kill_all()
        for host in self.hosts:
            _kill_namespace(host.ns)
        _kill_namespace(self.hub)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until(condition: Any, timeout_s: float, what: str, interval_s: float = 0.2) -> Any:
    """Poll ``condition()`` until it returns something truthy (returned) or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling; report the last error on timeout
            last_error = exc
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not reached within {timeout_s:.0f} s" + (f" (last error: {last_error})" if last_error
                                                                          else ""))
