"""Offline check of a case package (``python -m pipeline verify-package ZIP [--public-key FILE|FINGERPRINT]``).

A pure file check, without the service: the detached Ed25519 signature (``manifest.sig``) of the exact bytes of
``manifest.json``, the key that made it (the package's ``public-key.pem``, or the one given: a PEM file or the
fingerprint the agency published), then every file the signed manifest lists against its SHA-256, and any file
the zip holds beyond them. :func:`verify_package` collects one line per problem; the package is intact only when
there is none. Without a pinned key the check proves only that the package is as its own key signed it: whoever
made it could have signed it with a key of their own, so the key's fingerprint must be compared with the published
one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.evidence.signing import (
    decode_signature,
    fingerprint,
    load_public_pem,
    normalize_fingerprint,
    verify_signature,
)

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "public-key.pem"
FINGERPRINT = "public-key.fingerprint"
SEAL_FILES = (MANIFEST, SIGNATURE, PUBLIC_KEY, FINGERPRINT)
"""The package's own files, outside the manifest's file list."""
MAX_MANIFEST_BYTES = 64 * 2**20
MAX_SMALL_BYTES = 64 * 1024


@dataclass
class Verdict:
    """What the check found: ``problems`` (each one line; none: intact), ``notes`` (what the signed manifest itself
    reports: missing or altered items), the signing key's fingerprint and whether it was pinned."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    key_fingerprint: str | None = None
    pinned: bool = False
    files_checked: int = 0

    @property
    def ok(self) -> bool:
        """Whether the package is intact."""
        return not self.problems


@dataclass(frozen=True)
class PinnedKey:
    """The key a package must be signed with: a public key, or only its fingerprint."""

    public: Ed25519PublicKey | None = None
    fingerprint: str | None = None


def pinned_key(text: str) -> PinnedKey:
    """The ``--public-key`` argument: a PEM file when one exists at that path, else a fingerprint; ValueError with
    the reason when it is neither."""
    path = Path(text)
    if path.is_file():
        try:
            public = load_public_pem(path.read_bytes()[:MAX_SMALL_BYTES])
        except (OSError, ValueError) as exc:
            raise ValueError(f"--public-key {text}: not an Ed25519 public key PEM file ({exc})") from None
        return PinnedKey(public=public, fingerprint=fingerprint(public))
    value = normalize_fingerprint(text)
    if value is None:
        raise ValueError(f"--public-key {text!r}: no such file, and not a fingerprint (sha256: and 64 hex digits)")
    return PinnedKey(fingerprint=value)


def _read(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """An entry's bytes, refused (ValueError) beyond ``limit``."""
    with zf.open(name) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{name} is larger than {limit} bytes")
    return data


def _sha256(zf: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with zf.open(name) as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _signing_key(zf: zipfile.ZipFile, names: set[str], pin: PinnedKey | None, verdict: Verdict
                 ) -> Ed25519PublicKey | None:
    """The key to check the signature with (the pinned one, else the package's); its problems go to ``verdict``."""
    packaged: Ed25519PublicKey | None = None
    if PUBLIC_KEY in names:
        try:
            packaged = load_public_pem(_read(zf, PUBLIC_KEY, MAX_SMALL_BYTES))
        except ValueError as exc:
            verdict.problems.append(f"{PUBLIC_KEY} is not an Ed25519 public key ({exc})")
    elif pin is None or pin.public is None:
        verdict.problems.append(f"{PUBLIC_KEY} is missing from the package (and no public key file was given)")
    if packaged is not None and FINGERPRINT in names:
        stated = normalize_fingerprint(_read(zf, FINGERPRINT, MAX_SMALL_BYTES).decode(errors="replace"))
        if stated != fingerprint(packaged):
            verdict.problems.append(f"{FINGERPRINT} does not match {PUBLIC_KEY} (it is {fingerprint(packaged)})")
    key = pin.public if pin is not None and pin.public is not None else packaged
    if key is None:
        return None
    verdict.key_fingerprint = fingerprint(key)
    if pin is not None:
        verdict.pinned = True
        if packaged is not None and fingerprint(packaged) != pin.fingerprint:
            verdict.problems.append(f"the package's public key {fingerprint(packaged)} is not the published key "
                                    f"{pin.fingerprint}")
            return pin.public  # None with only a fingerprint: nothing trusted to check the signature with
    return key


def _check_signature(zf: zipfile.ZipFile, names: set[str], manifest: bytes, key: Ed25519PublicKey | None,
                     verdict: Verdict) -> None:
    if SIGNATURE not in names:
        verdict.problems.append(f"{SIGNATURE} (the manifest's signature) is missing from the package")
        return
    try:
        signature = decode_signature(_read(zf, SIGNATURE, MAX_SMALL_BYTES))
    except ValueError as exc:
        verdict.problems.append(f"{SIGNATURE} is not a signature ({exc})")
        return
    if key is not None and not verify_signature(key, signature, manifest):
        verdict.problems.append(f"the signature of {MANIFEST} is not valid for key {fingerprint(key)}: the manifest "
                                f"was changed or signed by another key")


def _check_files(zf: zipfile.ZipFile, names: set[str], manifest: dict, key: Ed25519PublicKey | None,
                 verdict: Verdict) -> None:
    """Every listed file against its SHA-256; files the zip holds beyond the list; the key the manifest names."""
    signing = manifest.get("signing") if isinstance(manifest.get("signing"), dict) else {}
    if key is not None and signing.get("public_key_fingerprint") != fingerprint(key):
        verdict.problems.append(f"the manifest names signing key {signing.get('public_key_fingerprint')!r}, not "
                                f"{fingerprint(key)}")
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(f, dict) and isinstance(f.get("path"), str)
                                              and isinstance(f.get("sha256"), str) for f in files):
        verdict.problems.append(f"{MANIFEST} has no readable file list")
        return
    listed = Counter(f["path"] for f in files)
    verdict.problems += [f"{path}: listed {n} times in the manifest" for path, n in listed.items() if n > 1]
    for entry in files:
        path = entry["path"]
        if path in SEAL_FILES or path not in names:
            verdict.problems.append(f"{path}: listed in the signed manifest but missing from the package")
            continue
        actual = _sha256(zf, path)
        verdict.files_checked += 1
        if actual != entry["sha256"].lower():
            verdict.problems.append(f"{path}: SHA-256 {actual} differs from the signed manifest's {entry['sha256']}")
    extra = sorted(names - set(listed) - set(SEAL_FILES))
    verdict.problems += [f"{name}: in the package but not in the signed manifest" for name in extra]


def _notes(manifest: dict) -> list[str]:
    """What the signed manifest reports about the case itself: items it could not include, clips altered."""
    notes = []
    for entry in manifest.get("altered") or []:
        if isinstance(entry, dict):
            notes.append(f"the server reported {entry.get('path')} ({entry.get('item')}) as altered since its "
                         f"export: {entry.get('reason')}")
    for entry in manifest.get("missing") or []:
        if isinstance(entry, dict):
            notes.append(f"not in the package: {entry.get('what')} of {entry.get('item')}: {entry.get('reason')}")
    return notes


def verify_package(path: Path, pin: PinnedKey | None = None) -> Verdict:
    """Check the case package at ``path`` (see the module docstring); never raises for a bad package."""
    verdict = Verdict()
    try:
        with zipfile.ZipFile(path) as zf:
            _verify_open(zf, pin, verdict)
    except FileNotFoundError:
        verdict.problems.append(f"{path}: no such file")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        verdict.problems.append(f"{path}: not a readable zip file ({exc})")
    except (ValueError, NotImplementedError, RuntimeError) as exc:  # an entry that cannot be read (bad compression)
        verdict.problems.append(f"{path}: an entry cannot be read ({exc})")
    logger.debug("verified %s: %d problems", path, len(verdict.problems))
    return verdict


def _verify_open(zf: zipfile.ZipFile, pin: PinnedKey | None, verdict: Verdict) -> None:
    entries = [info.filename for info in zf.infolist()]
    twice = sorted(name for name, n in Counter(entries).items() if n > 1)
    verdict.problems += [f"{name}: the zip holds more than one entry of this name" for name in twice]
    names = set(entries)
    if MANIFEST not in names:
        verdict.problems.append(f"{MANIFEST} is missing from the package")
        return
    raw = _read(zf, MANIFEST, MAX_MANIFEST_BYTES)
    key = _signing_key(zf, names, pin, verdict)
    _check_signature(zf, names, raw, key, verdict)
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError):
        verdict.problems.append(f"{MANIFEST} is not JSON")
        return
    if not isinstance(manifest, dict):
        verdict.problems.append(f"{MANIFEST} is not a JSON object")
        return
    _check_files(zf, names, manifest, key, verdict)
    verdict.notes = _notes(manifest)
