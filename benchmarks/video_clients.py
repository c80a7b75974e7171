"""Viewer load of ``python -m benchmarks.video`` in processes of their own.

The load phases' extra viewers (all but the one latency-measuring viewer per camera) run here, in ``--client-procs``
child processes, so that reading 128 WebSockets does not compete for the interpreter lock with the test cameras and
the latency-measuring viewers of the benchmark's own process (and so that the clients' CPU can be reported apart
from the API's). Each viewer authenticates like the web page (token as the first message), counts the fragments of
every binary message (``moof`` boxes: the server may send several in one message) and acknowledges every 5
fragments, as the web page does; nothing is decoded.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import struct
import time
from typing import Any

import psutil

ACK_EVERY = 5
_BOX = struct.Struct(">I4s")


def count_fragments(message: bytes) -> int:
    """``moof`` boxes among the top-level boxes of a binary live message (one or more ``moof``+``mdat``)."""
    count, pos, end = 0, 0, len(message)
    while pos + 8 <= end:
        size, kind = _BOX.unpack_from(message, pos)
        if kind == b"moof":
            count += 1
        if size < 8:
            break
        pos += size
    return count


async def _viewer(url: str, token: str, slot: int, counts: Any, firsts: Any, stop: Any) -> None:
    import websockets

    try:
        async with websockets.connect(url, max_size=2**25) as ws:
            await ws.send(json.dumps({"token": token}))
            received = acked = 0
            while not stop.is_set():
                try:
                    message = await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    continue
                if isinstance(message, str) or message[4:8] == b"ftyp":
                    continue
                received += count_fragments(message)
                counts[slot] = received
                if not firsts[slot]:
                    firsts[slot] = 1
                if received - acked >= ACK_EVERY:
                    acked = received
                    await ws.send(json.dumps({"ack": received}))
    except Exception:  # noqa: BLE001 - a closed viewer simply stops counting; the parent reports delivered shares
        firsts[slot] = firsts[slot] or -1


def _client_main(ws_base: str, token: str, cameras: list[str], counts: Any, firsts: Any, stop: Any,
                 first_slot: int) -> None:
    async def run() -> None:
        await asyncio.gather(*(_viewer(f"{ws_base}/api/live/{cam}/ws", token, first_slot + i, counts, firsts, stop)
                               for i, cam in enumerate(cameras)))

    asyncio.run(run())


class ClientPool:
    """Viewers of the given cameras (one entry per viewer) spread over ``procs`` child processes."""

    def __init__(self, ws_base: str, token: str, cameras: list[str], procs: int) -> None:
        ctx = mp.get_context("spawn")  # the parent runs threads (the test cameras): no fork
        self.size = len(cameras)
        self.counts = ctx.Array("q", max(1, self.size), lock=False)
        self.firsts = ctx.Array("b", max(1, self.size), lock=False)
        self.stop_event = ctx.Event()
        self.procs = []
        per = -(-self.size // max(1, procs)) if self.size else 0
        for start in range(0, self.size, per or 1):
            proc = ctx.Process(target=_client_main, args=(ws_base, token, cameras[start:start + per], self.counts,
                                                          self.firsts, self.stop_event, start), daemon=True)
            proc.start()
            self.procs.append(proc)

    def fragments(self) -> int:
        """Fragments received by all of them so far."""
        return sum(self.counts[: self.size])

    def started(self) -> int:
        """Viewers that got a fragment (or failed)."""
        return sum(1 for i in range(self.size) if self.firsts[i])

    def failed(self) -> int:
        return sum(1 for i in range(self.size) if self.firsts[i] < 0)

    def cpu_seconds(self) -> float:
        """User+system CPU seconds of the client processes."""
        total = 0.0
        for proc in self.procs:
            try:
                times = psutil.Process(proc.pid).cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return total

    def stop(self, timeout_s: float = 20.0) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
