"""Plate reading accuracy benchmark: plate crops, whole scenes, and an angle sweep of warped plates.

Usage::

    python -m benchmarks.plates --labels PATH/labels.csv [--json OUT] [--backend crnn|easyocr] [--show N]
        [--layout car|motorcycle|auto] [--rectify] [--reading-pad] [--no-second-read]   # crops (default mode)
        [--doubled | --edge-cut KEEP] [--restyle red|graphic] [--shrink PX]
    python -m benchmarks.plates --labels PATH/labels.csv --scenes [--no-rectify] [--no-second-read]
    python -m benchmarks.plates --labels var/plates_split/val.csv --sweep [--sweep-n 60] [--pitch 10] [--no-second-read] \\
        [--rolls 0,10,20,30,40] [--yaws 0,20,40,60] [--widths 40,80,160,320] [--json OUT] [--plot OUT.png]

The labels file has ``relative_path,label[,province,...]`` with paths relative to the labels file. Labels may
contain spaces/hyphens (compared after :func:`pipeline.plates.grammar.normalise_plate`).

**Crops** (default): each image is a plate crop. Reported:

- ``n`` images, ``exact`` (registration exact match), ``char_accuracy`` (1 - edit distance / label length),
- ``province_accuracy`` over rows that carry a province (``n_province`` of them), ``exact_both`` (registration
  and province right, over those rows), ``valid_rate`` (reads matching a Thai grammar),
- ``ms_per_plate``: reader wall time per plate (batched; preprocessing + inference + decoding, no disk I/O;
  with ``--rectify`` the rectifier's time too).

``--layout`` reads every crop in that layout (``motorcycle`` for ``plates_thai_moto/labels.csv``; ``auto`` reads
both and keeps the better). ``--rectify`` runs the plate rectifier on each crop first (the crop stands for the
detector's crop) and reads its upright output in the layout the rectifier found
(:func:`pipeline.plates.rectifier.reading_layout`; ``--layout motorcycle`` then says the vehicle is a
motorcycle); it measures whether rectification hurts plates that were already upright. With ``auto`` or
``--rectify`` the count of reads per layout the reader settled on (``layout_car``, ``layout_motorcycle``) is
reported, with ``--rectify`` also ``rectified_share`` (crops the rectifier warped rather than passed through) and
the layouts the rectifier told (``rectifier_car``, ``rectifier_motorcycle``, ``rectifier_auto`` when unsure).
``--doubled`` reads, instead of the crops, those whose two-letter series can be doubled with their series doubled
(``XY`` -> ``XX`` or ``YY``, every other crop each way: the first letter's real image pasted over the second's, or
the other way round, :func:`pipeline.plates.collage.doubled_series`): doubled series of every consonant on plates
the reader never saw, where the real crops hold few besides ``กก`` and ``ขข``. ``--edge-cut KEEP`` reads, instead
of the crops, those that split into their characters cut through the first (every other crop) or the last
character with ``KEEP`` of its width left (:func:`pipeline.plates.collage.edge_cut`; with ``--reading-pad`` the pad
is added on every side but the cut one): plates that run out of the picture at a frame edge, labels whole.
``--shrink PX`` reads every crop shrunk to ``PX`` pixels wide (area averaging) first: plates as small as road
cameras see them. ``--restyle red|graphic`` (crops and ``--sweep``) redraws every crop as a red dealer plate or a
graphic (vanity) plate, its own characters, light and blur kept (:func:`pipeline.plates.collage.restyle`): plate
colours the data holds no photos of, read from real characters of plates the reader never saw.
The rectifier was trained on reading crops (the detector's box plus the engine's reading pad); ``--reading-pad``
grows tight crops by that pad (border replicated) first, so that they look like what the rectifier gets.
Rectified plates read with a low confidence are read again from margin views as the engine does
(:mod:`pipeline.plates.second_read`; ``--no-second-read`` turns that off, also for ``--scenes``); the time is in
``ms_per_plate``.

**Scenes** (``--scenes``): each image is a whole scene read by :class:`pipeline.plates.scene_reader.SceneReader`
(vehicle -> plate cascade, rectifier unless ``--no-rectify``, reader); the most confident valid read is scored.
``ms_per_plate`` is then the rectifier + reader time per detected plate, ``ms_per_image`` the whole chain and
``plates_detected`` the number of plates read.

**Angle sweep** (``--sweep``): ``--sweep-n`` crops of the labels file (tight upright car plates, normally the
plate-disjoint validation split ``var/plates_split/val.csv``, written by ``python -m pipeline.plates.dataset``)
are turned in 3-D (:func:`pipeline.plates.geometry.plate_quad`: roll, yaw, ``--pitch``; width in pixels),
composited into a patch of a real background (frames of ``--videos``, images of ``--backgrounds`` whose labelled
plates are painted over unless ``--keep-plates``) about 3.2 x 2.4 plate widths (at least 200 x 150 px, plate
near the centre, random offset) and read end to end by ``SceneReader`` twice, with the rectifier (``rectified``)
and without (``off``): the same scenes, so the gain is the rectifier's. The cells are the union of a roll sweep
(yaw 0), a yaw sweep (roll 0) and the roll x yaw grid, all at ``--grid-width`` px, and a frontal width sweep
(``--widths``). Sample ``i`` uses the same crop, background and offset in every cell. With ``--on-cars`` the
scenes are real car photos instead: the images of ``--backgrounds`` that a ``labels.csv`` gives a plate box (the
OpenALPR US and EU photos), their plate painted over, each scaled so that its own plate was as wide as the cell's
and cut to at most 1280 x 720 around it, the posed Thai plate centred where the photo's plate was; the vehicle
detector then finds the car and the cascade searches it, as on a camera (a floating plate without a car is only
found by the whole-frame search, which needs it large in its input).

A sample is exact when the read of the best-scoring detection that overlaps the plate (IoU >= 0.2 with the box
of its corners) equals the label; a plate not found is wrong. Per cell: ``detected`` (plate found),
``best_is_plate`` (it was the scene's best detection), ``exact`` and ``char_accuracy`` per mode,
``rectifier_applied`` (share of the plates the ``rectified`` mode found that the rectifier warped rather than passed
through; ``detected`` is the ``off`` mode's, which has no turned look of plates read unsure) and
``exact_true_box`` per mode: the same scene's plate read from the reading crop of its true box, as if the
detector had found it exactly (this separates the rectifier's and reader's share from the detector's). Printed: a table per cell and the
roll x yaw grid; ``--json`` writes ``cells``, ``sweeps`` (cell indices per sweep) and ``summary`` (frontal,
roll 30, yaw 40, min and mean over cells, per mode; the same under ``true_box``); a PNG (``--plot``, default next
to ``--json`` or ``benchmarks/results/plates_sweep.png``) plots exact reads against roll, yaw and width.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from benchmarks.report import add_engine_set, engine_settings
from pipeline.models.onnx_utils import RUNTIMES
from pipeline.plates.collage import RESTYLES
from pipeline.plates.grammar import normalise_plate
from pipeline.plates.provinces import levenshtein, match_province
from pipeline.plates.reader import PlateRead, PlateReader, load_plate_reader

if TYPE_CHECKING:
    from pipeline.models.plate_detector import PlateCascade
    from pipeline.plates.rectifier import PlateRectifier, RectifiedPlate
    from pipeline.plates.scene_reader import ScenePlate, SceneReader
    from pipeline.plates.warps import Backgrounds

logger = logging.getLogger(__name__)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEFAULT_VIDEOS = [SHARED_DATA / "videos"]
DEFAULT_BACKGROUNDS = [SHARED_DATA / "plates_openalpr_us" / "images", SHARED_DATA / "plates_openalpr_eu" / "images"]
DEFAULT_PLOT = Path(__file__).resolve().parent / "results" / "plates_sweep.png"
LAYOUT_CHOICES = ("car", "motorcycle", "auto")
MODES = ("rectified", "off")  # sweep: with the rectifier, without
SCENE_SCALE = (3.2, 2.4)  # scene width and height in plate widths
SCENE_MIN = (200, 150)  # smallest scene, width x height
SCENE_OFFSET = 0.12  # plate centre offset from the scene centre, at most this share of the scene size
CAR_FRAME = (1280, 720)  # --on-cars: the largest frame (width, height) cut from a scaled car photo
CAR_OFFSET = 0.25  # --on-cars: the plate's centre off the frame's by at most this share of the frame size
MATCH_IOU = 0.2  # a detection at least this IoU with the plate's box is the plate (as plate_detection --fit)


def read_rows(labels: Path) -> list[dict[str, str]]:
    """Rows of the labels file with ``path`` resolved against its folder."""
    with labels.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["path"] = str(labels.parent / r["relative_path"])
    return rows


def load_image(path: str) -> np.ndarray:
    """A BGR image, or FileNotFoundError."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read {path}")
    return img


def row_image(row: dict[str, Any]) -> np.ndarray:
    """The row's image: the one an earlier step made (``image``), else its file."""
    return row["image"] if "image" in row else load_image(row["path"])


def char_errors(pred: str, gt: str) -> int:
    """Edit distance between normalised ``pred`` and ``gt``, capped at the label's length."""
    return min(levenshtein(pred, gt), len(gt))


def score(rows: list[dict[str, str]], reads: list[PlateRead]) -> dict[str, float]:
    """Accuracy figures of ``reads`` against the labelled ``rows``."""
    n = len(rows)
    exact = char_err = char_tot = 0
    n_prov = prov_ok = both_ok = valid = 0
    for row, rd in zip(rows, reads, strict=True):
        gt = normalise_plate(row["label"])
        pred = normalise_plate(rd.text)
        ok = pred == gt
        exact += ok
        char_err += char_errors(pred, gt)
        char_tot += len(gt)
        valid += rd.valid
        gp = match_province(row.get("province") or "")
        if gp is not None:
            n_prov += 1
            pok = rd.province == gp.thai
            prov_ok += pok
            both_ok += ok and pok
    return {
        "n": n,
        "exact": exact / n if n else 0.0,
        "char_accuracy": 1.0 - char_err / char_tot if char_tot else 0.0,
        "n_province": n_prov,
        "province_accuracy": prov_ok / n_prov if n_prov else float("nan"),
        "exact_both": both_ok / n_prov if n_prov else float("nan"),
        "valid_rate": valid / n if n else 0.0,
    }


def empty_read() -> PlateRead:
    """The read of a scene where no plate was found."""
    return PlateRead("", 0.0, [], [], None, None, 0.0, False)


# --- crops -------------------------------------------------------------------------------------------------------


def read_crop_batch(crops: list[np.ndarray], reader: PlateReader, layout: str,
                    rectifier: PlateRectifier | None = None,
                    second_read: bool = True) -> tuple[list[PlateRead], list[RectifiedPlate]]:
    """Read crops in ``layout``; with a rectifier, rectify first and read in the layout it found (uncertain plates
    read again from margin views unless ``second_read`` is False).

    Returns the reads and the rectifier's results (empty without one)."""
    if rectifier is None:
        return reader.read_batch(crops, [layout] * len(crops)), []
    from pipeline.plates.rectifier import reading_layout
    from pipeline.plates.second_read import read_plates

    rectified = rectifier.rectify_batch(crops)
    layouts = [reading_layout(r, layout == "motorcycle") for r in rectified]
    return read_plates(reader, crops, rectified, layouts, second_read, rectifier=rectifier), rectified


def with_reading_pad(crop: np.ndarray) -> np.ndarray:
    """``crop`` grown by the engine's reading pad (:data:`pipeline.plates.geometry.READING_PAD`), border
    replicated: a tight plate crop made to look like the reading crop around a detector's box."""
    from pipeline.plates.geometry import reading_pad_pixels

    px, py = reading_pad_pixels(crop.shape)
    return cv2.copyMakeBorder(crop, py, py, px, px, cv2.BORDER_REPLICATE)


def run_crops(rows: list[dict[str, str]], reader: PlateReader, batch: int, layout: str = "car",
              rectifier: PlateRectifier | None = None, pad: bool = False,
              second_read: bool = True) -> tuple[list[PlateRead], float, list[RectifiedPlate]]:
    """Read plate crops in batches (grown by the reading pad first when ``pad``); returns reads, milliseconds per
    plate (rectifier + reader) and the rectifier's results (empty without one)."""
    reads: list[PlateRead] = []
    rectified: list[RectifiedPlate] = []
    elapsed = 0.0
    for i in range(0, len(rows), batch):
        crops = [row_image(r) for r in rows[i:i + batch]]
        if pad:
            crops = [with_reading_pad(c) for c in crops]
        t0 = time.perf_counter()
        got, rect = read_crop_batch(crops, reader, layout, rectifier, second_read)
        elapsed += time.perf_counter() - t0
        reads += got
        rectified += rect
    return reads, elapsed * 1000 / max(len(rows), 1), rectified


def doubled_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The crops whose series ``XY`` can be made the doubled ``XX`` / ``YY`` (every other row each way), with
    their new labels and images (:func:`pipeline.plates.collage.doubled_series`): doubled series of every
    consonant on real crops of plates the reader never saw."""
    from pipeline.plates.collage import doubled_series

    out = []
    for k, r in enumerate(rows):
        made = doubled_series(load_image(r["path"]), normalise_plate(r["label"]), first=k % 2 == 0)
        if made is not None:
            out.append({**r, "image": made[0], "label": made[1]})
    return out


def restyled_rows(rows: list[dict[str, Any]], style: str, seed: int = 0) -> list[dict[str, Any]]:
    """Every crop redrawn as a ``red`` dealer or ``graphic`` vanity plate (:func:`pipeline.plates.collage.restyle`,
    seeded per row): real characters of plates the reader never saw, in the colours the data has no photos of."""
    from pipeline.plates.collage import restyle

    return [{**r, "image": restyle(row_image(r), style, np.random.default_rng([seed, k]))} for k, r in enumerate(rows)]


def shrunk_rows(rows: list[dict[str, Any]], width: int) -> list[dict[str, Any]]:
    """Every crop shrunk (area averaging) to ``width`` pixels wide, its aspect kept: plates as small as a road
    camera sees them (the reader and the rectifier enlarge them again, as in the engine)."""
    out = []
    for r in rows:
        crop = row_image(r)
        h, w = crop.shape[:2]
        size = (width, max(4, round(h * width / w)))
        out.append({**r, "image": cv2.resize(crop, size, interpolation=cv2.INTER_AREA) if width < w else crop})
    return out


def edge_cut_rows(rows: list[dict[str, Any]], keep: float, pad: bool) -> list[dict[str, Any]]:
    """The crops that split into their characters, cut through the first (even rows) or last (odd rows) character
    with ``keep`` of its width left, labels whole (:func:`pipeline.plates.collage.edge_cut`): plates running out
    of the picture at a frame edge. With ``pad`` the engine's reading pad is added on every side but the cut one
    (the reading crop of a plate at the frame edge)."""
    from pipeline.plates.collage import edge_cut
    from pipeline.plates.geometry import reading_pad_pixels

    out = []
    for k, r in enumerate(rows):
        crop = row_image(r)
        grow = reading_pad_pixels(crop.shape) if pad else (0, 0)
        side = "left" if k % 2 == 0 else "right"
        made = edge_cut(crop, normalise_plate(r["label"]), keep, side, grow)
        if made is not None:
            out.append({**r, "image": made, "edge": side})
    return out


def layout_counts(layouts: list[str], prefix: str = "layout_", names: tuple[str, ...] = ("car", "motorcycle")
                  ) -> dict[str, int]:
    """How many of ``layouts`` are each layout, as ``<prefix><name>`` keys (every name of ``names`` present)."""
    counts = Counter(layouts)
    return {f"{prefix}{name}": counts.get(name, 0) for name in sorted({*names, *counts})}


# --- scenes ------------------------------------------------------------------------------------------------------


class OnceCascade:
    """A plate cascade wrapper that detects each frame once (so several scene readers can share one frame's
    detections) and adds up its detection time in ``seconds``."""

    def __init__(self, cascade: PlateCascade) -> None:
        self.cascade = cascade
        self.seconds = 0.0
        self._frame: np.ndarray | None = None
        self._result: Any = None

    @property
    def plates(self) -> Any:
        """The cascade's plate detector (the scene reader's turned looks search with it; their time counts as
        reading time)."""
        return self.cascade.plates

    def detect(self, frame: np.ndarray) -> Any:
        """The cascade's ``(plates, vehicles)`` for ``frame``; cached for the last frame object."""
        if frame is not self._frame:
            t0 = time.perf_counter()
            self._result = self.cascade.detect(frame)
            self.seconds += time.perf_counter() - t0
            self._frame = frame
        return self._result


def build_scene_readers(reader: PlateReader, rectifier: PlateRectifier | None, device: str,
                        second_read: bool = True, runtime: str = "auto",
                        detector_upscale: bool = False, engine_set: dict[str, Any] | None = None,
                        regrow: bool = True) -> tuple[OnceCascade, dict[str, SceneReader]]:
    """The engine's cascade (shared, detecting each frame once; its detectors on ``engine.runtime`` ``runtime``,
    ``engine.detector_upscale`` ``detector_upscale``, other ``engine:`` settings in ``engine_set``) and a scene
    reader per rectifier mode: ``rectified`` when ``rectifier`` is given (plates cut by their box grown and read
    again unless not ``regrow``), ``off`` always."""
    from benchmarks.plate_detection import build_cascade
    from pipeline.plates.scene_reader import SceneReader

    cascade = OnceCascade(build_cascade(0.25, 0.15, device, runtime=runtime, detector_upscale=detector_upscale,
                                        engine_set=engine_set))
    readers = {"off": SceneReader(cascade, reader, None)}
    if rectifier is not None:
        readers = {"rectified": SceneReader(cascade, reader, rectifier, second_read=second_read, regrow=regrow),
                   **readers}
    return cascade, readers


BOX_COLUMNS = ("x", "y", "w", "h")  # a labels file with a plate box per row (``plates_thai_moto/detection.csv``)


def labelled_box(row: dict[str, str]) -> np.ndarray | None:
    """The row's plate box (xyxy) when the labels file has :data:`BOX_COLUMNS`, else None."""
    if not all(row.get(k) not in (None, "") for k in BOX_COLUMNS):
        return None
    x, y, w, h = (float(row[k]) for k in BOX_COLUMNS)
    return np.float32([x, y, x + w, y + h])


def run_scenes(rows: list[dict[str, str]], scene_reader: SceneReader,
               cascade: OnceCascade) -> tuple[list[PlateRead], float, float, int]:
    """Whole scenes through ``scene_reader`` (each image once); returns a read per row, ms per plate (rectifier +
    reader), ms per image (everything) and the number of plates read. A row with a plate box
    (:func:`labelled_box`) gets the read of the plate found there (at least :data:`MATCH_IOU`; several rows may
    share an image), a row without one the most confident valid read of its image."""
    reads: list[PlateRead] = []
    t_total = 0.0
    n_plates = 0
    t_detect0 = cascade.seconds
    seen: dict[str, list[ScenePlate]] = {}
    for r in rows:
        if r["path"] not in seen:
            img = load_image(r["path"])
            t0 = time.perf_counter()
            seen[r["path"]] = scene_reader.read(img)
            t_total += time.perf_counter() - t0
            n_plates += len(seen[r["path"]])
        found = seen[r["path"]]
        box = labelled_box(r)
        if box is not None:
            plate = plate_at(found, box)
            best = plate.read if plate is not None else empty_read()
        else:
            best = max((p.read for p in found), key=lambda rd: (rd.valid, rd.confidence), default=empty_read())
        logger.info("%s: %d plates, read %s %s", r["path"], len(found), best.text, best.province)
        reads.append(best)
    t_read = t_total - (cascade.seconds - t_detect0)
    return reads, t_read * 1000 / max(n_plates, 1), t_total * 1000 / max(len(seen), 1), n_plates


# --- angle sweep -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One pose of the sweep: angles in degrees, plate width in pixels."""

    roll: float
    yaw: float
    pitch: float
    width: float

    def label(self) -> str:
        """Short text for tables."""
        return f"r{self.roll:g} y{self.yaw:g} p{self.pitch:g} w{self.width:g}"


def sweep_cells(rolls: list[float], yaws: list[float], widths: list[float], grid_width: float,
                pitch: float) -> tuple[list[Cell], dict[str, list[int]]]:
    """Unique cells of the roll sweep (yaw 0), yaw sweep (roll 0) and roll x yaw grid at ``grid_width`` and the
    frontal width sweep; returns the cells and each sweep's cell indices (sorted along its axis)."""
    rolls, yaws, widths = (sorted(set(v)) for v in (rolls, yaws, widths))
    plans = {
        "roll": [Cell(r, 0.0, pitch, grid_width) for r in rolls],
        "yaw": [Cell(0.0, y, pitch, grid_width) for y in yaws],
        "width": [Cell(0.0, 0.0, pitch, w) for w in widths],
        "grid": [Cell(r, y, pitch, grid_width) for r in rolls for y in yaws],
    }
    cells: list[Cell] = []
    sweeps: dict[str, list[int]] = {}
    for name, plan in plans.items():
        ids = []
        for cell in plan:
            if cell not in cells:
                cells.append(cell)
            ids.append(cells.index(cell))
        sweeps[name] = list(dict.fromkeys(ids))
    return cells, sweeps


def posed_plate(plate: np.ndarray, cell: Cell) -> tuple[np.ndarray, np.ndarray]:
    """``plate`` (tight upright crop) and its corners posed as ``cell``, centred on (0, 0); the crop is first shrunk
    with area averaging where the pose makes it smaller (the perspective warp alone would alias small plates)."""
    from pipeline.plates.geometry import plate_quad

    ph, pw = plate.shape[:2]
    quad = plate_quad(cell.width, pw / ph, cell.roll, cell.yaw, cell.pitch)
    span = float(max(np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[3])))
    if span < pw:
        plate = cv2.resize(plate, (max(8, round(span)), max(4, round(span * ph / pw))), interpolation=cv2.INTER_AREA)
    return plate, quad


def _placed(frame: np.ndarray, plate: np.ndarray, quad: np.ndarray, rng: np.random.Generator,
            noise: float) -> tuple[np.ndarray, np.ndarray]:
    """``plate`` composited onto ``frame`` at ``quad`` (frame pixels), noise added; the scene and the plate's
    axis-aligned box (xyxy)."""
    from pipeline.plates.augment import photometric
    from pipeline.plates.geometry import composite

    frame = composite(frame, plate, quad)
    if noise > 0:
        frame = photometric(frame, rng, noise)
    return frame, np.concatenate([quad.min(axis=0), quad.max(axis=0)]).astype(np.float32)


def make_scene(plate: np.ndarray, backgrounds: Backgrounds, cell: Cell, rng: np.random.Generator,
               noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``plate`` (tight upright crop) posed as ``cell`` in a background patch; returns the scene and the plate's
    axis-aligned box (xyxy) in it. The random draws do not depend on the cell."""
    plate, quad = posed_plate(plate, cell)
    sw = max(SCENE_MIN[0], round(SCENE_SCALE[0] * cell.width))
    sh = max(SCENE_MIN[1], round(SCENE_SCALE[1] * cell.width))
    lo, hi = quad.min(axis=0), quad.max(axis=0)
    dx, dy = rng.uniform(-1.0, 1.0, 2) * SCENE_OFFSET
    cx = float(np.clip(sw / 2 + dx * sw, 2 - lo[0], sw - 2 - hi[0]))
    cy = float(np.clip(sh / 2 + dy * sh, 2 - lo[1], sh - 2 - hi[1]))
    return _placed(backgrounds.patch(rng, sh, sw), plate, quad + np.float32([cx, cy]), rng, noise)


@dataclass(frozen=True)
class CarPhoto:
    """A real photo of a car with its labelled plate painted over, and that plate's box (x, y, w, h, pixels)."""

    image: np.ndarray
    plate: tuple[float, float, float, float]


def load_car_photos(image_dirs: list[Path], max_side: int = 1600) -> list[CarPhoto]:
    """The photos of ``image_dirs`` that a ``labels.csv`` gives a plate box (:func:`labelled_plates`), scaled to at
    most ``max_side`` pixels, every labelled plate painted over; SystemExit when there is none."""
    photos: list[CarPhoto] = []
    for path, boxes in sorted(labelled_plates(image_dirs).items()):
        img, s = read_scaled(path, max_side)
        if img is None:
            continue
        scaled = [[v * s for v in b] for b in boxes]
        x, y, w, h = scaled[0]
        photos.append(CarPhoto(hide_plates(img, scaled), (x, y, w, h)))
    if not photos:
        raise SystemExit(f"--on-cars: no photo with a labelled plate box in {[str(d) for d in image_dirs]}")
    logger.info("on cars: %d photos with a labelled plate", len(photos))
    return photos


def car_frame(photo: CarPhoto, scale: float, centre: tuple[float, float], size: tuple[int, int]) -> np.ndarray:
    """The region of ``photo`` scaled by ``scale`` whose top-left corner is ``centre`` minus half ``size`` (w, h),
    in scaled pixels (area averaging when shrinking)."""
    w, h = size
    x0, y0 = centre[0] - w / 2, centre[1] - h / 2
    source, s = photo.image, scale
    if scale < 1:  # shrink by area averaging first; the warp then only moves the region
        source, s = cv2.resize(photo.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), 1.0
    m = np.float32([[s, 0, -x0], [0, s, -y0]])
    return cv2.warpAffine(source, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def make_car_scene(plate: np.ndarray, photos: list[CarPhoto], cell: Cell, rng: np.random.Generator,
                   noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``plate`` posed as ``cell`` where the plate of a real car photo was: the photo scaled so that its own plate
    was ``cell.width`` wide, a frame of at most :data:`CAR_FRAME` cut around the plate (its centre off the frame's
    by up to :data:`CAR_OFFSET` of the frame), the posed plate centred where the photo's plate was. The car is
    the photo's, so the vehicle detector and the cascade see what a camera would. Returns the scene and the
    plate's box (xyxy); the random draws do not depend on the cell."""
    photo = photos[int(rng.integers(len(photos)))]
    dx, dy = rng.uniform(-1.0, 1.0, 2) * CAR_OFFSET
    plate, quad = posed_plate(plate, cell)
    x, y, w, h = photo.plate
    scale = cell.width / w
    ih, iw = photo.image.shape[:2]
    fw = max(int(np.ceil(np.ptp(quad[:, 0]))) + 8, min(CAR_FRAME[0], round(iw * scale)))
    fh = max(int(np.ceil(np.ptp(quad[:, 1]))) + 8, min(CAR_FRAME[1], round(ih * scale)))
    px, py = (x + w / 2) * scale, (y + h / 2) * scale  # the plate's centre in the scaled photo
    lo, hi = quad.min(axis=0), quad.max(axis=0)
    # frame centre: off the plate by the draw, inside the scaled photo, and the posed plate inside the frame
    cx = float(np.clip(np.clip(px + dx * fw, fw / 2, max(fw / 2, iw * scale - fw / 2)),
                       px + hi[0] + 2 - fw / 2, px + lo[0] - 2 + fw / 2))
    cy = float(np.clip(np.clip(py + dy * fh, fh / 2, max(fh / 2, ih * scale - fh / 2)),
                       py + hi[1] + 2 - fh / 2, py + lo[1] - 2 + fh / 2))
    frame = car_frame(photo, scale, (cx, cy), (fw, fh))
    offset = np.float32([px - cx + fw / 2, py - cy + fh / 2])
    return _placed(frame, plate, quad + offset, rng, noise)


def plate_at(found: list[ScenePlate], box: np.ndarray) -> ScenePlate | None:
    """The first (best-scoring) of the scene reader's plates that overlaps ``box``, or None."""
    from pipeline.engine.tracking import iou_matrix

    if not found:
        return None
    ious = iou_matrix(np.stack([np.asarray(p.box, np.float32) for p in found]), box[None])[:, 0]
    hits = np.flatnonzero(ious >= MATCH_IOU)
    return found[int(hits[0])] if len(hits) else None


@dataclass
class CellTally:
    """Running counts of one cell for the scene readers' ``modes``."""

    modes: tuple[str, ...]
    n: int = 0
    detected: int = 0
    best: int = 0
    applied: int = 0
    found_rectified: int = 0
    chars: int = 0
    exact: dict[str, int] = field(default_factory=dict)
    char_errors: dict[str, int] = field(default_factory=dict)
    exact_box: dict[str, int] = field(default_factory=dict)

    def add(self, label: str, found: dict[str, ScenePlate | None], best: bool, boxed: dict[str, ScenePlate]) -> None:
        """Count one sample: the plate each mode found at the right place (None when not found), ``best`` when
        it was the best-scoring detection of the scene, and each mode's read of the true box (``boxed``)."""
        gt = normalise_plate(label)
        self.n += 1
        self.chars += len(gt)
        self.detected += found["off"] is not None
        self.best += best
        rect = found.get("rectified")
        self.found_rectified += rect is not None
        self.applied += bool(rect is not None and rect.rectified is not None and rect.rectified.applied)
        for mode, plate in found.items():
            pred = normalise_plate(plate.read.text) if plate is not None else ""
            self.exact[mode] = self.exact.get(mode, 0) + (pred == gt)
            self.char_errors[mode] = self.char_errors.get(mode, 0) + char_errors(pred, gt)
        for mode, plate in boxed.items():
            self.exact_box[mode] = self.exact_box.get(mode, 0) + (normalise_plate(plate.read.text) == gt)

    def result(self, cell: Cell) -> dict[str, Any]:
        """The cell's figures (rates in 0..1; None for a mode that did not run)."""
        n = max(self.n, 1)
        return {**asdict(cell), "n": self.n, "detected": self.detected / n, "best_is_plate": self.best / n,
                "exact": {m: (self.exact.get(m, 0) / n if m in self.modes else None) for m in MODES},
                "char_accuracy": {m: (1 - self.char_errors.get(m, 0) / max(self.chars, 1) if m in self.modes
                                      else None) for m in MODES},
                "exact_true_box": {m: (self.exact_box.get(m, 0) / n if m in self.modes else None) for m in MODES},
                "rectifier_applied": self.applied / max(self.found_rectified, 1)}


def sweep_samples(rows: list[dict[str, str]], n: int, seed: int) -> list[tuple[np.ndarray, str]]:
    """``n`` crops (seeded choice without replacement while there are enough) with their labels."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(rows), size=n, replace=n > len(rows))
    return [(load_image(rows[i]["path"]), rows[i]["label"]) for i in idx]


SceneMaker = Callable[[np.ndarray, Cell, np.random.Generator], tuple[np.ndarray, np.ndarray]]
"""Poses a plate crop as a cell in a scene: (crop, cell, draws) -> (scene, plate box xyxy)."""


def run_sweep(samples: list[tuple[np.ndarray, str]], cells: list[Cell], make: SceneMaker,
              readers: dict[str, SceneReader], seed: int) -> list[dict[str, Any]]:
    """Every sample in every cell (posed by ``make``), each scene read once per mode end to end and once from the
    plate's true box (the reading crop of its corners' box, as if the detector had found it exactly); returns the
    cells' figures."""
    from tqdm import tqdm

    from pipeline.plates.scene_reader import reading_crop

    out = []
    with tqdm(total=len(cells) * len(samples), desc="angle sweep", mininterval=5.0) as bar:
        for cell in cells:
            tally = CellTally(tuple(readers))
            for i, (plate, label) in enumerate(samples):
                frame, box = make(plate, cell, np.random.default_rng([seed, i]))
                found = {mode: sr.read(frame) for mode, sr in readers.items()}
                matched = {mode: plate_at(plates, box) for mode, plates in found.items()}
                boxed = {mode: sr.read_crops([reading_crop(frame, box)])[0] for mode, sr in readers.items()}
                tally.add(label, matched, matched["off"] is not None and matched["off"] is found["off"][0], boxed)
                bar.update()
            out.append(tally.result(cell))
            logger.info("%s: %s", cell.label(), out[-1]["exact"])
    return out


def _pick(cells: list[dict[str, Any]], **pose: float) -> dict[str, Any] | None:
    return next((c for c in cells if all(c[k] == v for k, v in pose.items())), None)


def _headlines(cells: list[dict[str, Any]], key: str, grid_width: float) -> dict[str, Any]:
    """``key`` figures per mode: frontal (at the grid width), roll 30, yaw 40, min and mean over cells."""
    picks = {"frontal": _pick(cells, roll=0, yaw=0, width=grid_width),
             "roll_30": _pick(cells, roll=30, yaw=0, width=grid_width),
             "yaw_40": _pick(cells, roll=0, yaw=40, width=grid_width)}
    out: dict[str, Any] = {name: (dict(c[key]) if c else None) for name, c in picks.items()}
    for name, fn in (("min", min), ("mean", lambda v: float(np.mean(v)))):
        out[name] = {m: (fn([c[key][m] for c in cells]) if cells and cells[0][key][m] is not None else None)
                     for m in MODES}
    return out


def summarise(cells: list[dict[str, Any]], grid_width: float) -> dict[str, Any]:
    """Headline exact rates per mode (frontal, roll 30, yaw 40, min, mean), the same for reads of the true box
    (``true_box``), and the detection rate's min and mean."""
    return {**_headlines(cells, "exact", grid_width),
            "true_box": _headlines(cells, "exact_true_box", grid_width),
            "detected_min": min((c["detected"] for c in cells), default=None),
            "detected_mean": float(np.mean([c["detected"] for c in cells])) if cells else None}


def _fmt(v: float | None) -> str:
    return "   -" if v is None else f"{v:.2f}"


def print_sweep(cells: list[dict[str, Any]], sweeps: dict[str, list[int]]) -> None:
    """The per-cell table and the roll x yaw grid (exact with / without the rectifier)."""
    print(f"{'cell':<24}{'n':>5}{'exact_rect':>12}{'exact_off':>11}{'gain':>7}{'detected':>10}{'warped':>8}"
          f"{'box_rect':>10}{'box_off':>9}")
    for c in cells:
        cell = Cell(c["roll"], c["yaw"], c["pitch"], c["width"])
        rect, off = c["exact"]["rectified"], c["exact"]["off"]
        gain = None if rect is None else rect - off
        print(f"{cell.label():<24}{c['n']:>5}{_fmt(rect):>12}{_fmt(off):>11}{_fmt(gain):>7}{_fmt(c['detected']):>10}"
              f"{_fmt(c['rectifier_applied']):>8}{_fmt(c['exact_true_box']['rectified']):>10}"
              f"{_fmt(c['exact_true_box']['off']):>9}")
    grid = [cells[i] for i in sweeps.get("grid", [])]
    yaws = sorted({c["yaw"] for c in grid})
    if len(grid) > 1:
        print(f"\nexact rectified / off, rows roll, columns yaw (width {grid[0]['width']:g})")
        print(f"{'':>6}" + "".join(f"{y:>12g}" for y in yaws))
        for roll in sorted({c["roll"] for c in grid}):
            row = [_pick(grid, roll=roll, yaw=y) for y in yaws]
            print(f"{roll:>6g}" + "".join(f"{_fmt(c['exact']['rectified'])}/{_fmt(c['exact']['off'])}".rjust(12)
                                           for c in row))


def plot_sweep(cells: list[dict[str, Any]], sweeps: dict[str, list[int]], out: Path, title: str = "") -> None:
    """Three panels, exact reads against roll, yaw and width: a line per mode end to end (solid), from the true
    box (dashed, faint); the detection rate dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, axis in zip(axes, ("roll", "yaw", "width"), strict=True):
        pts = sorted((cells[i] for i in sweeps.get(axis, [])), key=lambda c: c[axis])
        xs = [c[axis] for c in pts]
        for mode, colour, marker in (("rectified", "C0", "o"), ("off", "C3", "s")):
            if pts and pts[0]["exact"][mode] is not None:
                name = "with rectifier" if mode == "rectified" else "without rectifier"
                ax.plot(xs, [c["exact"][mode] for c in pts], marker + "-", color=colour, label=f"{name}, end to end")
                ax.plot(xs, [c["exact_true_box"][mode] for c in pts], marker + "--", color=colour, alpha=0.45,
                        markersize=3, linewidth=1, label=f"{name}, from the true box")
        ax.plot(xs, [c["detected"] for c in pts], ":", color="grey", label="plate detected")
        ax.set_xlabel(f"{axis} ({'px' if axis == 'width' else 'degrees'})")
        if axis == "width":
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of plates read exactly")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _videos(paths: list[Path]) -> list[Path]:
    """Video files: the given files and the ``*.mp4`` of the given folders."""
    out: list[Path] = []
    for p in paths:
        out += sorted(p.glob("*.mp4")) if p.is_dir() else [p]
    return out


def labelled_plates(image_dirs: list[Path]) -> dict[Path, list[list[float]]]:
    """Plate boxes (x, y, w, h) per image from a ``labels.csv`` with box columns in or above each folder."""
    boxes: dict[Path, list[list[float]]] = {}
    for d in image_dirs:
        for labels in (d / "labels.csv", d.parent / "labels.csv"):
            if not labels.is_file():
                continue
            with labels.open(newline="", encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    if all(row.get(k) for k in ("x", "y", "w", "h")):
                        path = (labels.parent / row["relative_path"]).resolve()
                        boxes.setdefault(path, []).append([float(row[k]) for k in ("x", "y", "w", "h")])
            break
    return boxes


def read_scaled(path: Path, max_side: int) -> tuple[np.ndarray | None, float]:
    """The image at ``path`` shrunk (area averaging) to at most ``max_side`` pixels, and the scale applied; None
    when it cannot be read."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return None, 1.0
    s = min(1.0, max_side / max(img.shape[:2]))
    if s < 1:
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return img, s


def hide_plates(img: np.ndarray, boxes: list[list[float]], grow: float = 0.25) -> np.ndarray:
    """``img`` with the given plate boxes (grown by ``grow`` of their size) painted over from their surroundings,
    so that a warped plate is never put on top of, or next to, a real one the detector would merge it with."""
    mask = np.zeros(img.shape[:2], np.uint8)
    for x, y, w, h in boxes:
        cv2.rectangle(mask, (int(x - grow * w), int(y - grow * h)), (int(x + (1 + grow) * w), int(y + (1 + grow) * h)),
                      255, -1)
    return cv2.inpaint(img, mask, 5, cv2.INPAINT_TELEA)


def load_backgrounds(videos: list[Path], image_dirs: list[Path], frames_per_video: int = 40,
                     keep_plates: bool = False, max_images: int = 400, max_side: int = 960) -> Backgrounds:
    """:class:`pipeline.plates.warps.Backgrounds` of the videos' frames and the folders' images; the labelled
    plates of the images are painted over unless ``keep_plates``."""
    from pipeline.plates.warps import IMAGE_SUFFIXES, Backgrounds

    if keep_plates:
        return Backgrounds.from_paths(videos, image_dirs, frames_per_video, max_images, max_side)
    images = Backgrounds.from_paths(videos, [], frames_per_video, max_side=max_side).images if videos else []
    boxes = labelled_plates(image_dirs)
    files = sorted(p for d in image_dirs for p in Path(d).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    hidden = 0
    for path in files[::max(1, len(files) // max_images)]:
        img, s = read_scaled(path, max_side)
        if img is None:
            continue
        if path.resolve() in boxes:
            img = hide_plates(img, [[v * s for v in b] for b in boxes[path.resolve()]])
            hidden += 1
        images.append(img)
    logger.info("backgrounds: %d images, labelled plates painted over in %d", len(images), hidden)
    return Backgrounds(images)


def scene_maker(args: argparse.Namespace) -> SceneMaker:
    """The sweep's scenes: on the labelled car photos of ``--backgrounds`` (``--on-cars``), else in patches of
    the videos' frames and the folders' images."""
    if args.on_cars:
        photos = load_car_photos(args.backgrounds)
        return lambda plate, cell, rng: make_car_scene(plate, photos, cell, rng, args.noise)
    backgrounds = load_backgrounds(_videos(args.videos), args.backgrounds, args.video_frames, args.keep_plates)
    return lambda plate, cell, rng: make_scene(plate, backgrounds, cell, rng, args.noise)


def main_sweep(args: argparse.Namespace, rows: list[dict[str, str]], reader: PlateReader) -> dict[str, Any]:
    """The angle sweep: returns the JSON document (also printed, written and plotted)."""
    from pipeline.plates.rectifier import load_plate_rectifier

    rectifier = None if args.no_rectify else load_plate_rectifier(args.rectifier_dir, args.device)
    _, readers = build_scene_readers(reader, rectifier, args.device, not args.no_second_read,
                                     args.runtime, args.detector_upscale, args.engine_set, not args.no_regrow)
    make = scene_maker(args)
    cells, sweeps = sweep_cells(_floats(args.rolls), _floats(args.yaws), _floats(args.widths), args.grid_width,
                                args.pitch)
    samples = sweep_samples(rows, args.sweep_n, args.seed)
    if args.restyle:
        from pipeline.plates.collage import restyle

        samples = [(restyle(img, args.restyle, np.random.default_rng([args.seed, k])), label)
                   for k, (img, label) in enumerate(samples)]
    results = run_sweep(samples, cells, make, readers, args.seed)
    doc = {"labels": str(args.labels), "n_per_cell": len(samples), "seed": args.seed, "pitch": args.pitch,
           "restyle": args.restyle, "on_cars": args.on_cars,
           "grid_width": args.grid_width, "noise": args.noise, "backend": args.backend, "regrow": not args.no_regrow,
           "modes": list(readers), "cells": results, "sweeps": sweeps,
           "summary": summarise(results, args.grid_width)}
    print_sweep(results, sweeps)
    print("\nsummary: " + json.dumps(doc["summary"]))
    plot = args.plot or (args.json.with_suffix(".png") if args.json else DEFAULT_PLOT)
    plot_sweep(results, sweeps, plot, f"{args.labels.name}: {len(samples)} plates per cell, pitch {args.pitch:g}"
               + (", posed on real car photos" if args.on_cars else ""))
    print(f"plot: {plot}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
    return doc


# --- command line ------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The command line's options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--json", type=Path, default=None, help="write the metrics as JSON")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--scenes", action="store_true", help="images are whole scenes: run the detector cascade")
    mode.add_argument("--sweep", action="store_true", help="angle sweep of warped crops read end to end")
    ap.add_argument("--backend", default="crnn", choices=["crnn", "easyocr"])
    ap.add_argument("--model-dir", type=Path, default=None, help="reader model folder (default: shipped)")
    ap.add_argument("--rectifier-dir", type=Path, default=None, help="rectifier model folder (default: shipped)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runtime", choices=RUNTIMES, default="auto",
                    help="engine.runtime of the cascade's detectors (auto: the fastest measured for this kind of CPU)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--limit", type=int, default=0, help="only the first N rows")
    ap.add_argument("--show", type=int, default=0, help="print N wrong reads (crops and scenes)")
    ap.add_argument("--layout", default="auto", choices=LAYOUT_CHOICES,
                    help="crops: the layout to read them in (auto: both, the better read kept)")
    ap.add_argument("--rectify", action="store_true", help="crops: rectify each crop before reading it")
    ap.add_argument("--doubled", action="store_true",
                    help="crops: read only the crops whose two-letter series can be doubled, doubled (XY -> XX or YY)")
    ap.add_argument("--edge-cut", type=float, default=None, metavar="KEEP",
                    help="crops: read the crops cut through their first or last character (every other crop each "
                         "way), KEEP (0-1] of its width left, as at a frame edge")
    ap.add_argument("--restyle", choices=RESTYLES, default=None,
                    help="crops/sweep: every crop redrawn as a red dealer or a graphic (vanity) plate, its own "
                         "characters and light kept")
    ap.add_argument("--shrink", type=int, default=None, metavar="PX",
                    help="crops: every crop shrunk to PX pixels wide first (plates as small as road cameras see them)")
    ap.add_argument("--reading-pad", action="store_true",
                    help="crops: grow each crop by the engine's reading pad (border replicated) before reading")
    ap.add_argument("--no-rectify", action="store_true", help="scenes/sweep: no rectifier (sweep: 'off' only)")
    ap.add_argument("--no-second-read", action="store_true",
                    help="rectified plates: no second read of uncertain plates from margin views")
    ap.add_argument("--no-regrow", action="store_true",
                    help="scenes/sweep: plates the rectifier finds cut by their box are not grown and read again")
    ap.add_argument("--detector-upscale", action="store_true",
                    help="scenes/sweep: engine.detector_upscale on (scenes smaller than 640 px enlarged for the "
                         "vehicle detector)")
    add_engine_set(ap, "scenes/sweep: an engine: setting of the cascade's models, e.g. plate_canvas=square; "
                       "repeatable")
    sweep = ap.add_argument_group("angle sweep")
    sweep.add_argument("--sweep-n", type=int, default=60, help="plates per cell")
    sweep.add_argument("--rolls", default="0,10,20,30,40", help="roll angles (degrees), comma list")
    sweep.add_argument("--yaws", default="0,20,40,60", help="yaw angles (degrees), comma list")
    sweep.add_argument("--widths", default="40,80,160,320", help="plate widths (px) of the frontal width sweep")
    sweep.add_argument("--grid-width", type=float, default=160, help="plate width (px) of the roll/yaw sweeps")
    sweep.add_argument("--pitch", type=float, default=0.0, help="pitch of every cell (degrees; 10 = camera above)")
    sweep.add_argument("--noise", type=float, default=0.0, help="photometric noise strength (0 = none)")
    sweep.add_argument("--seed", type=int, default=0)
    sweep.add_argument("--videos", type=Path, nargs="*", default=DEFAULT_VIDEOS, help="background videos or folders")
    sweep.add_argument("--video-frames", type=int, default=40, help="background frames taken from each video")
    sweep.add_argument("--backgrounds", type=Path, nargs="*", default=DEFAULT_BACKGROUNDS,
                       help="folders of background images")
    sweep.add_argument("--on-cars", action="store_true",
                       help="pose each plate where the labelled plate of a car photo of --backgrounds was (the "
                            "photo scaled to the cell's width, a frame of at most 1280 x 720 around it), instead "
                            "of floating it in a background patch")
    sweep.add_argument("--keep-plates", action="store_true",
                       help="keep the labelled plates of the background images (default: painted over)")
    sweep.add_argument("--plot", type=Path, default=None, help="PNG of the sweep (default: next to --json)")
    return ap


def print_metrics(res: dict[str, Any]) -> None:
    """The flat metrics as a two-column table."""
    print(f"{'metric':<20}{'value':>12}")
    for k, v in res.items():
        print(f"{k:<20}{v:>12.4f}" if isinstance(v, float) else f"{k:<20}{v!s:>12}")


def show_wrong(rows: list[dict[str, str]], reads: list[PlateRead], limit: int) -> None:
    """Print up to ``limit`` wrong reads."""
    wrong = [(row, rd) for row, rd in zip(rows, reads, strict=True)
             if normalise_plate(rd.text) != normalise_plate(row["label"])]
    for row, rd in wrong[:limit]:
        print(f"  {row['relative_path']}: gt {row['label']} {row.get('province', '')} -> {rd.text} "
              f"{rd.province} ({rd.confidence:.2f}, {rd.layout}) {rd.candidates[:3]}")


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.engine_set = engine_settings(parser, args.engine_set)
    logging.basicConfig(level=logging.WARNING)
    rows = read_rows(args.labels)
    if args.limit:
        rows = rows[: args.limit]
    reader = load_plate_reader(args.backend, args.model_dir, args.device)
    if args.sweep:
        main_sweep(args, rows, reader)
        return
    from pipeline.plates.rectifier import load_plate_rectifier

    extra: dict[str, Any] = {}
    if args.scenes:
        rectifier = None if args.no_rectify else load_plate_rectifier(args.rectifier_dir, args.device)
        cascade, readers = build_scene_readers(reader, rectifier, args.device, not args.no_second_read,
                                               args.runtime, args.detector_upscale, args.engine_set,
                                               not args.no_regrow)
        scene_reader = readers["off" if rectifier is None else "rectified"]
        reads, ms_plate, ms_image, n_plates = run_scenes(rows, scene_reader, cascade)
        extra = {"ms_per_image": ms_image, "plates_detected": n_plates, "rectified": rectifier is not None,
                 "regrow": rectifier is not None and not args.no_regrow}
    else:
        if args.shrink is not None and args.shrink < 8:
            raise SystemExit(f"--shrink: PX must be at least 8, got {args.shrink}")
        if args.doubled:
            rows = doubled_rows(rows)
            extra["doubled"] = True
        if args.restyle:
            rows = restyled_rows(rows, args.restyle, args.seed)
            extra["restyle"] = args.restyle
        if args.shrink:
            rows = shrunk_rows(rows, args.shrink)
            extra["shrink"] = args.shrink
        pad = args.reading_pad
        if args.edge_cut is not None:
            if not 0.0 < args.edge_cut <= 1.0:
                raise SystemExit(f"--edge-cut: KEEP must be in (0, 1], got {args.edge_cut}")
            rows = edge_cut_rows(rows, args.edge_cut, pad)
            pad = False  # edge_cut_rows padded every side but the cut one
            extra["edge_cut"] = args.edge_cut
        rectifier = load_plate_rectifier(args.rectifier_dir, args.device) if args.rectify else None
        reads, ms_plate, rectified = run_crops(rows, reader, args.batch, args.layout, rectifier, pad,
                                               not args.no_second_read)
        extra |= {"layout": args.layout, "rectified": args.rectify, "reading_pad": args.reading_pad}
        if args.rectify:
            extra["rectified_share"] = sum(r.applied for r in rectified) / max(len(rows), 1)
            extra.update(layout_counts([r.layout for r in rectified], "rectifier_", ("car", "motorcycle", "auto")))
        if args.rectify or args.layout == "auto":
            extra.update(layout_counts([rd.layout for rd in reads]))
    if args.scenes and not args.no_rectify or args.rectify:
        extra["second_read"] = not args.no_second_read
    res: dict[str, Any] = {**score(rows, reads), "ms_per_plate": ms_plate, **extra,
                           "backend": args.backend, "scenes": args.scenes}
    print_metrics(res)
    if args.show:
        show_wrong(rows, reads, args.show)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        clean = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in res.items()}
        args.json.write_text(json.dumps(clean, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
