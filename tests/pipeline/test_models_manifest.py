"""Model manifest: every listed file verifies in the shared mirror; missing and corrupt files name the fix."""

import shutil
from pathlib import Path

import pytest

from pipeline.models_manifest import FETCH_COMMAND, ModelFileError, fetch_models, load_manifest, resolve_model


def test_shared_mirror_matches_manifest(shared_dir: Path) -> None:
    for entry in load_manifest():
        assert resolve_model(entry.path, shared_dir / "models").is_file()


def test_missing_file_error_names_file_hash_and_command(tmp_path: Path) -> None:
    entry = load_manifest()[0]
    with pytest.raises(ModelFileError) as err:
        resolve_model(entry.path, tmp_path)
    message = str(err.value)
    assert entry.path in message and entry.sha256 in message and FETCH_COMMAND in message


def test_corrupt_file_is_refused(shared_dir: Path, tmp_path: Path) -> None:
    entry = load_manifest()[0]
    target = tmp_path / entry.path
    target.parent.mkdir(parents=True)
    data = (shared_dir / "models" / entry.path).read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="corrupt"):
        resolve_model(entry.path, tmp_path)


def test_fetch_from_mirror_verifies_and_skips_present(shared_dir: Path, tmp_path: Path) -> None:
    calls: list[str] = []

    def progress(name: str, total: int):
        calls.append(name)
        return lambda n: None

    fetched = fetch_models(tmp_path, mirror=shared_dir / "models", include_optional=False, progress=progress)
    assert len(fetched) == sum(1 for e in load_manifest() if not e.optional)
    assert all(resolve_model(e.path, tmp_path) for e in load_manifest() if not e.optional)
    calls.clear()
    fetch_models(tmp_path, mirror=shared_dir / "models", include_optional=False, progress=progress)
    assert calls == []  # already present and verified


def test_fetch_rejects_a_mirror_with_a_wrong_file(shared_dir: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    shutil.copytree(shared_dir / "models", mirror)
    first = load_manifest()[0]
    (mirror / first.path).chmod(0o644)
    (mirror / first.path).write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="does not match"):
        fetch_models(tmp_path / "out", mirror=mirror, include_optional=False, progress=lambda n, t: (lambda k: None))
    assert not (tmp_path / "out" / first.path).exists()
