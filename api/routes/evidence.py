"""Evidence integrity: the public key that signs case packages, so that a third party can pin it."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, status

from api.deps import Operator
from api.schemas.errors import ErrorOut
from api.schemas.evidence import PublicKeyOut
from pipeline.evidence.signing import ALGORITHM, EvidenceKeyError, load_signing_key

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/evidence", tags=["evidence"])


@router.get("/public-key", response_model=PublicKeyOut, summary="The public key that signs case packages",
            description="Any signed-in user. Compare `fingerprint` with the one the agency published before relying "
                        "on a package checked with this key (`python -m pipeline verify-package ZIP --public-key "
                        "FINGERPRINT`). The key is generated on first use when none is configured.",
            responses={503: {"model": ErrorOut, "description": "The evidence signing key is unavailable."}})
def public_key(user: Operator) -> PublicKeyOut:
    try:
        key, _ = load_signing_key()
    except EvidenceKeyError as exc:
        logger.error("public key requested by %s: %s", user.username, exc)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the evidence signing key is unavailable "
                                                                 "(see the server log)") from None
    return PublicKeyOut(algorithm=ALGORITHM, public_key_pem=key.public_pem, fingerprint=key.fingerprint)
