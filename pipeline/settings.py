"""Process-wide settings read from the environment (never from hard-coded paths).

Every setting has an environment variable prefixed with ``CCTV_``:

- ``CCTV_MODEL_DIR``: directory holding the upstream model files (the layout of ``models/manifest.yaml``).
- ``CCTV_PROJECT_MODEL_DIR``: directory holding the models this project trains and ships (default ``models/``).
- ``CCTV_DERIVED_MODEL_DIR``: where derived files (batch-capable exports) are written (default ``var/models``).
- ``CCTV_REDIS_URL``: Redis connection URL.
- ``CCTV_RECORDINGS_DIR``: root of recordings, snapshots and exported evidence.
- ``CCTV_VIDEOS_DIR``: folder of sample footage served as loopback RTSP cameras by the demo.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Runtime settings; see the module docstring for the environment variables."""

    model_config = SettingsConfigDict(env_prefix="CCTV_", extra="ignore")

    model_dir: Path = Field(
        default=PROJECT_ROOT.parent / "shared" / "models",
        description="Directory of upstream model weights (fetched by `python -m pipeline models fetch`).",
    )
    project_model_dir: Path = Field(
        default=PROJECT_ROOT / "models",
        description="Directory of models trained and shipped by this project (plate reader).",
    )
    derived_model_dir: Path = Field(
        default=PROJECT_ROOT / "var" / "models",
        description="Directory where derived model files (batch-capable exports) are written.",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis connection URL.")
    recordings_dir: Path = Field(
        default=PROJECT_ROOT / "recordings",
        description="Root for recordings, snapshots, crops and exported evidence.",
    )
    videos_dir: Path = Field(
        default=PROJECT_ROOT.parent / "shared" / "data" / "videos",
        description="Folder of sample footage that the demo serves as loopback RTSP cameras.",
    )
    device: str = Field(default="auto", description="Inference device: auto, cpu or cuda.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the settings, read once from the environment."""
    return Settings()
