"""Which files of an InsightFace model pack are the detector and the recogniser."""

from __future__ import annotations

from pathlib import Path

from pipeline.models_manifest import ModelFileError, load_manifest


def face_pack_files(pack: str, model_dir: Path) -> tuple[str, str]:
    """Return ``(detector, recogniser)`` paths relative to the model dir for an InsightFace pack folder.

    Files listed in the manifest under the pack win; otherwise the pack folder is scanned like InsightFace does
    (the detector has ``det`` in its name, the recogniser is the other ``.onnx``).
    """
    pack = pack.strip("/")
    listed = [e.path for e in load_manifest() if e.path.startswith(pack + "/") and e.path.endswith(".onnx")]
    names = listed or sorted(f"{pack}/{p.name}" for p in (Path(model_dir) / pack).glob("*.onnx"))
    detectors = [n for n in names if "det" in Path(n).name or "scrfd" in Path(n).name]
    recognisers = [n for n in names if n not in detectors]
    if not detectors or not recognisers:
        raise ModelFileError(
            f"face model pack {Path(model_dir) / pack} needs a detector (det_*.onnx) and a recogniser .onnx; "
            f"found {names or 'nothing'}; fetch them with `python -m pipeline models fetch`"
        )
    return detectors[0], recognisers[0]
