"""Runtime benchmark: ONNX Runtime against OpenVINO for each of the engine's models, at the engine's batch sizes.

Usage::

    python -m benchmarks.runtimes [--json OUT] [--plot OUT.png] [--batches 1,4,8] [--repeat N] [--models a,b]

Models (the derived batch-capable fp32 detectors; the static int8 plate detector that ``engine.model_precision: auto``
runs on OpenVINO is compared end to end by ``benchmarks.plate_detection --engine-set model_precision=...``):
``vehicles`` (YOLOv8n COCO, 640), ``plates`` (plate detector, 320), ``face_detector`` (SCRFD-500M, 640x384 canvas
for 16:9 frames), ``face_embedder`` (MobileFaceNet, 112), ``plate_reader`` (the project's CRNN, 64x128) and
``plate_rectifier`` (96x96), plus ``yolo11n_int8_ov``: the Ultralytics YOLO11n int8 OpenVINO export from the
shared models folder (OpenVINO only, a different network: it is compared against the YOLOv8n ONNX Runtime run).

Runtimes: ``onnxruntime`` (the project's sessions, :func:`pipeline.models.onnx_utils.create_session`), ``openvino``
(:class:`pipeline.models.openvino_runtime.OpenVinoSession` on the same ONNX file, f32), ``openvino-bf16`` (the same
in bfloat16, only on CPUs that run it natively: AMX) and ``ort-openvino`` (ONNX Runtime's OpenVINO execution
provider), each where it is installed; the others are skipped with the reason printed.

Inputs are real: frames of ``../shared/data/videos``, vehicle crops the vehicle detector finds there and crops of
``../shared/data/plates_thai`` for the plate detector, faces of the walkway clip and the enrolment photos for the
face models, the held-out (plate-disjoint) split of ``plates_thai`` for the reader and rectifier.

Reported per model x runtime x batch: ``ms_per_frame`` (median network call time over ``--repeat`` calls divided by
the batch; preprocessing left out, the same blob for every runtime; the runtimes take turns call by call so that
the host's load falls on all alike) and ``ratio`` (ONNX Runtime's ms over this runtime's, in the same run: above 1
is faster). Per model x runtime, output agreement with ONNX Runtime over all sample inputs through the backend's
own decoding: detections (same class and IoU > 0.9, greedy one to one: ``match_rate`` = 2 x matched / (boxes of
both), ``min_iou`` of the matched), embeddings (``min_cosine``), reader texts and provinces (``same_text``), rectifier
corners (``max_corner_diff``, in % of the crop width, and ``same_layout``). ``fastest`` names, per model, the runtime
that ``engine.runtime: auto`` should take: one with agreeing outputs that is at least 10 % faster than ONNX Runtime on
average over the batches and not slower at any batch.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.config import EngineConfig
from pipeline.detections import Detections
from pipeline.models.derive import batch_model_path
from pipeline.models.faces import FaceEmbedder, ScrfdDetector
from pipeline.models.models_files import face_pack_files
from pipeline.models.onnx_utils import cpu_class, create_session, run_batched
from pipeline.models.openvino_runtime import OpenVinoSession, native_bf16, openvino_available
from pipeline.models.plate_detector import VEHICLE_MARGIN, crop_boxes
from pipeline.models.sample_frames import evenly_spaced_frames
from pipeline.models.yolo import TRAFFIC_CLASSES, VEHICLE_CLASSES, YoloOnnxDetector
from pipeline.settings import get_settings

logger = logging.getLogger(__name__)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VIDEOS = SHARED / "data" / "videos"
PLATES = SHARED / "data" / "plates_thai"
YOLO11_OV = "yolo/yolo11n_int8_openvino_model/yolo11n.xml"
ORT, OV, OV_BF16, ORT_OV = "onnxruntime", "openvino", "openvino-bf16", "ort-openvino"
ORT_CUDA, ORT_TRT = "ort-cuda", "ort-tensorrt"  # ONNX Runtime's GPU providers, where this build has them
TORCH_CUDA, TORCH_CUDA_FP16 = "torch-cuda", "torch-cuda-fp16"  # the same ONNX files on PyTorch CUDA (onnx2torch)
RUNTIMES = (ORT, OV, OV_BF16, ORT_OV, ORT_CUDA, ORT_TRT, TORCH_CUDA, TORCH_CUDA_FP16)
GPU_RUNTIMES = (ORT_CUDA, ORT_TRT, TORCH_CUDA, TORCH_CUDA_FP16)  # measured and reported, never what auto takes
GPU_PROVIDERS = {ORT_CUDA: "CUDAExecutionProvider", ORT_TRT: "TensorrtExecutionProvider"}
ORT_PROVIDERS: dict[str, list[Any]] = {  # the provider list of each ONNX Runtime session other than the project's own
    ORT_OV: [("OpenVINOExecutionProvider", {"device_type": "CPU", "precision": "FP32"}), "CPUExecutionProvider"],
    ORT_CUDA: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    ORT_TRT: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
MATCH_IOU = 0.9
FASTER = 1.10  # "fastest": at least 10 % faster on average over the batches ...
NOT_SLOWER = 0.97  # ... and no batch more than 3 % slower (noise)


@dataclass
class Case:
    """One model: how to build its backend on a session, the blob of a batch, and how to compare outputs."""

    name: str
    path: Path
    build: Callable[[Any], Any]  # session -> backend
    blob: Callable[[Any, int], np.ndarray]  # (backend, batch) -> network input
    outputs: Callable[[Any], list[Any]]  # backend -> per-sample outputs over all samples
    compare: Callable[[list[Any], list[Any]], dict[str, Any]]
    only: tuple[str, ...] = ()  # runtimes this case runs on (empty: all); reference then is `reference`
    reference: str = ""
    note: str = ""
    sessions: dict[str, Any] = field(default_factory=dict)


def video_frames(per_video: int = 8) -> list[np.ndarray]:
    """``per_video`` evenly spaced frames of each shared video."""
    return [frame for video in sorted(VIDEOS.glob("*.mp4"))
            for frame in evenly_spaced_frames(video, per_video, assumed_total=per_video)]


def held_out_plates(limit: int) -> list[tuple[np.ndarray, str]]:
    """``(crop, label)`` of the plate-disjoint validation split of plates_thai (the reader's held-out crops)."""
    from pipeline.plates.dataset import plate_disjoint_split, read_labels

    samples = read_labels(PLATES / "labels.csv")
    _, val = plate_disjoint_split(samples, 0.15, 0)
    out = []
    for i in val[:limit]:
        image = cv2.imread(str(samples[i].path))
        if image is not None:
            out.append((image, samples[i].label))
    return out


def match_detections(ref: list[Detections], other: list[Detections], min_iou: float = MATCH_IOU) -> dict[str, Any]:
    """Greedy one-to-one matching (same class, IoU > ``min_iou``) of two runs' detections per image."""
    from pipeline.engine.tracking import iou_matrix

    matched = n_ref = n_other = 0
    ious: list[float] = []
    for a, b in zip(ref, other, strict=True):
        n_ref, n_other = n_ref + len(a), n_other + len(b)
        if not len(a) or not len(b):
            continue
        m = iou_matrix(np.asarray(a.xyxy, np.float32), np.asarray(b.xyxy, np.float32))
        m[np.asarray(a.class_id)[:, None] != np.asarray(b.class_id)[None, :]] = 0.0
        free = np.ones(len(b), bool)
        for i in np.argsort(-np.asarray(a.confidence), kind="stable"):
            cand = np.where(free, m[i], -1.0)
            j = int(np.argmax(cand))
            if cand[j] > min_iou:
                free[j] = False
                matched += 1
                ious.append(float(cand[j]))
    total = n_ref + n_other
    rate = 2 * matched / total if total else 1.0
    return {"boxes_ref": n_ref, "boxes": n_other, "matched": matched, "match_rate": round(rate, 4),
            "min_iou": round(min(ious), 4) if ious else None, "ok": rate >= 0.98}


def compare_embeddings(ref: list[np.ndarray], other: list[np.ndarray]) -> dict[str, Any]:
    """Cosine similarity of each pair of embeddings (both L2-normalised)."""
    cos = [float(np.dot(a, b)) for a, b in zip(ref, other, strict=True)]
    low = min(cos) if cos else 1.0
    return {"n": len(cos), "min_cosine": round(low, 5), "mean_cosine": round(float(np.mean(cos)) if cos else 1.0, 5),
            "ok": low > 0.99}


def compare_reads(ref: list[Any], other: list[Any]) -> dict[str, Any]:
    """Share of identical reads (text and province) between two runs of the plate reader."""
    same = sum(a.text == b.text and a.province == b.province for a, b in zip(ref, other, strict=True))
    share = same / len(ref) if ref else 1.0
    return {"n": len(ref), "same_text": round(share, 4), "differ": len(ref) - same, "ok": share >= 0.995}


def compare_corners(ref: list[Any], other: list[Any]) -> dict[str, Any]:
    """Rectifier: largest corner difference in % of the crop width, and the share of identical layouts."""
    diffs, same = [], 0
    for (qa, la, wa), (qb, lb, _) in zip(ref, other, strict=True):
        diffs.append(float(np.abs(np.asarray(qa) - np.asarray(qb)).max()) / max(wa, 1) * 100)
        same += la == lb
    worst = max(diffs) if diffs else 0.0
    share = same / len(ref) if ref else 1.0
    return {"n": len(ref), "max_corner_diff_pct": round(worst, 4), "same_layout": round(share, 4),
            "ok": worst < 1.0 and share >= 0.99}


def in_chunks(items: list[Any], size: int, fn: Callable[[list[Any]], list[Any]]) -> list[Any]:
    """``fn`` over ``items`` in chunks of ``size`` (the engine's batch), results concatenated."""
    out: list[Any] = []
    for i in range(0, len(items), size):
        out += fn(items[i:i + size])
    return out


def open_session(runtime: str, path: Path):  # noqa: ANN201
    """A session of ``runtime`` on ``path`` (``ort-openvino``: ONNX Runtime with its OpenVINO provider;
    ``ort-cuda`` / ``ort-tensorrt``: its CUDA / TensorRT provider, the CPU behind them for unsupported nodes;
    ``torch-cuda`` / ``torch-cuda-fp16``: :class:`~pipeline.models.torch_runtime.TorchSession` on the GPU)."""
    if runtime == ORT:
        return create_session(path, "cpu")
    if runtime in (OV, OV_BF16):
        return OpenVinoSession(path, precision="bf16" if runtime == OV_BF16 else "f32")
    if runtime in (TORCH_CUDA, TORCH_CUDA_FP16):
        from pipeline.models.torch_runtime import TorchSession

        return TorchSession(path, device="cuda", precision="f16" if runtime == TORCH_CUDA_FP16 else "f32")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=ORT_PROVIDERS[runtime])


def available_runtimes() -> tuple[list[str], dict[str, str]]:
    """The runtimes that can run here, and why each other one is skipped."""
    import onnxruntime as ort

    have, skipped = [ORT], {}
    ok, detail = openvino_available()
    if ok:
        have.append(OV)
    else:
        skipped[OV] = detail
    if ok and native_bf16():
        have.append(OV_BF16)
    else:
        skipped[OV_BF16] = detail if not ok else "this CPU has no native bfloat16 (OpenVINO's default precision is f32)"
    if "OpenVINOExecutionProvider" in ort.get_available_providers():
        have.append(ORT_OV)
    else:
        skipped[ORT_OV] = (f"onnxruntime {ort.__version__} has no OpenVINOExecutionProvider (onnxruntime-openvino "
                           "ships its own 'onnxruntime' package and would replace the pinned one)")
    for runtime, provider in GPU_PROVIDERS.items():
        if provider in ort.get_available_providers():
            have.append(runtime)
        else:
            skipped[runtime] = (f"onnxruntime {ort.__version__} has no {provider} (providers: "
                                f"{', '.join(ort.get_available_providers())}; install onnxruntime-gpu on a machine "
                                "with an NVIDIA GPU)")
    from pipeline.models.torch_runtime import torch_available, torch_cuda_available

    torch_ok, torch_detail = torch_available()
    for runtime in (TORCH_CUDA, TORCH_CUDA_FP16):
        if torch_cuda_available():
            have.append(runtime)
        else:
            skipped[runtime] = torch_detail if not torch_ok else f"{torch_detail} sees no CUDA device"
    return have, skipped


def build_cases(max_batch: int, plate_limit: int) -> list[Case]:
    """The engine's models with their sample inputs (real frames, crops and faces)."""
    settings = get_settings()
    config = EngineConfig()
    model_dir, derived_dir = Path(settings.model_dir), Path(settings.derived_model_dir)
    print("loading sample inputs ...", flush=True)
    frames = video_frames()
    vehicles_path = batch_model_path(config.detector_model, model_dir, derived_dir, "fp32")
    plates_path = batch_model_path(config.plate_detector_model, model_dir, derived_dir, "fp32")
    det_rel, rec_rel = face_pack_files(config.face_model_pack, model_dir)
    scrfd_path = batch_model_path(det_rel, model_dir, derived_dir)
    embed_path = batch_model_path(rec_rel, model_dir, derived_dir)

    def yolo(path: Path, conf: float, classes: Any) -> Callable[[Any], YoloOnnxDetector]:  # noqa: ANN401
        def build(session: Any) -> YoloOnnxDetector:  # noqa: ANN401
            det = YoloOnnxDetector(path, conf=conf, classes=classes, device="cpu")
            det.session = session
            return det
        return build

    ort_vehicles = yolo(vehicles_path, config.vehicle_confidence, TRAFFIC_CLASSES)(create_session(vehicles_path, "cpu"))
    crops: list[np.ndarray] = []
    for frame, dets in zip(frames, ort_vehicles.detect_batch(frames), strict=True):
        keep = dets[np.isin(dets.class_id, VEHICLE_CLASSES)]
        crops += [c for c, _ in crop_boxes(frame, keep.xyxy, VEHICLE_MARGIN) if min(c.shape[:2]) >= 32]
    plates = held_out_plates(plate_limit)
    plate_images = crops[:24] + [p for p, _ in plates[:24]]
    walkway = [f for f in video_frames(24) if f.shape[1] == 1920]  # the walkway clip: faces
    enroll = [cv2.imread(str(p)) for p in sorted((VIDEOS / "enroll").glob("*"))]
    enroll = [e for e in enroll if e is not None]

    scrfd_ort = ScrfdDetector(scrfd_path, conf=config.face_confidence, device="cpu")
    embed_ort = FaceEmbedder(embed_path, device="cpu", source_path=model_dir / rec_rel)
    aligned: list[np.ndarray] = []
    for image, dets in zip(walkway + enroll, in_chunks(walkway + enroll, 1, scrfd_ort.detect_batch), strict=True):
        aligned += [embed_ort.align(image, lm) for lm in dets.data["landmarks"]]
    print(f"  {len(frames)} video frames, {len(crops)} vehicle crops, {len(plates)} held-out plate crops, "
          f"{len(walkway)} walkway frames, {len(aligned)} faces", flush=True)

    def scrfd(session: Any) -> ScrfdDetector:  # noqa: ANN401
        det = ScrfdDetector(scrfd_path, conf=config.face_confidence, device="cpu")
        det.session = session
        return det

    def embedder(session: Any) -> FaceEmbedder:  # noqa: ANN401
        emb = FaceEmbedder(embed_path, device="cpu", source_path=model_dir / rec_rel)
        emb.session = session
        return emb

    from pipeline.plates.crnn_backend import CrnnPlateReader
    from pipeline.plates.rectifier import PlateRectifier

    reader_dir = Path(settings.project_model_dir) / "plate_reader"
    rectifier_dir = Path(settings.project_model_dir) / "plate_rectifier"

    def reader(session: Any) -> CrnnPlateReader:  # noqa: ANN401
        r = CrnnPlateReader(reader_dir, device="cpu", batch_size=max_batch)
        r.session = session
        return r

    def rectifier(session: Any) -> PlateRectifier:  # noqa: ANN401
        r = PlateRectifier(rectifier_dir, device="cpu")
        r.session = session
        return r

    def rect_outputs(r: PlateRectifier) -> list[Any]:
        out = in_chunks([p for p, _ in plates], max_batch, r.rectify_batch)
        return [(o.corners, o.layout, p.shape[1]) for o, (p, _) in zip(out, plates, strict=True)]

    def rect_blob(r: PlateRectifier, b: int) -> np.ndarray:
        ih, iw = r.input_hw
        x = np.stack([cv2.resize(p, (iw, ih), interpolation=cv2.INTER_AREA) for p, _ in plates[:b]])
        return x.transpose(0, 3, 1, 2).astype(np.float32)

    def canvas_blob(d: ScrfdDetector, b: int) -> np.ndarray:
        from pipeline.models.faces import SCRFD_MEAN, SCRFD_STD
        from pipeline.models.onnx_utils import letterbox, to_blob

        chosen = walkway[:b]
        hw = d.canvas_size([f.shape[:2] for f in chosen])
        return to_blob([letterbox(f, d.input_size, False, 0, hw)[0] for f in chosen], SCRFD_MEAN, SCRFD_STD)

    def embed_blob(e: FaceEmbedder, b: int) -> np.ndarray:
        from pipeline.models.onnx_utils import to_blob

        return to_blob(aligned[:b], e.input_mean, e.input_std)

    cases = [
        Case("vehicles", vehicles_path, yolo(vehicles_path, config.vehicle_confidence, TRAFFIC_CLASSES),
             lambda d, b: d.preprocess(frames[:b])[0],
             lambda d: in_chunks(frames, max_batch, d.detect_batch), match_detections),
        Case("plates", plates_path, yolo(plates_path, config.plate_confidence, None),
             lambda d, b: d.preprocess(plate_images[:b])[0],
             lambda d: in_chunks(plate_images, max_batch, d.detect_batch), match_detections),
        Case("face_detector", scrfd_path, scrfd, canvas_blob,
             lambda d: in_chunks(walkway + enroll, 1, d.detect_batch), match_detections),
        Case("face_embedder", embed_path, embedder, embed_blob,
             lambda e: list(in_chunks(aligned, max_batch, lambda a: list(e.embed(a)))), compare_embeddings),
        Case("plate_reader", reader_dir / "plate_reader.onnx", reader,
             lambda r, b: r.preprocess([p for p, _ in plates[:b]], ["car"] * b),
             lambda r: in_chunks([p for p, _ in plates], max_batch, r.read_batch), compare_reads),
        Case("plate_rectifier", rectifier_dir / "plate_rectifier.onnx", rectifier, rect_blob, rect_outputs,
             compare_corners),
    ]
    yolo11 = model_dir / YOLO11_OV
    if yolo11.is_file():
        cases.append(Case("yolo11n_int8_ov", yolo11, yolo(vehicles_path, config.vehicle_confidence, TRAFFIC_CLASSES),
                          lambda d, b: d.preprocess(frames[:b])[0],
                          lambda d: in_chunks(frames, max_batch, d.detect_batch), match_detections,
                          only=(OV,), reference="vehicles",
                          note="a different network (YOLO11n int8) compared with YOLOv8n on ONNX Runtime"))
    return cases


def time_case(case: Case, backends: dict[str, Any], batches: list[int], repeat: int) -> dict[str, dict[int, float]]:
    """Median network-call milliseconds per frame per runtime and batch; the runtimes take turns call by call."""
    out: dict[str, dict[int, float]] = {rt: {} for rt in backends}
    for b in batches:
        blobs = {rt: case.blob(be, b) for rt, be in backends.items()}
        for rt, be in backends.items():  # warm-up: OpenVINO compiles each new shape on first use
            for _ in range(2):
                run_batched(be.session, blobs[rt])
        times: dict[str, list[float]] = {rt: [] for rt in backends}
        for _ in range(repeat):
            for rt, be in backends.items():
                t0 = time.perf_counter()
                run_batched(be.session, blobs[rt])  # a model fixed to batch 1 (YOLO11n export) runs image by image
                times[rt].append(time.perf_counter() - t0)
        for rt in backends:
            out[rt][b] = 1000 * float(np.median(times[rt])) / b
        print(f"    batch {b}: " + ", ".join(f"{rt} {out[rt][b]:.2f}" for rt in backends) + " ms/frame", flush=True)
    return out


def pick_fastest(timings: dict[str, dict[int, float]], agreement: dict[str, dict[str, Any]]) -> str:
    """The runtime ``auto`` should take for one model: the one with agreeing outputs that is at least
    :data:`FASTER` x faster than ONNX Runtime on average over the batches and never below :data:`NOT_SLOWER` x;
    ONNX Runtime when none is."""
    best, best_mean = ORT, 1.0
    for rt, per_batch in timings.items():
        if rt == ORT or rt in GPU_RUNTIMES or not agreement.get(rt, {}).get("ok"):
            continue
        ratios = [timings[ORT][b] / ms for b, ms in per_batch.items()]
        mean = float(np.mean(ratios))
        if mean >= FASTER and min(ratios) >= NOT_SLOWER and mean > best_mean:
            best, best_mean = rt, mean
    return best


def run(batches: list[int], repeat: int, plate_limit: int = 300, models: list[str] | None = None,
        runtimes: list[str] | None = None) -> dict[str, Any]:
    """Measure every case (or those named in ``models``) on every available runtime (or those of ``runtimes``
    that are available; ONNX Runtime on the CPU always, as the reference); the JSON-ready results."""
    import onnxruntime as ort

    have, skipped = available_runtimes()
    if runtimes is not None:
        have = [rt for rt in have if rt == ORT or rt in runtimes]
    for rt, why in skipped.items():
        print(f"skipping runtime {rt}: {why}", flush=True)
    load = os.getloadavg()
    all_cases = build_cases(max(batches), plate_limit)
    cases = [c for c in all_cases if not models or c.name in models or (c.name == "vehicles" and "yolo11n_int8_ov"
                                                                          in models)]
    rows: list[dict[str, Any]] = []
    agreement: dict[str, dict[str, Any]] = {}
    timings: dict[str, dict[str, dict[int, float]]] = {}
    references: dict[str, list[Any]] = {}
    for case in cases:
        runtimes = [rt for rt in (case.only or have) if rt in have]
        if case.only and ORT not in case.only:
            runtimes = [ORT, *runtimes]  # timed next to ONNX Runtime on the reference model
        print(f"{case.name}: {case.path.name} on {', '.join(runtimes)}", flush=True)
        backends: dict[str, Any] = {}
        for rt in runtimes:
            path = case.path
            if case.only and rt == ORT:
                path = next(c.path for c in all_cases if c.name == case.reference)
            try:
                backends[rt] = case.build(open_session(rt, path))
            except Exception as exc:  # noqa: BLE001 (a runtime that cannot load a model is a result)
                print(f"  {rt}: cannot load ({type(exc).__name__}: {exc})", flush=True)
                agreement.setdefault(case.name, {})[rt] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if ORT not in backends:
            continue
        outputs = {rt: case.outputs(be) for rt, be in backends.items()}
        reference = references.get(case.reference) if case.reference else outputs[ORT]
        if not case.reference:
            references[case.name] = outputs[ORT]
        agreement[case.name] = {rt: case.compare(reference, outputs[rt]) for rt in backends if rt != ORT
                                or case.reference}
        for rt, figures in agreement[case.name].items():
            print(f"  agreement {rt}: {figures}", flush=True)
        timings[case.name] = time_case(case, backends, batches, repeat)
        for rt, per_batch in timings[case.name].items():
            for b, ms in per_batch.items():
                base = timings[case.name][ORT][b]
                rows.append({"model": case.name, "runtime": rt, "batch": b, "ms_per_frame": round(ms, 3),
                             "ratio": round(base / ms, 3),
                             "agree": agreement[case.name].get(rt, {}).get("ok", True),
                             "note": case.note if rt in case.only else ""})
    fastest = {case.name: pick_fastest(timings[case.name], agreement[case.name])
               for case in cases if not case.only and case.name in timings}
    versions = {"onnxruntime": ort.__version__}
    ok, detail = openvino_available()
    if ok:
        versions["openvino"] = detail
    return {
        "host": {"cpu": _cpu_name(), "cores": host_cores(), "load_before": [round(x, 2) for x in load],
                 "load_after": [round(x, 2) for x in os.getloadavg()],
                 "python": platform.python_version(), **versions},
        "batches": batches, "repeat": repeat, "skipped": skipped, "rows": rows, "agreement": agreement,
        "fastest": fastest, "cpu_class": cpu_class(),
    }


def host_cores() -> int:
    """The cores this process may run on (a container's share, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def print_table(result: dict[str, Any], show_fastest: bool = True) -> None:
    """The model x runtime x batch table."""
    print(f"\n{'model':18s}{'runtime':14s}{'batch':>6s}{'ms/frame':>10s}{'vs ORT':>8s}  agree")
    for row in result["rows"]:
        agree = "yes" if row["agree"] else "NO"
        print(f"{row['model']:18s}{row['runtime']:14s}{row['batch']:>6d}{row['ms_per_frame']:>10.2f}"
              f"{row['ratio']:>7.2f}x  {agree}{'  (' + row['note'] + ')' if row['note'] else ''}")
    host = result.get("host", {})
    if "load_before" in host:
        print(f"host: {host.get('cpu')} ({host.get('cores')} cores), load average before {host['load_before']}, "
              f"after {host.get('load_after')}")
    if show_fastest:
        print(f"\nfastest with the same outputs (engine.runtime: auto, CPU class {result.get('cpu_class', '?')}):",
              result["fastest"])


def plot(result: dict[str, Any], path: Path, title: str | None = None) -> None:
    """Bars of ms per frame, one panel per model, grouped by batch, one bar per runtime (``title``: the figure's
    title, default the host and the number of timed calls)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in result["rows"]))
    batches = result["batches"]
    cols = min(4, len(models))
    rows_n = -(-len(models) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4 * cols, 3.3 * rows_n), squeeze=False)
    for ax, model in zip(axes.flat, models, strict=False):
        rts = list(dict.fromkeys(r["runtime"] for r in result["rows"] if r["model"] == model))
        width = 0.8 / len(rts)
        for k, rt in enumerate(rts):
            vals = [next((r["ms_per_frame"] for r in result["rows"] if r["model"] == model and r["runtime"] == rt
                          and r["batch"] == b), 0.0) for b in batches]
            ax.bar(np.arange(len(batches)) + (k - (len(rts) - 1) / 2) * width, vals, width, label=rt)
        ax.set_title(model)
        ax.set_xticks(np.arange(len(batches)), [f"batch {b}" for b in batches])
        ax.set_ylabel("ms per frame")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(models):]:
        ax.axis("off")
    host = result["host"]
    fig.suptitle(title or f"Runtimes on {host['cpu']} ({host['cores']} cores), network call only, median of "
                 f"{result['repeat']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    ap.add_argument("--plot", type=Path, default=None,
                    help="PNG of the results (default: next to --json, or benchmarks/results/runtimes.png)")
    ap.add_argument("--batches", default="1,4,8", help="batch sizes, comma list (the engine's: 1, 4, 8)")
    ap.add_argument("--repeat", type=int, default=20, help="timed calls per model, runtime and batch")
    ap.add_argument("--plates", type=int, default=300, help="held-out plate crops for the reader's agreement")
    ap.add_argument("--models", default="", help="only these models, comma list (default: all)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    result = run(batches, args.repeat, args.plates, [m for m in args.models.split(",") if m.strip()] or None)
    print_table(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"wrote {args.json}")
    plot_path = args.plot or (args.json.with_suffix(".png") if args.json else
                              Path(__file__).resolve().parent / "results" / "runtimes.png")
    plot(result, plot_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
