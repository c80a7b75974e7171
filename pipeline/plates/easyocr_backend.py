"""EasyOCR (Thai + English) plate reading backend, for deployments that provide its weights.

EasyOCR needs ``craft_mlt_25k.pth`` (text detector) and ``thai.pth`` (Thai recogniser) in its model folder
(default ``<CCTV_MODEL_DIR>/easyocr``). Downloads are disabled: when a file is missing, construction fails
with a :class:`FileNotFoundError` naming it. The top text line(s) are taken as the registration and the lowest
line as the province (matched to the nearest of the 77 names).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pipeline.plates.grammar import compact_display, normalise_plate, plate_format
from pipeline.plates.provinces import match_province
from pipeline.plates.types import PlateRead

logger = logging.getLogger(__name__)

REQUIRED_FILES = ("craft_mlt_25k.pth", "thai.pth")


class EasyOcrPlateReader:
    """Plate reader on top of ``easyocr.Reader(['th', 'en'])``."""

    def __init__(self, model_dir: Path, device: str = "auto") -> None:
        model_dir = Path(model_dir)
        for name in REQUIRED_FILES:
            path = model_dir / name
            if not path.is_file():
                raise FileNotFoundError(
                    f"EasyOCR weight file missing: {path} (EasyOCR needs {', '.join(REQUIRED_FILES)} in {model_dir}; "
                    "downloads are disabled — copy the files there or use the default 'crnn' backend)")
        import easyocr
        import torch

        gpu = device in ("auto", "cuda", "gpu") and torch.cuda.is_available()
        self.reader = easyocr.Reader(["th", "en"], gpu=gpu, model_storage_directory=str(model_dir),
                                     download_enabled=False, verbose=False)

    def _read_one(self, crop: np.ndarray, layout: str) -> PlateRead:
        results = self.reader.readtext(crop)
        if not results:
            return PlateRead("", 0.0, [], [], None, None, 0.0, False, layout)
        # Sort lines top to bottom by the box centre; the province is the last line of a car plate and the
        # middle one of a motorcycle plate (series / province / number).
        lines = sorted(results, key=lambda r: float(np.mean([p[1] for p in r[0]])))
        prov_at = 1 if layout == "motorcycle" and len(lines) > 2 else len(lines) - 1
        province = match_province(lines[prov_at][1]) if len(lines) > 1 else None
        reg_lines = [ln for i, ln in enumerate(lines) if i != prov_at] if province is not None else lines
        text = normalise_plate("".join(r[1] for r in reg_lines))
        conf = float(np.prod([float(r[2]) for r in reg_lines])) if reg_lines else 0.0
        shown = compact_display(text)
        return PlateRead(
            text=shown,
            confidence=conf,
            char_confidences=[conf] * len(shown),
            candidates=[(shown, conf)],
            province=province.thai if province else None,
            province_latin=province.latin if province else None,
            province_confidence=float(lines[prov_at][2]) if province else 0.0,
            valid=plate_format(text) is not None,
            layout=layout,
        )

    def read_batch(self, crops: list[np.ndarray], layouts: list[str] | None = None) -> list[PlateRead]:
        """Read each crop (EasyOCR has no batched API for separate images); ``auto`` reads as a car plate."""
        layouts = layouts or ["car"] * len(crops)
        return [self._read_one(c, "motorcycle" if lay == "motorcycle" else "car")
                for c, lay in zip(crops, layouts, strict=True)]
