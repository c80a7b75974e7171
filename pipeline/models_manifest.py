"""The model manifest (``models/manifest.yaml``): what the service loads, from where, and its sha256.

Every model file is resolved through :func:`resolve_model`, which checks that the file exists and matches its
sha256 and otherwise raises :class:`ModelFileError` naming the file, the expected hash and the command that
fetches it. :func:`fetch_models` downloads the upstream files (or copies them from a local mirror) with progress.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from pipeline.settings import PROJECT_ROOT, get_settings

logger = logging.getLogger(__name__)

MANIFEST_PATH = PROJECT_ROOT / "models" / "manifest.yaml"
FETCH_COMMAND = "python -m pipeline models fetch"
_CHUNK = 1 << 20


class ModelFileError(RuntimeError):
    """A model file is missing or does not match its manifest hash."""


@dataclass(frozen=True)
class ModelEntry:
    """One upstream model file."""

    path: str
    sha256: str
    url: str
    what: str
    licence: str
    optional: bool = False


@lru_cache(maxsize=1)
def load_manifest(path: Path = MANIFEST_PATH) -> tuple[ModelEntry, ...]:
    """Read the manifest's upstream file list."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return tuple(ModelEntry(**entry) for entry in data["files"])


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=64)
def _verified(path: Path, size: int, mtime_ns: int, expected: str) -> bool:
    return sha256_file(path) == expected


def entry_for(relative_path: str) -> ModelEntry | None:
    """Return the manifest entry of a model path relative to the model dir, if listed."""
    for entry in load_manifest():
        if entry.path == relative_path:
            return entry
    return None


def resolve_model(relative_path: str, model_dir: Path | None = None) -> Path:
    """Return the absolute path of a model file after checking it exists and matches the manifest's sha256.

    Files not listed in the manifest (an operator's own export, a derived file) are only checked for existence.
    """
    base = Path(model_dir) if model_dir is not None else get_settings().model_dir
    path = (base / relative_path).resolve()
    entry = entry_for(relative_path)
    expected = f" (expected sha256 {entry.sha256})" if entry else ""
    if not path.exists():
        raise ModelFileError(
            f"model file {path} is missing{expected}; fetch it with `{FETCH_COMMAND}` "
            f"or set CCTV_MODEL_DIR to the directory that holds it"
        )
    if entry and path.is_file():
        stat = path.stat()
        if not _verified(path, stat.st_size, stat.st_mtime_ns, entry.sha256):
            raise ModelFileError(
                f"model file {path} is corrupt: sha256 {sha256_file(path)} does not match the expected "
                f"{entry.sha256}; fetch it again with `{FETCH_COMMAND}`"
            )
    return path


ProgressFactory = Callable[[str, int], Callable[[int], None]]


def _tqdm_progress(name: str, total: int) -> Callable[[int], None]:
    from tqdm import tqdm

    bar = tqdm(total=total or None, unit="B", unit_scale=True, desc=name, leave=True)

    def update(n: int) -> None:
        bar.update(n)
        if total and bar.n >= total:
            bar.close()

    return update


def fetch_models(
    model_dir: Path,
    mirror: Path | None = None,
    include_optional: bool = True,
    progress: ProgressFactory = _tqdm_progress,
) -> list[Path]:
    """Download (or copy from ``mirror``) every manifest file into ``model_dir``, verifying sha256.

    Files already present with the right hash are skipped. A file whose hash does not match after transfer
    is deleted and reported; nothing half-written is left in place.
    """
    done: list[Path] = []
    for entry in load_manifest():
        if entry.optional and not include_optional:
            continue
        target = model_dir / entry.path
        if target.exists() and sha256_file(target) == entry.sha256:
            logger.info("%s already present and verified", entry.path)
            done.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".part-", delete=False) as tmp:
            tmp_path = Path(tmp.name)
        try:
            if mirror is not None:
                _copy_with_progress(mirror / entry.path, tmp_path, progress(entry.path, (mirror / entry.path).stat().st_size))
            else:
                _download_with_progress(entry.url, tmp_path, progress)
            actual = sha256_file(tmp_path)
            if actual != entry.sha256:
                raise ModelFileError(f"{entry.path}: sha256 {actual} does not match the expected {entry.sha256}")
            tmp_path.replace(target)
            done.append(target)
            logger.info("fetched %s (sha256 verified)", entry.path)
        finally:
            tmp_path.unlink(missing_ok=True)
    return done


def _copy_with_progress(source: Path, target: Path, update: Callable[[int], None]) -> None:
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
            update(len(chunk))


def _download_with_progress(url: str, target: Path, progress: ProgressFactory) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as dst:  # noqa: S310 (manifest URLs)
        total = int(response.headers.get("Content-Length") or 0)
        update = progress(url.rsplit("/", 1)[-1], total)
        while chunk := response.read(_CHUNK):
            dst.write(chunk)
            update(len(chunk))
