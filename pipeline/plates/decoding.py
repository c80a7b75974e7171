"""CTC decoding for the plate reader: best path and grammar-constrained prefix beam search.

The beam search keeps only prefixes that can still become a valid Thai plate
(:func:`pipeline.plates.grammar.is_valid_prefix`) and returns complete valid registrations with their CTC
probability (summed over alignments) and a per-character confidence (the highest frame probability of that
character along the winning alignment).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.plates.grammar import plate_format


@dataclass
class Decoded:
    """A decoded registration (canonical characters)."""

    text: str
    score: float  # probability of the text under the CTC model (0..1)
    char_confidences: list[float]
    valid: bool


def best_path(probs: np.ndarray, charset: str) -> Decoded:
    """Greedy CTC decoding of ``[T, C]`` probabilities (class 0 = blank)."""
    ids = probs.argmax(-1)
    chars: list[str] = []
    confs: list[float] = []
    prev = 0
    for t, k in enumerate(ids):
        k = int(k)
        if k != 0 and k != prev:
            chars.append(charset[k - 1])
            confs.append(float(probs[t, k]))
        elif k != 0 and k == prev:
            confs[-1] = max(confs[-1], float(probs[t, k]))
        prev = k
    text = "".join(chars)
    score = float(np.prod(probs[np.arange(len(ids)), ids]))
    return Decoded(text, score, confs, plate_format(text) is not None)


def beam_search(probs: np.ndarray, charset: str, beam: int = 8, top_k: int = 5, prune: float = 1e-3,
                prefix_ok: Callable[[str], bool] | None = None,
                final_ok: Callable[[str], bool] | None = None) -> list[Decoded]:
    """CTC prefix beam search over ``[T, C]`` probabilities.

    ``prefix_ok`` prunes prefixes (grammar), ``final_ok`` filters complete texts. Returns up to ``top_k``
    results, best first; empty when nothing satisfies the constraints.
    """
    # beams: prefix -> [p_blank, p_nonblank, confidences]
    beams: dict[str, list] = {"": [1.0, 0.0, []]}
    log_scale = 0.0
    n_t = probs.shape[0]
    likely = probs[:, 1:] > prune
    has_char = likely.any(1).tolist()
    for t in range(n_t):
        row = probs[t]
        cand = (np.flatnonzero(likely[t]) + 1).tolist() if has_char[t] else []
        p_blank = float(row[0])
        if not cand:
            # Only the blank is likely: every prefix keeps its rank, so rescale in place (same arithmetic as below).
            best = next(iter(beams.values()))  # beams are kept best first
            top = (best[0] + best[1]) * p_blank
            if top <= 0.0:
                return []
            log_scale += math.log(top)
            beams = {k: [(v[0] + v[1]) * p_blank / top, 0.0, v[2]] for k, v in beams.items()}
            continue
        row_values = row.tolist()
        nxt: dict[str, list] = {}
        for prefix, (pb, pnb, confs) in beams.items():
            total = pb + pnb
            last = prefix[-1] if prefix else None
            # Blank: prefix unchanged.
            e = nxt.get(prefix)
            if e is None:
                e = nxt[prefix] = [0.0, 0.0, confs]
            e[0] += total * p_blank
            for k in cand:
                ch = charset[k - 1]
                pk = row_values[k]
                if ch == last:
                    # Repeat without blank collapses onto the same prefix.
                    e[1] += pnb * pk
                    if pnb * pk > 0 and confs and pk > confs[-1]:
                        e[2] = confs[:-1] + [pk]
                    ext = prefix + ch
                    add = pb * pk
                else:
                    ext = prefix + ch
                    add = total * pk
                if add <= 0.0:
                    continue
                if prefix_ok is not None and not prefix_ok(ext):
                    continue
                f = nxt.get(ext)
                if f is None:
                    nxt[ext] = [0.0, add, confs + [pk]]
                else:
                    if add > f[1] + f[0]:
                        f[2] = confs + [pk]
                    f[1] += add
        ranked = sorted(nxt.items(), key=lambda kv: kv[1][0] + kv[1][1], reverse=True)[:beam]
        top = ranked[0][1][0] + ranked[0][1][1] if ranked else 0.0
        if top <= 0.0:
            return []
        # Rescale to avoid underflow; keep the factor in log space.
        log_scale += math.log(top)
        beams = {k: [v[0] / top, v[1] / top, v[2]] for k, v in ranked}
    out: list[Decoded] = []
    for prefix, (pb, pnb, confs) in sorted(beams.items(), key=lambda kv: kv[1][0] + kv[1][1], reverse=True):
        if not prefix or (final_ok is not None and not final_ok(prefix)):
            continue
        score = math.exp(min(0.0, log_scale + math.log(max(pb + pnb, 1e-300))))
        out.append(Decoded(prefix, score, list(confs), plate_format(prefix) is not None))
        if len(out) >= top_k:
            break
    return out
