"""Delivery of events and alerts to Redis, through the on-disk spool when Redis is unreachable.

Order is preserved: once anything is spooled, every later record is spooled behind it until the spool has been
drained. A record counts as delivered when the store acknowledged it (with Sentinel: on the primary and confirmed
by the replicas, see :mod:`pipeline.store.events`); until then it stays in the spool. Delivery goes through the
idempotent :class:`pipeline.store.EventStore` (a version or alert already stored returns False, which counts as
delivered), so re-delivery after a crash or a failover stores nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pipeline.engine.spool import EventSpool
from pipeline.events import Alert, FaceEvent, PlateEvent
from pipeline.store.events import NotReplicatedError

logger = logging.getLogger(__name__)

KINDS: dict[str, type[BaseModel]] = {"plate": PlateEvent, "face": FaceEvent, "alert": Alert}


MAX_BACKOFF_S = 16.0
MAX_BACKOFF_SENTINEL_S = 4.0


def _default_max_backoff() -> float:
    """Longest wait between delivery attempts: shorter when Sentinel will soon name a new primary."""
    from pipeline.store.connection import sentinel_setup

    try:
        return MAX_BACKOFF_SENTINEL_S if sentinel_setup() is not None else MAX_BACKOFF_S
    except ValueError:  # a malformed Sentinel list is reported where the client is made
        return MAX_BACKOFF_S


class SpooledPublisher:
    """Publishes records in order: directly to the store, or into the spool while Redis is down."""

    def __init__(
        self,
        store: Any,
        spool: EventSpool,
        retry_interval_s: float = 1.0,
        on_delivered: Callable[[str, BaseModel], None] | None = None,
        max_backoff_s: float | None = None,
    ) -> None:
        self.store = store
        self.max_backoff_s = _default_max_backoff() if max_backoff_s is None else max_backoff_s
        self.spool = spool
        self.retry_interval_s = retry_interval_s
        self.on_delivered = on_delivered
        self._next_retry = 0.0
        self._failures = 0
        self.redis_ok = True
        self.spooled_total = 0
        self.delivered_from_spool = 0
        self.invalid_skipped = 0  # spooled records that are no valid event/alert any more: skipped, never retried

    def publish(self, kind: str, record: BaseModel) -> bool:
        """Deliver ``record`` now if possible (True), else append it to the spool (False)."""
        if len(self.spool) == 0 and self._deliver_model(kind, record):
            return True
        if self.spool.append(kind, record.model_dump(mode="json")):  # False: disk full, logged and counted
            self.spooled_total += 1
        self.flush()
        return False

    def flush(self, force: bool = False) -> int:
        """Try to drain the spool (at most every ``retry_interval_s`` unless ``force``); return records delivered."""
        if len(self.spool) == 0:
            return 0
        now = time.monotonic()
        if not force and now < self._next_retry:
            return 0
        delivered = self.spool.drain(self._deliver_payload)
        # back off while Redis stays away (a connect timeout must not eat the engine's time): 1 s, 2 s, ... 16 s
        # (4 s with Sentinel: a failover is over in seconds, and alerts should not wait 16 s more after it)
        self._failures = 0 if delivered else min(self._failures + 1, 4)
        self._next_retry = time.monotonic() + min(self.retry_interval_s * 2**self._failures, self.max_backoff_s)
        if delivered:
            self.delivered_from_spool += delivered
            logger.info("delivered %d spooled records to Redis (%d still spooled)", delivered, len(self.spool))
        return delivered

    @property
    def pending(self) -> int:
        """Records waiting in the spool."""
        return len(self.spool)

    def _deliver_payload(self, kind: str, payload: dict[str, Any]) -> bool:
        model_type = KINDS.get(kind)
        if model_type is None:
            logger.error("spool holds a record of unknown kind %r; skipping it", kind)
            self.invalid_skipped += 1
            return True
        try:
            record = model_type.model_validate(payload)
        except ValidationError as exc:  # retrying can never make it valid: skip it, or it blocks every later record
            logger.error("spool holds an invalid %s record (%d errors, first: %s); skipping it", kind,
                         exc.error_count(), exc.errors()[0].get("msg", "?") if exc.errors() else "?")
            self.invalid_skipped += 1
            return True
        return self._deliver_model(kind, record)

    def _deliver_model(self, kind: str, record: BaseModel) -> bool:
        try:
            if kind == "plate":
                self.store.publish_plate_event(record)
            elif kind == "face":
                self.store.publish_face_event(record)
            elif kind == "alert":
                self.store.publish_alert(record)
            else:
                raise ValueError(f"unknown record kind {kind!r}")
        except ValueError:
            raise
        except NotReplicatedError as exc:  # on the primary, not yet on its replicas: not acknowledged, retried
            if self.redis_ok:
                logger.warning("Redis replicas did not confirm (%s); keeping events in the spool until they do", exc)
            self.redis_ok = False
            return False
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            if self.redis_ok:
                logger.warning("Redis unreachable (%s); spooling events on disk", exc)
            self.redis_ok = False
            return False
        except Exception as exc:  # noqa: BLE001 - never lose the record: keep it spooled, say why loudly
            logger.error("could not store %s record %s (%s: %s); kept in the spool for a later retry", kind,
                         getattr(record, "event_id", getattr(record, "alert_id", "?")), type(exc).__name__, exc)
            return False
        if not self.redis_ok:
            logger.info("Redis reachable again")
        self.redis_ok = True
        if self.on_delivered is not None:
            self.on_delivered(kind, record)
        return True
