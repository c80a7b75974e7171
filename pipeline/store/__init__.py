"""The single writer/reader of events, alerts and watchlists in Redis; the key layout is in :mod:`.keys`."""

from pipeline.store.events import EventStore, NotReplicatedError
from pipeline.store.plates import normalise_plate
from pipeline.store.watchlists import FaceWatchEntry, PlateWatchEntry, WatchlistStore

__all__ = ["EventStore", "NotReplicatedError", "FaceWatchEntry", "PlateWatchEntry", "WatchlistStore", "normalise_plate"]
