"""Multi-frame voting of plate reads for one vehicle track.

Reads are clustered by registration (canonical form, edit distance <= 1 to the cluster's heaviest read); each
read weighs ``confidence * sqrt(crop area)`` (larger crops are sharper), with invalid reads down-weighted. The
heaviest cluster wins; inside it, the text with the highest summed weight is the answer (for equal-length texts
a per-position weighted character vote can override it). The province is voted separately over all reads,
weighted by ``province_confidence * sqrt(area)``. ``agreeing_frames`` counts reads whose text equals the result.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field

from pipeline.plates.grammar import compact_display, normalise_plate, plate_format
from pipeline.plates.provinces import levenshtein, province_by_name
from pipeline.plates.types import PlateRead

logger = logging.getLogger(__name__)

INVALID_WEIGHT = 0.3


@dataclass
class VotedPlate:
    """Result of voting over a track's reads."""

    text: str
    confidence: float
    province: str | None
    province_latin: str | None
    province_confidence: float
    agreeing_frames: int
    total_frames: int
    candidates: list[tuple[str, float]] = field(default_factory=list)


def _weight(read: PlateRead, area: float) -> float:
    w = max(read.confidence, 1e-3) * math.sqrt(max(area, 1.0))
    return w if read.valid else w * INVALID_WEIGHT


def _char_vote(texts: list[str], weights: list[float]) -> str | None:
    """Per-position weighted vote among equal-length texts (None if lengths differ)."""
    if len({len(t) for t in texts}) != 1:
        return None
    out = []
    for pos in range(len(texts[0])):
        score: dict[str, float] = defaultdict(float)
        for t, w in zip(texts, weights, strict=True):
            score[t[pos]] += w
        out.append(max(score.items(), key=lambda kv: kv[1])[0])
    return "".join(out)


def vote(reads: list[PlateRead], crop_areas: list[float]) -> VotedPlate | None:
    """Combine the reads of one track (``crop_areas[i]`` = pixel area of the crop behind ``reads[i]``)."""
    if len(reads) != len(crop_areas):
        raise ValueError("reads and crop_areas must have the same length")
    items = [(normalise_plate(r.text), _weight(r, a), r, a) for r, a in zip(reads, crop_areas, strict=True)]
    items = [it for it in items if it[0]]
    if not items:
        return None
    # Greedy clustering, heaviest reads first.
    clusters: list[list[tuple[str, float, PlateRead, float]]] = []
    for it in sorted(items, key=lambda x: x[1], reverse=True):
        for cl in clusters:
            if levenshtein(it[0], cl[0][0]) <= 1:
                cl.append(it)
                break
        else:
            clusters.append([it])
    total_w = sum(it[1] for it in items)
    clusters.sort(key=lambda cl: sum(it[1] for it in cl), reverse=True)
    best = clusters[0]
    text_w: dict[str, float] = defaultdict(float)
    for t, w, _, _ in best:
        text_w[t] += w
    winner = max(text_w.items(), key=lambda kv: kv[1])[0]
    voted = _char_vote([t for t, *_ in best], [w for _, w, *_ in best])
    if voted and voted != winner and plate_format(voted) is not None and voted in text_w:
        winner = voted
    cluster_w = sum(it[1] for it in best)
    confidence = cluster_w / total_w if total_w > 0 else 0.0
    # Mean read confidence of the winning text tempers the share (one weak frame is not certain).
    mean_conf = sum(it[2].confidence for it in best if it[0] == winner) / max(1, sum(it[0] == winner for it in best))
    confidence = float(confidence * (0.5 + 0.5 * mean_conf))
    all_text_w: dict[str, float] = defaultdict(float)
    for t, w, _, _ in items:
        all_text_w[t] += w
    candidates = sorted(((compact_display(t), w / total_w) for t, w in all_text_w.items()),
                        key=lambda kv: kv[1], reverse=True)[:5]
    # Province vote over all reads.
    prov_w: dict[str, float] = defaultdict(float)
    for r, a in zip(reads, crop_areas, strict=True):
        if r.province:
            prov_w[r.province] += max(r.province_confidence, 1e-3) * math.sqrt(max(a, 1.0))
    province = province_latin = None
    prov_conf = 0.0
    if prov_w:
        province, pw = max(prov_w.items(), key=lambda kv: kv[1])
        prov_conf = pw / sum(prov_w.values())
        p = province_by_name(province)
        province_latin = p.latin if p else None
    return VotedPlate(
        text=compact_display(winner),
        confidence=confidence,
        province=province,
        province_latin=province_latin,
        province_confidence=float(prov_conf),
        agreeing_frames=sum(1 for it in items if it[0] == winner),
        total_frames=len(reads),
        candidates=candidates,
    )
