"""Evidence integrity: the Ed25519 key that signs case packages (:mod:`pipeline.evidence.signing`) and the offline
check of a package (:mod:`pipeline.evidence.verify`, ``python -m pipeline verify-package``)."""
