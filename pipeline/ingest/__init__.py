"""Stream ingest: capture workers (ffmpeg over RTSP/TCP), the shared-memory frame bus and per-camera health."""
