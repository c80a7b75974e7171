"""The service's evidence signing key (Ed25519): every case package's ``manifest.json`` is signed with it.

Where the private key comes from, first match wins:

- ``CCTV_EVIDENCE_SIGNING_KEY``: the key as PEM (PKCS#8) text, for deployments that inject secrets through the
  environment;
- ``CCTV_EVIDENCE_KEY_FILE`` (default ``var/secrets/evidence-signing.key``): a PEM file of mode 0600 in the project's
  private secrets folder (mode 0700). It is generated on first use (or by ``python -m pipeline evidence-key``),
  written whole under a temporary name and linked into place, so two processes starting together end up with one
  key. A key file that group or others may read is refused.

The private key is registered for log redaction (:func:`pipeline.secrets.register_secrets`) as soon as it is
loaded, and nothing here logs, prints or returns it: only the public key and its fingerprint leave this module
(:func:`fingerprint`: ``sha256:`` and the SHA-256 of the 32 raw public key bytes in hex, which an agency publishes so
that a third party can pin it).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.secrets import register_secrets
from pipeline.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

ALGORITHM = "Ed25519"
FINGERPRINT_PREFIX = "sha256:"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class EvidenceKeyError(RuntimeError):
    """The signing key cannot be loaded or created (the message never holds key material)."""


class EvidenceKeySettings(BaseSettings):
    """Where the signing key is (environment variables ``CCTV_EVIDENCE_SIGNING_KEY``, ``CCTV_EVIDENCE_KEY_FILE``)."""

    model_config = SettingsConfigDict(env_prefix="CCTV_", extra="ignore")

    evidence_signing_key: SecretStr | None = Field(default=None, description="The private key as PEM (PKCS#8).")
    evidence_key_file: Path = Field(default=PROJECT_ROOT / "var" / "secrets" / "evidence-signing.key",
                                    description="PEM file of the private key (mode 0600; generated when absent).")


@dataclass(frozen=True)
class SigningKey:
    """The loaded private key (kept out of ``repr``) with its public key and fingerprint."""

    private: Ed25519PrivateKey
    public_pem: str
    fingerprint: str

    def __repr__(self) -> str:
        return f"SigningKey({ALGORITHM}, {self.fingerprint})"

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self.private.sign(data)


def public_pem(public: Ed25519PublicKey) -> str:
    """``public`` as SubjectPublicKeyInfo PEM text."""
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def fingerprint(public: Ed25519PublicKey) -> str:
    """``sha256:<hex>``: the SHA-256 of the 32 raw bytes of ``public``."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return FINGERPRINT_PREFIX + hashlib.sha256(raw).hexdigest()


def normalize_fingerprint(text: str) -> str | None:
    """A fingerprint as :func:`fingerprint` writes it, from how a person may type it (any case, with or without the
    ``sha256:`` prefix, with ``:`` or spaces between the hex digits); None when it is not one."""
    value = text.strip().lower()
    if value.startswith(FINGERPRINT_PREFIX):
        value = value[len(FINGERPRINT_PREFIX):]
    value = re.sub(r"[\s:]", "", value)
    return FINGERPRINT_PREFIX + value if _HEX64.fullmatch(value) else None


def load_public_pem(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM bytes; ValueError when it is not one."""
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def verify_signature(public: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is ``public``'s Ed25519 signature of ``data``."""
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def encode_signature(signature: bytes) -> bytes:
    """The detached signature file's content: base64 of the raw signature and a newline."""
    return base64.b64encode(signature) + b"\n"


def decode_signature(data: bytes) -> bytes:
    """The raw signature of a detached signature file; ValueError when it is not 64 bytes of base64."""
    raw = base64.b64decode(data.strip(), validate=True)
    if len(raw) != 64:
        raise ValueError(f"an Ed25519 signature has 64 bytes, this one {len(raw)}")
    return raw


def _private_pem(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def _signing_key(private: Ed25519PrivateKey) -> SigningKey:
    """Wrap ``private``, registering its PEM and raw forms for redaction first."""
    pem = _private_pem(private).decode()
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    register_secrets([pem, body, raw.hex(), base64.b64encode(raw).decode()])
    return SigningKey(private, public_pem(private.public_key()), fingerprint(private.public_key()))


def _parse_private(data: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise EvidenceKeyError(f"{where} does not hold an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EvidenceKeyError(f"{where} holds a private key that is not Ed25519")
    return key


def _read_key_file(path: Path) -> Ed25519PrivateKey:
    """The key in ``path``, refused when group or others may read or write it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise EvidenceKeyError(f"cannot read the evidence signing key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
        if mode & 0o077:
            raise EvidenceKeyError(f"the evidence signing key file {path} has mode {mode:04o}: others may read it; "
                                   f"chmod 600 it (and replace the key if it may have been copied)")
        data = fh.read(64 * 1024)
    return _parse_private(data, f"the evidence signing key file {path}")


def _create_key_file(path: Path) -> bool:
    """Generate a key into ``path`` (mode 0600, folder 0700) unless one is there; True when this call made it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(_private_pem(Ed25519PrivateKey.generate()))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic and exclusive: a key another process made first is kept
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def load_signing_key(create: bool = True, settings: EvidenceKeySettings | None = None) -> tuple[SigningKey, bool]:
    """The service's signing key and whether it was generated now (``create``: when the key file is absent).

    Raises :class:`EvidenceKeyError` when it cannot be had."""
    settings = settings or EvidenceKeySettings()
    if settings.evidence_signing_key is not None:
        pem = settings.evidence_signing_key.get_secret_value()
        register_secrets([pem])
        return _signing_key(_parse_private(pem.encode(), "CCTV_EVIDENCE_SIGNING_KEY")), False
    path = settings.evidence_key_file
    created = False
    if not path.exists():
        if not create:
            raise EvidenceKeyError(f"no evidence signing key at {path} (python -m pipeline evidence-key makes one)")
        try:
            created = _create_key_file(path)
        except OSError as exc:
            raise EvidenceKeyError(f"cannot create the evidence signing key file {path}: {exc.strerror}") from None
    key = _signing_key(_read_key_file(path))
    if created:
        logger.warning("generated a new evidence signing key in %s; publish its public key fingerprint %s",
                       path, key.fingerprint)
    return key, created
