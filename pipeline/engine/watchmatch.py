"""Watchlist matching at event time.

Plates match exactly or, for fuzzy entries, when :func:`pipeline.plates.fuzzy.plate_distance` is at most the entry's
``max_distance``. Faces match when the cosine similarity between the event embedding and any of the person's
enrolled embeddings is at or above the watchlist threshold. Entry camera restrictions are honoured (an empty list
means every camera). Lists are read from Redis through :class:`pipeline.store.WatchlistStore` and cached until
its ``version()`` changes (checked at most every ``refresh_interval_s``, 1 s by default: a deleted entry or
watchlist stops alerting within that); while Redis is unreachable the last loaded lists keep being used. An entry's
``expires_at`` is checked at every match, so it stops alerting at its expiry although no list changed.

Fuzzy plate entries: :func:`~pipeline.plates.fuzzy.plate_distance` costs 0.4 for a look-alike substitution (ข/ช,
ค/ด/ต, 8/B ...) and 1 for any other edit; ``max_distance`` is at most 1.9 (API), so a fuzzy entry tolerates at most
one arbitrary edit, or up to four look-alike substitutions. Exact entries (the default) never alert on a near miss.

Province: an entry tied to a province (``province`` set) matches only reads of that province. A read without a
province (a cut or dirty plate whose province line was not read) still matches: missing a wanted vehicle costs more
than an operator checking one alert; such an alert says so (:attr:`~pipeline.events.Alert.province_unconfirmed`,
with the entry's province beside it) and the alert wall asks the operator to check the plate. An entry without a
province matches every province.

Each (event, watchlist) pair alerts at most once: when several entries of one watchlist match an event (duplicates
stored before the API refused them, or an exact and a fuzzy entry), only the best one alerts (smallest distance,
then an entry of the read's province, then the highest severity, then the smallest entry id). An event's later versions do not
raise the same alert again, and the alert id is derived from the (event, watchlist, entry) so that a re-delivered
alert is deduplicated by the store.

Plate alerts also have a cooldown (``alert_cooldown_s``, :data:`DEFAULT_ALERT_COOLDOWN_S` = 5 minutes by default):
a vehicle whose track is lost and found again gets a new event, but the same entry matched by the same (normalised)
plate read on the same camera alerts once per window. Another camera, another read of a fuzzy entry, or the
same plate after the window alerts again. The window is kept in Redis (:meth:`WatchlistStore.claim_alert`, ``SET NX``
with a TTL) so it survives an engine restart; the alert that opened a window may always be raised again (a restart
between claiming and publishing does not lose it, the store drops the duplicate id). While Redis is unreachable
the windows are kept in memory. Face alerts have the same cooldown per (person, camera): a person who walks out of
view and back in alerts once per window on that camera.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import numpy as np
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pipeline.events import Alert, FaceEvent, PlateEvent
from pipeline.plates.fuzzy import plate_distance
from pipeline.plates.provinces import province_by_name
from pipeline.store.plates import normalise_plate
from pipeline.store.watchlists import cooldown_key

logger = logging.getLogger(__name__)

SEVERITIES = ("low", "medium", "high", "critical")

DEFAULT_ALERT_COOLDOWN_S = 300.0
"""Default plate alert cooldown: one alert per (entry, camera, plate) every 5 minutes."""

MAX_ALERT_COOLDOWN_S = 86_400.0
"""Longest cooldown accepted (a day): a longer one would silence a wanted vehicle for too long."""


def _normalise(text: str) -> str:
    """The store's canonical plate form (entries are stored normalised; events are normalised on publish)."""
    return normalise_plate(text)


def _province(text: str | None) -> str | None:
    """A province as its Thai name (Latin names and aliases mapped), None when empty; an unknown name is kept."""
    if not text or not text.strip():
        return None
    found = province_by_name(text)
    return found.thai if found is not None else text.strip()


def alert_id_for(event_id: str, watchlist_id: str, entry_id: str) -> str:
    """Deterministic alert id of an (event, entry) pair: a re-sent alert is the same alert."""
    digest = hashlib.sha1(f"{event_id}|{watchlist_id}|{entry_id}".encode()).hexdigest()[:12]
    return f"{event_id}-{digest}"


class WatchlistMatcher:
    """Matches plate and face events against the watchlists stored in Redis."""

    def __init__(self, store: Any, refresh_interval_s: float = 1.0,
                 alert_cooldown_s: float = DEFAULT_ALERT_COOLDOWN_S) -> None:
        """``alert_cooldown_s``: alert window per (entry, camera, plate) and per (person, camera), 0 to 1 day; 0 turns
        it off."""
        if not 0.0 <= alert_cooldown_s <= MAX_ALERT_COOLDOWN_S:
            raise ValueError(f"alert_cooldown_s must be within 0..{MAX_ALERT_COOLDOWN_S:g}, not {alert_cooldown_s!r}")
        self.store = store
        self.refresh_interval_s = refresh_interval_s
        self.alert_cooldown_s = alert_cooldown_s
        self._cooldowns: dict[str, tuple[str, float]] = {}
        self._version: Any = object()
        self._checked_at = 0.0
        self._plates: list[Any] = []
        self._faces: list[Any] = []
        self._face_matrix: np.ndarray | None = None
        self._face_owner: np.ndarray | None = None
        self._alerted: dict[str, float] = {}
        self._last_error: str | None = None

    def refresh(self, force: bool = False) -> None:
        """Reload the lists if their version changed (checked at most every ``refresh_interval_s``)."""
        now = time.monotonic()
        if not force and now - self._checked_at < self.refresh_interval_s:
            return
        self._checked_at = now
        try:
            version = self.store.version()
            if version == self._version and not force:
                return
            plates = list(self.store.plate_entries())
            faces = list(self.store.face_entries())
        except (RedisConnectionError, RedisTimeoutError) as exc:  # Redis down: keep the cached lists
            logger.debug("watchlists not refreshed: %s", exc)
            self._checked_at = now + 4 * self.refresh_interval_s  # and do not retry on every event
            return
        except Exception as exc:  # noqa: BLE001 - bad stored data must not stop the engine; keep the cache
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if message != self._last_error:
                logger.error("watchlists could not be loaded, keeping the previous ones: %s", exc)
                self._last_error = message
            return
        self._last_error = None
        self._version = version
        self._plates = plates
        self._faces = faces
        self._build_face_index()
        logger.info("watchlists loaded (version %s): %d plate entries, %d face entries", version, len(plates), len(faces))

    def _build_face_index(self) -> None:
        rows, owners = [], []
        for i, entry in enumerate(self._faces):
            emb = np.asarray(entry.embeddings, dtype=np.float32)
            if emb.ndim != 2 or emb.size == 0:
                continue
            emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)
            rows.append(emb)
            owners.extend([i] * len(emb))
        self._face_matrix = np.concatenate(rows) if rows else None
        self._face_owner = np.asarray(owners, dtype=np.int64)

    @staticmethod
    def _active(entry: Any, now: float) -> bool:
        """Whether the entry has not expired at ``now`` (the cached lists are loaded at a version change only)."""
        expires_at = getattr(entry, "expires_at", None)
        return expires_at is None or float(expires_at) > now

    @staticmethod
    def _camera_allowed(entry: Any, camera_id: str) -> bool:
        cameras = getattr(entry, "cameras", None)
        return not cameras or camera_id in cameras

    def _first_time(self, alert_id: str) -> bool:
        if alert_id in self._alerted:
            return False
        self._alerted[alert_id] = time.monotonic()
        if len(self._alerted) > 100_000:  # bounded memory: forget the oldest half
            for key in sorted(self._alerted, key=self._alerted.__getitem__)[:50_000]:
                del self._alerted[key]
        return True

    def _claim_locally(self, key: str, alert_id: str) -> bool:
        """In-memory cooldown (Redis unreachable, or a store without :meth:`claim_alert`); same rules."""
        now = time.monotonic()
        holder = self._cooldowns.get(key)
        if holder is not None and holder[1] > now and holder[0] != alert_id:
            return False
        if holder is None or holder[1] <= now:
            self._cooldowns[key] = (alert_id, now + self.alert_cooldown_s)
        if len(self._cooldowns) > 100_000:  # bounded memory: drop the closed windows
            self._cooldowns = {k: v for k, v in self._cooldowns.items() if v[1] > now}
        return True

    def _cooldown_allows(self, watchlist_id: str, entry_id: str, camera_id: str, subject: str, alert_id: str) -> bool:
        """Whether the (entry, camera, subject) cooldown lets ``alert_id`` through (see the module docstring); the
        subject is the plate read, or ``face`` for a person."""
        if self.alert_cooldown_s <= 0:
            return True
        key = cooldown_key(watchlist_id, entry_id, camera_id, subject)
        claim = getattr(self.store, "claim_alert", None)
        if claim is None:
            return self._claim_locally(key, alert_id)
        try:
            allowed = bool(claim(key, alert_id, self.alert_cooldown_s))
        except RedisError as exc:  # Redis down or read-only (fail-over): never lose the alert for it
            logger.debug("alert cooldown kept in memory: %s", exc)
            return self._claim_locally(key, alert_id)
        if not allowed:
            logger.debug("alert %s held back: entry %s already alerted on %s for %s within %ss", alert_id,
                         entry_id, camera_id, subject, self.alert_cooldown_s)
        return allowed

    def _plate_distance(self, entry: Any, text: str) -> float | None:
        """Distance of the read ``text`` to the entry's plate, or None when the entry does not match it."""
        target = _normalise(entry.plate)
        if getattr(entry, "fuzzy", False):
            distance = plate_distance(text, target)
            return distance if distance <= float(entry.max_distance) else None
        return 0.0 if text == target else None

    def _plate_candidates(self, event: PlateEvent, text: str, now: float) -> dict[str, list[tuple[tuple, Any, float]]]:
        """Matching active entries per watchlist, each as ``(rank key, entry, distance)`` sorted best first."""
        read_province = _province(event.province)
        by_list: dict[str, list[tuple[tuple, Any, float]]] = {}
        for entry in self._plates:
            if not self._active(entry, now) or not self._camera_allowed(entry, event.camera_id):
                continue
            province = _province(getattr(entry, "province", None))
            if province is not None and read_province is not None and province != read_province:
                continue
            distance = self._plate_distance(entry, text)
            if distance is None:
                continue
            same_province = province is not None and read_province is not None  # (and equal, checked above)
            rank = (distance, not same_province, -SEVERITIES.index(_severity(entry)), entry.entry_id)
            by_list.setdefault(entry.watchlist_id, []).append((rank, entry, distance))
        for candidates in by_list.values():
            candidates.sort(key=lambda c: c[0])
        return by_list

    def match_plate(self, event: PlateEvent) -> list[Alert]:
        """Alerts raised by a plate event: at most one per watchlist (its best matching entry, see the module
        docstring) and event, and one per entry, camera and plate read within the cooldown."""
        self.refresh()
        if not event.plate_text:
            return []
        text = _normalise(event.plate_text)
        alerts = []
        for watchlist_id, candidates in self._plate_candidates(event, text, time.time()).items():
            _, entry, distance = candidates[0]
            if len(candidates) > 1:
                logger.debug("event %s matches %d entries of watchlist %s; alerting on %s only", event.event_id,
                             len(candidates), watchlist_id, entry.entry_id)
            alert_id = alert_id_for(event.event_id, entry.watchlist_id, entry.entry_id)
            event_list = f"{event.event_id}|{watchlist_id}"  # a later version matching another entry of the list
            if (alert_id in self._alerted or event_list in self._alerted
                    or not self._cooldown_allows(entry.watchlist_id, entry.entry_id, event.camera_id, text, alert_id)):
                continue
            self._first_time(alert_id)
            self._first_time(event_list)
            entry_province = _province(getattr(entry, "province", None))
            unconfirmed = entry_province is not None and not _province(event.province)
            if unconfirmed:
                logger.info("alert %s: entry %s is tied to %s but the read has no province (unconfirmed)",
                            alert_id, entry.entry_id, entry_province)
            alerts.append(Alert(
                alert_id=alert_id, kind="plate", watchlist_id=entry.watchlist_id, entry_id=entry.entry_id,
                event_id=event.event_id, camera_id=event.camera_id, reason=getattr(entry, "reason", "") or "",
                frame_time=event.frame_time, severity=_severity(entry), label=event.plate_text,
                score=max(0.0, 1.0 - distance / max(len(_normalise(entry.plate)), 1)), crop_path=event.crop_path,
                province=_province(event.province), entry_province=entry_province, province_unconfirmed=unconfirmed,
            ))
        return alerts

    def match_face(self, event: FaceEvent) -> list[Alert]:
        """Alerts raised by a face event: per person, the best similarity over the enrolled embeddings."""
        self.refresh()
        if self._face_matrix is None or self._face_owner is None or not event.embedding:
            return []
        emb = event.embedding_array()
        if emb.shape[0] != self._face_matrix.shape[1]:
            logger.warning("face event %s has a %d-d embedding but the watchlists hold %d-d ones",
                           event.event_id, emb.shape[0], self._face_matrix.shape[1])
            return []
        emb = emb / max(float(np.linalg.norm(emb)), 1e-9)
        sims = self._face_matrix @ emb
        best: dict[int, float] = {}
        for owner, sim in zip(self._face_owner.tolist(), sims.tolist(), strict=True):
            best[owner] = max(best.get(owner, -1.0), sim)
        now = time.time()
        alerts = []
        for owner, sim in sorted(best.items(), key=lambda kv: -kv[1]):
            entry = self._faces[owner]
            if (sim < float(entry.threshold) or not self._active(entry, now)
                    or not self._camera_allowed(entry, event.camera_id)):
                continue
            alert_id = alert_id_for(event.event_id, entry.watchlist_id, entry.person_id)
            if (not self._first_time(alert_id)
                    or not self._cooldown_allows(entry.watchlist_id, entry.person_id, event.camera_id, "face", alert_id)):
                continue
            alerts.append(Alert(
                alert_id=alert_id, kind="face", watchlist_id=entry.watchlist_id, entry_id=entry.person_id,
                event_id=event.event_id, camera_id=event.camera_id, reason=getattr(entry, "reason", "") or "",
                frame_time=event.frame_time, severity=_severity(entry),
                label=getattr(entry, "name", "") or entry.person_id,
                score=float(sim), crop_path=event.crop_path,
            ))
        return alerts


def _severity(entry: Any) -> str:
    severity = getattr(entry, "severity", "medium")
    return severity if severity in SEVERITIES else "medium"
