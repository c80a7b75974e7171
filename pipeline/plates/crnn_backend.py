"""ONNX Runtime backend of the project's Thai plate reader (``models/plate_reader``).

The network (:mod:`pipeline.plates.net`) reads the registration line with a CTC head and classifies the province
(77 classes, plus a "no province" class in models that have one: the province line is cut off or unreadable, and
the read then carries no province rather than an invented one) from the whole crop. Crops are resized to the
network input (its side-car JSON's size: 96x192 since stage 6, BGR); a motorcycle crop is first re-laid into the car form
(:func:`pipeline.plates.layout.to_reader_form`). With layout ``auto`` a crop is read in both forms and the better
read wins (valid first, then CTC probability). Normalisation happens in the graph. Decoding uses a grammar-constrained CTC prefix beam search (:mod:`pipeline.plates.decoding`); when no
valid registration is found, the best-path read is returned with ``valid=False``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np

from pipeline.models.onnx_utils import create_session
from pipeline.plates.decoding import Decoded, beam_search, best_path
from pipeline.plates.grammar import (
    compact_display,
    is_car_registration,
    is_motorcycle_registration,
    is_valid_car_prefix,
    is_valid_motorcycle_prefix,
)
from pipeline.plates.layout import CAR, LAYOUTS, MOTORCYCLE, to_reader_form
from pipeline.plates.provinces import PROVINCES
from pipeline.plates.types import PlateRead

AUTO = "auto"


def _empty_read() -> PlateRead:
    return PlateRead("", 0.0, [], [], None, None, 0.0, False)

logger = logging.getLogger(__name__)

ONNX_NAME = "plate_reader.onnx"
META_NAME = "plate_reader.json"


def _to_bgr(crop: np.ndarray) -> np.ndarray:
    if crop.ndim == 2:
        return cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
    if crop.shape[2] == 4:
        return cv2.cvtColor(crop, cv2.COLOR_BGRA2BGR)
    return crop


def _with_hyphen_confs(text: str, confs: list[float]) -> tuple[str, list[float]]:
    """Display text (hyphen for commercial) and one confidence per displayed character."""
    shown = compact_display(text)
    if shown != text and len(shown) == len(text) + 1 and len(confs) == len(text):
        confs = confs[:2] + [min(confs[1], confs[2])] + confs[2:]
    return shown, confs


class CrnnPlateReader:
    """Batched Thai plate reader running the shipped ONNX model."""

    def __init__(self, model_dir: Path, device: str = "auto", batch_size: int = 64, beam: int = 8,
                 top_k: int = 5, threads: int = 0, runtime: str = "onnxruntime") -> None:
        model_dir = Path(model_dir)
        onnx_path = model_dir / ONNX_NAME
        meta_path = model_dir / META_NAME
        for p in (onnx_path, meta_path):
            if not p.is_file():
                raise FileNotFoundError(f"plate reader model file missing: {p}")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self.charset: str = meta["charset"]
        self.input_h = int(meta["input"]["height"])
        self.input_w = int(meta["input"]["width"])
        if len(meta["provinces"]) != len(PROVINCES):
            raise ValueError(f"{meta_path}: expected {len(PROVINCES)} provinces")
        self.no_province_class: int | None = meta.get("no_province_class")
        self.layouts = tuple(meta.get("layouts", {CAR: "as is"}))
        self.session = create_session(onnx_path, device=device, threads=threads, runtime=runtime)
        self.providers = self.session.get_providers()
        self.batch_size = batch_size
        self.beam = beam
        self.top_k = top_k
        logger.info("plate reader %s on %s", onnx_path, self.providers)

    def preprocess(self, crops: list[np.ndarray], layouts: list[str] | None = None) -> np.ndarray:
        """Crops in the network's input form: float32 ``[B, 3, H, W]`` in 0..255 (BGR); motorcycle crops are
        re-laid into the car form."""
        out = np.zeros((len(crops), self.input_h, self.input_w, 3), np.uint8)
        for i, crop in enumerate(crops):
            if crop is None or crop.size == 0:
                continue
            layout = layouts[i] if layouts else CAR
            out[i] = to_reader_form(_to_bgr(np.asarray(crop)), layout, (self.input_h, self.input_w))
        return out.transpose(0, 3, 1, 2).astype(np.float32)

    def infer(self, crops: list[np.ndarray], layouts: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw network outputs (``char_probs [B,T,C]``, ``province_probs [B,P]``) in batches."""
        cps, pps = [], []
        for i in range(0, len(crops), self.batch_size):
            x = self.preprocess(crops[i:i + self.batch_size], layouts[i:i + self.batch_size] if layouts else None)
            cp, pp = self.session.run(None, {"image": x})
            cps.append(cp)
            pps.append(pp)
        return np.concatenate(cps), np.concatenate(pps)

    def decode(self, char_probs: np.ndarray, province_probs: np.ndarray, layout: str = CAR) -> PlateRead:
        """Turn one crop's network outputs into a :class:`PlateRead`.

        A plate read as ``motorcycle`` is decoded with the motorcycle grammar only (a three-character series:
        the top line of a three-line plate never holds one or two consonants alone), a plate read as ``car`` with
        the two-line formats only (``private``, ``commercial``: no three-consonant series; ``auto`` reads both
        forms)."""
        results = self._beam(char_probs, layout)
        best: Decoded = results[0] if results else best_path(char_probs, self.charset)
        if layout == MOTORCYCLE and not is_motorcycle_registration(best.text):
            best.valid = False  # a best-path fallback that only a car plate could carry
        return self._plate_read(best, results, province_probs, layout)

    def _beam(self, char_probs: np.ndarray, layout: str) -> list[Decoded]:
        """Grammar-valid registrations of one view, best first: the motorcycle grammar for ``motorcycle``, the
        two-line formats for ``car`` (a car-form read of ``ตร1055`` may not grow a third series letter)."""
        if layout == MOTORCYCLE:
            return beam_search(char_probs, self.charset, beam=self.beam, top_k=self.top_k,
                               prefix_ok=is_valid_motorcycle_prefix, final_ok=is_motorcycle_registration)
        return beam_search(char_probs, self.charset, beam=self.beam, top_k=self.top_k,
                           prefix_ok=is_valid_car_prefix, final_ok=is_car_registration)

    def _plate_read(self, best: Decoded, results: list[Decoded], province_probs: np.ndarray,
                    layout: str) -> PlateRead:
        """The :class:`PlateRead` of a decoded registration, its alternatives and the province probabilities."""
        text, confs = _with_hyphen_confs(best.text, best.char_confidences)
        pidx = int(province_probs.argmax())
        prov = PROVINCES[pidx] if pidx < len(PROVINCES) else None  # else: the "no province" class
        return PlateRead(
            text=text,
            confidence=float(best.score),
            char_confidences=[float(c) for c in confs],
            candidates=[(compact_display(r.text), float(r.score)) for r in results] or [(text, float(best.score))],
            province=prov.thai if prov else None,
            province_latin=prov.latin if prov else None,
            province_confidence=float(province_probs[pidx]) if prov else 0.0,
            valid=best.valid,
            layout=layout,
        )

    def read_batch(self, crops: list[np.ndarray], layouts: list[str] | None = None,
                   outputs: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] | None = None) -> list[PlateRead]:
        """Read BGR plate crops of any size (batched inference, per-crop decoding).

        ``layouts``: per crop ``car``, ``motorcycle`` or ``auto`` (both forms read, the better kept); None reads
        every crop ``auto`` (a caller that does not know the layout gets motorcycle plates read too; the engine
        always says, from the rectifier). A model trained without motorcycle plates reads every crop as a car plate.
        ``outputs``, when given, receives the network's outputs per (crop index, form) for :meth:`read_views`.
        """
        if not crops:
            return []
        wanted = [self._layout(lay) for lay in (layouts or [AUTO] * len(crops))]
        jobs: list[tuple[int, str]] = []
        for i, lay in enumerate(wanted):
            jobs += [(i, CAR), (i, MOTORCYCLE)] if lay == AUTO else [(i, lay)]
        cps, pps = self.infer([crops[i] for i, _ in jobs], [lay for _, lay in jobs])
        reads: list[PlateRead | None] = [None] * len(crops)
        for (i, lay), cp, pp in zip(jobs, cps, pps, strict=True):
            if outputs is not None:
                outputs[(i, lay)] = (cp, pp)
            rd = self.decode(cp, pp, lay)
            if reads[i] is None or (rd.valid, rd.confidence) > (reads[i].valid, reads[i].confidence):
                reads[i] = rd
        for i, crop in enumerate(crops):
            if crop is None or np.asarray(crop).size == 0:
                reads[i] = _empty_read()
        return [r if r is not None else _empty_read() for r in reads]

    def read_views(self, views: list[list[np.ndarray]], layouts: list[str] | None = None,
                   known: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] | None = None) -> list[PlateRead]:
        """Read each plate from several views of it (the same plate framed slightly differently, see
        :mod:`pipeline.plates.second_read`): every view goes through the network in one batch, the grammar-valid
        candidates of the first view's beam are rescored by their mean CTC log-likelihood under all the views, and
        the best wins (confidence: the geometric mean of its probabilities; per-character confidences of the
        first view's alignment; province probabilities averaged over the views). ``layouts`` as in
        :meth:`read_batch`; a plate without a valid candidate gets its first view's read. ``known``: network outputs
        of first views already read, per (plate index, form), as :meth:`read_batch` leaves them in ``outputs``."""
        wanted = [self._layout(lay) for lay in (layouts or [AUTO] * len(views))]
        known = known or {}
        jobs: list[tuple[int, str, int]] = []  # plate, layout, view
        for i, (vs, lay) in enumerate(zip(views, wanted, strict=True)):
            for form in ((CAR, MOTORCYCLE) if lay == AUTO else (lay,)):
                jobs += [(i, form, v) for v in range(len(vs))]
        out = {job: known[job[:2]] for job in jobs if job[2] == 0 and job[:2] in known}
        todo = [k for k, job in enumerate(jobs) if job not in out]
        if todo:
            cps, pps = self.infer([views[jobs[k][0]][jobs[k][2]] for k in todo], [jobs[k][1] for k in todo])
            out.update({jobs[k]: (cp, pp) for k, cp, pp in zip(todo, cps, pps, strict=True)})
        reads: list[PlateRead | None] = [None] * len(views)
        for i, form in dict.fromkeys((i, form) for i, form, _ in jobs):
            mine = [out[job] for job in jobs if job[:2] == (i, form)]
            rd = self._rescore(np.stack([m[0] for m in mine]), np.stack([m[1] for m in mine]), form)
            if reads[i] is None or (rd.valid, rd.confidence) > (reads[i].valid, reads[i].confidence):
                reads[i] = rd
        return [r if r is not None else _empty_read() for r in reads]

    def _rescore(self, char_probs: np.ndarray, province_probs: np.ndarray, layout: str) -> PlateRead:
        """One plate's views (``[V, T, C]``, ``[V, P]``) read in ``layout``: the first view's candidates rescored."""
        from pipeline.plates.second_read import ctc_log_likelihood

        decoded = self._beam(char_probs[0], layout)
        if not decoded:
            return self.decode(char_probs[0], province_probs[0], layout)
        mean_ll = ctc_log_likelihood(char_probs, [d.text for d in decoded], self.charset).mean(axis=0)
        ranked = [Decoded(decoded[k].text, float(np.exp(mean_ll[k])), decoded[k].char_confidences, True)
                  for k in np.argsort(-mean_ll, kind="stable")]
        return self._plate_read(ranked[0], ranked, province_probs.mean(axis=0), layout)

    def _layout(self, layout: str) -> str:
        if layout not in (*LAYOUTS, AUTO):
            raise ValueError(f"unknown plate layout {layout!r}; expected one of {(*LAYOUTS, AUTO)}")
        if MOTORCYCLE not in self.layouts:
            return CAR
        return layout
