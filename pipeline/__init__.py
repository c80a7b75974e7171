"""Control-room video analytics for Thai cities: ingest, recording, analytics and events."""

__version__ = "0.1.0"
