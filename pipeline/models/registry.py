"""Loads the set of models the analytics engine runs: vehicles/people, plates, faces."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config import EngineConfig
from pipeline.models.derive import PRECISIONS, batch_model_path
from pipeline.models.faces import FaceAnalyzer, FaceEmbedder, ScrfdDetector
from pipeline.models.models_files import face_pack_files
from pipeline.models.onnx_utils import model_providers, resolve_runtime, session_runtime
from pipeline.models.plate_detector import PlateDetector, load_plate_detector
from pipeline.models.yolo import TRAFFIC_CLASSES, UltralyticsDetector, YoloOnnxDetector, load_yolo_detector
from pipeline.models_manifest import resolve_model
from pipeline.settings import get_settings

logger = logging.getLogger(__name__)


@dataclass
class ModelSet:
    """The engine's models; every detector has ``detect_batch(frames) -> list[Detections]``.

    Attributes:
        vehicles: COCO detector on full frames, keeps person (0), car (2), motorcycle (3), bus (5), truck (7).
        plates: plate detector on vehicle crops (boxes in crop pixels, class 0).
        faces: SCRFD + recogniser; faces carry ``landmarks`` (5x2), ``embedding`` (unit norm) and ``quality``.
        embedding_size: length of face embeddings, read from the recogniser (128 for the offline pack).
        providers: ONNX Runtime providers in use (CUDA first when available and asked for).
        files: the model file each backend loaded (derived batch-capable file or upstream file).
        precisions: the variant of each int8 detector in use (``vehicles``, ``plates``: ``fp32``, ``int8-static``
            or ``int8``), as asked for (a static model that cannot be made falls back to ``fp32``, see ``files``).
        runtimes: what runs each model (``onnxruntime`` or ``openvino``), after any fallback.
    """

    vehicles: YoloOnnxDetector | UltralyticsDetector
    plates: PlateDetector
    faces: FaceAnalyzer
    embedding_size: int
    providers: list[str]
    files: dict[str, Path] = field(default_factory=dict)
    precisions: dict[str, str] = field(default_factory=dict)
    runtimes: dict[str, str] = field(default_factory=dict)

    def embed_face_images(self, images: list[np.ndarray]) -> list[np.ndarray | None]:
        """Embedding of the largest face in each photo, ``None`` where no face is found."""
        return self.faces.embed_face_images(images)


def resolve_precision(precision: str, providers: list[str]) -> str:
    """``auto`` -> ``fp32`` (dequantised weights, float activations) on CPU and CUDA; ``int8`` and ``int8-static``
    stay available.

    Measured on the 2-core CPU: fp32 runs the COCO detector ~1.7x and the whole plate cascade ~4x faster than
    int8, with the same cascade recall on the OpenALPR scenes (US 0.940, EU 1.000 at IoU 0.5) and a slightly
    higher full-frame recall; CUDA has no ``ConvInteger`` kernel at all. ``int8`` is the upstream arithmetic,
    bit for bit (``engine.model_precision: int8``). ``int8-static`` (calibrated static quantisation) searches
    batches of plate windows ~1.3x faster, but its slightly moved plate boxes lost one of the eleven Thai scene
    photos (an extreme oblique plate read at 0.22 in fp32), so ``auto`` does not take it (README, "Model
    precision")."""
    if precision not in ("auto", *PRECISIONS):
        raise ValueError(f"unknown precision {precision!r}; expected auto or one of {', '.join(PRECISIONS)}")
    return "fp32" if precision == "auto" else precision


def load_model_set(
    engine_config: EngineConfig, model_dir: Path | None = None, device: str = "auto",
    derived_dir: Path | None = None, precision: str | None = None, runtime: str | None = None,
) -> ModelSet:
    """Load every model the engine needs from ``model_dir`` (default: settings / ``CCTV_MODEL_DIR``).

    ONNX files are replaced by their derived batch-capable versions (made on first load if missing); a missing
    or corrupt upstream file raises :class:`~pipeline.models_manifest.ModelFileError` naming the file, its
    expected sha256 and the fetch command. ``device`` ``auto`` uses CUDA when onnxruntime has it, else the CPU
    (``auto`` defers to ``engine_config.device``). ``precision`` picks the variant of the int8 detectors:
    ``int8`` (the upstream arithmetic, bit-exact), ``fp32`` (dequantised weights, float activations),
    ``int8-static`` (calibrated static quantisation) or ``auto`` (see :func:`resolve_precision`); ``None`` takes
    ``engine_config.model_precision``. ``runtime`` (``None``: ``engine_config.runtime``) is resolved per model by :func:`pipeline.models.onnx_utils.resolve_runtime`.
    """
    settings = get_settings()
    model_dir = Path(model_dir or settings.model_dir)
    derived_dir = Path(derived_dir or settings.derived_model_dir)
    device = device if device != "auto" else engine_config.device
    runtime = runtime or engine_config.runtime
    providers = model_providers(device, runtime)
    det_rel, rec_rel = face_pack_files(engine_config.face_model_pack, model_dir)
    for rel in (engine_config.detector_model, engine_config.plate_detector_model, det_rel, rec_rel):
        resolve_model(rel, model_dir)  # fail fast, before deriving anything, on a missing or corrupt file
    files: dict[str, Path] = {}
    wanted = {role: resolve_runtime(runtime, role, device)
              for role in ("vehicles", "plates", "face_detector", "face_embedder")}
    chosen = resolve_precision(precision or engine_config.model_precision, providers)
    precisions = {"vehicles": chosen, "plates": chosen}

    files["vehicles"] = batch_model_path(engine_config.detector_model, model_dir, derived_dir, precisions["vehicles"])
    vehicles = load_yolo_detector(files["vehicles"], conf=engine_config.vehicle_confidence,
                                  classes=TRAFFIC_CLASSES, device=device, runtime=wanted["vehicles"],
                                  canvas=engine_config.detector_canvas, upscale=engine_config.detector_upscale)
    files["plates"] = batch_model_path(engine_config.plate_detector_model, model_dir, derived_dir, precisions["plates"])
    plates = load_plate_detector(files["plates"], conf=engine_config.plate_confidence, device=device,
                                 runtime=wanted["plates"], canvas=engine_config.plate_canvas)

    files["face_detector"] = batch_model_path(det_rel, model_dir, derived_dir)
    files["face_embedder"] = batch_model_path(rec_rel, model_dir, derived_dir)
    detector = ScrfdDetector(files["face_detector"], conf=engine_config.face_confidence, device=device,
                             runtime=wanted["face_detector"])
    embedder = FaceEmbedder(files["face_embedder"], device=device, source_path=model_dir / rec_rel,
                            runtime=wanted["face_embedder"])
    faces = FaceAnalyzer(detector, embedder)
    sessions = {"vehicles": getattr(vehicles, "session", None), "plates": getattr(plates.detector, "session", None),
                "face_detector": detector.session, "face_embedder": embedder.session}
    runtimes = {role: session_runtime(s) if s is not None else "ultralytics" for role, s in sessions.items()}
    logger.info("model set loaded on %s (precisions %s, runtimes %s): %s", providers[0], precisions, runtimes,
                {k: str(v) for k, v in files.items()})
    return ModelSet(vehicles=vehicles, plates=plates, faces=faces, embedding_size=faces.embedding_size,
                    providers=providers, files=files, precisions=precisions, runtimes=runtimes)


def load_face_analyzer(engine_config: EngineConfig | None = None, model_dir: Path | None = None,
                       device: str = "auto", derived_dir: Path | None = None) -> FaceAnalyzer:
    """Load only the face models (enrolment, search by photo, face benchmark) on ``engine_config.runtime``."""
    engine_config = engine_config or EngineConfig()
    settings = get_settings()
    model_dir = Path(model_dir or settings.model_dir)
    derived_dir = Path(derived_dir or settings.derived_model_dir)
    det_rel, rec_rel = face_pack_files(engine_config.face_model_pack, model_dir)
    detector = ScrfdDetector(batch_model_path(det_rel, model_dir, derived_dir), conf=engine_config.face_confidence,
                             device=device, runtime=resolve_runtime(engine_config.runtime, "face_detector", device))
    embedder = FaceEmbedder(batch_model_path(rec_rel, model_dir, derived_dir), device=device,
                            source_path=model_dir / rec_rel,
                            runtime=resolve_runtime(engine_config.runtime, "face_embedder", device))
    return FaceAnalyzer(detector, embedder)


def embed_face_images(images: list[np.ndarray], analyzer: FaceAnalyzer | None = None) -> list[np.ndarray | None]:
    """Embedding of the largest face in each photo (``None`` where none); loads default face models if needed."""
    return (analyzer or _default_face_analyzer()).embed_face_images(images)


_DEFAULT: dict[str, FaceAnalyzer] = {}


def _default_face_analyzer() -> FaceAnalyzer:
    if "faces" not in _DEFAULT:
        _DEFAULT["faces"] = load_face_analyzer()
    return _DEFAULT["faces"]
