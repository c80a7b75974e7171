"""Response models of the evidence routes (:mod:`api.routes.evidence`)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PublicKeyOut(BaseModel):
    """The public half of the key that signs case packages (never the private key)."""

    algorithm: str = Field(description="Signature algorithm of `manifest.sig` in a case package: Ed25519.")
    public_key_pem: str = Field(description="The public key, PEM (SubjectPublicKeyInfo), as in `public-key.pem`.")
    fingerprint: str = Field(description="`sha256:` and the SHA-256 (hex) of the 32 raw public key bytes: what the "
                                         "agency publishes and `python -m pipeline verify-package --public-key` "
                                         "takes.")
