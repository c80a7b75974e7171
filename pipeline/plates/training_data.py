"""What the plate reader trains on besides the real car crops: real motorcycle crops, rendered plates, cut plates.

Each training batch draws most of its samples from the real car crops and the rest (``extra_share``) from an
*extra pool*: the real motorcycle crops of the training split (re-laid into the car form,
:mod:`pipeline.plates.layout`) and synthetic plates rendered with Thai fonts (:mod:`pipeline.plates.render`:
every consonant equally often, doubled series letters such as ``ผผ``, red dealer, green pickup and graphic
plates, motorcycle plates). A share of the car samples (``cut_share``) loses its province line (cut at 55-72 %
of the height, as a plate cut by the frame edge or a close-up) and is labelled :data:`NO_PROVINCE`, so that the
province head answers "no province" instead of inventing one.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.plates.augment import LOW_RES, augment, geometric, photometric
from pipeline.plates.dataset import PlateSample, encode_label, load_images, read_crop
from pipeline.plates.layout import car_to_motorcycle_form, motorcycle_to_car_form
from pipeline.plates.provinces import PROVINCES

logger = logging.getLogger(__name__)

NO_PROVINCE = len(PROVINCES)  # extra province class: the province line is cut off or unreadable
MOTO_PRELOAD_HW = (112, 128)  # canonical motorcycle crops (three lines), re-laid into the car form per sample
PSEUDO_MOTO_LABEL = re.compile(r"[0-9][ก-ฮ]{2}[0-9]{3,4}")  # car plates whose characters also form a motorcycle plate


@dataclass
class Pool:
    """Images of one kind with their CTC targets and province ids."""

    images: np.ndarray
    targets: list[list[int]]
    provinces: np.ndarray
    motorcycle: bool

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class ExtraPools:
    """The pools an extra sample is drawn from, with their weights."""

    pools: list[Pool] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)

    def add(self, pool: Pool, weight: float) -> None:
        """Draw from ``pool`` with relative ``weight`` (empty pools and zero weights are skipped)."""
        if len(pool) and weight > 0:
            self.pools.append(pool)
            self.weights.append(weight)

    def draw(self, rng: np.random.Generator) -> tuple[Pool, int]:
        p = np.asarray(self.weights, np.float64)
        pool = self.pools[int(rng.choice(len(self.pools), p=p / p.sum()))]
        return pool, int(rng.integers(len(pool)))


def real_pool(samples: list[PlateSample], motorcycle: bool, car_hw: tuple[int, int]) -> Pool:
    """Real crops preloaded at the car or motorcycle preload size."""
    images = load_images(samples, MOTO_PRELOAD_HW if motorcycle else car_hw)
    return Pool(images, [encode_label(s.label) for s in samples], np.array([s.province for s in samples]),
                motorcycle)


def rendered_pools(n: int, seed: int, moto_share: float, car_hw: tuple[int, int]) -> tuple[Pool, Pool]:
    """``n`` rendered plates as a car pool and a motorcycle pool (progress bar; a few ms per plate)."""
    from pipeline.plates.render import render_plate

    rng = np.random.default_rng(seed)
    cars: list[tuple[np.ndarray, str, int]] = []
    motos: list[tuple[np.ndarray, str, int]] = []
    for _ in tqdm(range(n), desc="rendering plates", mininterval=5.0):
        moto = rng.random() < moto_share
        plate = render_plate(rng, "motorcycle" if moto else "car")
        h, w = MOTO_PRELOAD_HW if moto else car_hw
        img = cv2.resize(plate.image, (w, h), interpolation=cv2.INTER_AREA)
        (motos if moto else cars).append((img, plate.label, plate.province))

    return _pool(cars, False, car_hw), _pool(motos, True, car_hw)


def pseudo_moto_pool(samples: list[PlateSample], car_hw: tuple[int, int]) -> Pool:
    """Real car crops whose series has three characters, re-laid as motorcycle plates
    (:func:`pipeline.plates.layout.car_to_motorcycle_form`): the real plate font in the motorcycle layout."""
    items: list[tuple[np.ndarray, str, int]] = []
    for sample in tqdm(samples, desc="pseudo-motorcycle plates", unit="crop", mininterval=2.0):
        if not PSEUDO_MOTO_LABEL.fullmatch(sample.label):
            continue
        img = cv2.imread(str(sample.path))
        moto = car_to_motorcycle_form(img, len(sample.label) - 3, MOTO_PRELOAD_HW) if img is not None else None
        if moto is not None:
            items.append((moto, sample.label, sample.province))
    logger.info("pseudo-motorcycle plates: %d of %d car crops", len(items), len(samples))
    return _pool(items, True, car_hw)


def collage_pool(samples: list[PlateSample], n: int, seed: int, car_hw: tuple[int, int]) -> Pool:
    """``n`` motorcycle plates collaged from the real characters of ``samples`` (training car crops only;
    :mod:`pipeline.plates.collage`): the plate typeface in the three-line layout, any series."""
    from pipeline.plates.collage import build_bank, collage_motorcycle

    bank = build_bank(samples)
    rng = np.random.default_rng(seed)
    h, w = MOTO_PRELOAD_HW
    items = []
    for _ in tqdm(range(n), desc="collaging motorcycle plates", mininterval=5.0):
        img, label, province = collage_motorcycle(bank, rng)
        items.append((cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA), label, province))
    return _pool(items, True, car_hw)


def series_swap_pool(samples: list[PlateSample], per_crop: int, seed: int, car_hw: tuple[int, int],
                     car_samples: list[PlateSample] | None = None) -> Pool:
    """Real motorcycle crops of ``samples`` (training split only) with their series letters replaced by other real
    motorcycle series letters (:func:`pipeline.plates.collage.swap_series`), ``per_crop`` variants of each crop
    whose series line splits: the motorcycle typeface with every series, three-consonant ones included. With
    ``car_samples`` (training car crops), consonants no motorcycle series shows are taken from the car crops'
    registration lines (:func:`pipeline.plates.collage.build_bank`)."""
    from pipeline.plates.collage import build_bank, motorcycle_series_glyphs, swap_series
    from pipeline.plates.grammar import THAI_CONSONANTS

    rng = np.random.default_rng(seed)
    crops = [(read_crop(s), s) for s in samples]
    glyphs: dict[str, list[np.ndarray]] = {}
    for img, s in crops:
        for ch, images in motorcycle_series_glyphs(img, s.label).items():
            glyphs.setdefault(ch, []).extend(images)
    if car_samples:
        car_glyphs = build_bank(car_samples).glyphs
        for ch in THAI_CONSONANTS:
            if ch not in glyphs and car_glyphs.get(ch):
                glyphs[ch] = car_glyphs[ch]
    h, w = MOTO_PRELOAD_HW
    items = []
    for img, s in crops:
        for _ in range(per_crop):
            made = swap_series(img, s.label, glyphs, rng)
            if made is None:
                break
            items.append((cv2.resize(made[0], (w, h), interpolation=cv2.INTER_AREA), made[1], s.province))
    logger.info("series swaps: %d motorcycle plates from %d training crops, %d consonants in the glyph bank",
                len(items), len(samples), len(glyphs))
    return _pool(items, True, car_hw)


def doubled_pool(samples: list[PlateSample], car_hw: tuple[int, int]) -> Pool:
    """Real car crops of ``samples`` (training split only) whose series ``XY`` is made the doubled ``XX`` and
    ``YY`` (:func:`pipeline.plates.collage.doubled_series`): the real crops hold few doubled series besides ``กก``
    and ``ขข``, and the reader read a doubled letter once (``ผผ9959`` -> ``ผ9959``)."""
    from pipeline.plates.collage import doubled_series

    h, w = car_hw
    items = []
    for s in tqdm(samples, desc="doubling series letters", mininterval=5.0):
        img = read_crop(s)
        for first in (True, False):
            made = doubled_series(img, s.label, first)
            if made is not None:
                items.append((cv2.resize(made[0], (w, h), interpolation=cv2.INTER_AREA), made[1], s.province))
    logger.info("doubled series: %d plates from %d training crops", len(items), len(samples))
    return _pool(items, False, car_hw)


def edge_cut_pool(samples: list[PlateSample], car_hw: tuple[int, int], seed: int,
                  keep: tuple[float, float] = (0.5, 0.95)) -> Pool:
    """Real car crops of ``samples`` (training split only) cut through their first or last character, a share
    ``keep`` of its width left (:func:`pipeline.plates.collage.edge_cut`), labels whole: plates running out of
    the picture at a frame edge, or a detector box that stops inside the first letter (the scene photo whose
    half-cut first ``ข`` of ``ขข8241`` was read ``ข8241``). One cut per crop that splits into its characters,
    left or right at random."""
    from pipeline.plates.collage import edge_cut

    rng = np.random.default_rng(seed)
    h, w = car_hw
    items = []
    for s in tqdm(samples, desc="cutting plate edges", mininterval=5.0):
        img = read_crop(s)
        side = "left" if rng.random() < 0.5 else "right"
        made = edge_cut(img, s.label, float(rng.uniform(*keep)), side)
        if made is not None:
            items.append((cv2.resize(made, (w, h), interpolation=cv2.INTER_AREA), s.label, s.province))
    logger.info("edge-cut plates: %d from %d training crops", len(items), len(samples))
    return _pool(items, False, car_hw)


def cut_province(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The registration line only: the crop cut at 55-72 % of its height, stretched back to its size."""
    h, w = img.shape[:2]
    keep = img[: max(2, int(h * rng.uniform(0.55, 0.72)))]
    return cv2.resize(keep, (w, h), interpolation=cv2.INTER_LINEAR)


def make_sample(img: np.ndarray, motorcycle: bool, out_hw: tuple[int, int], rng: np.random.Generator,
                strength: float, low_res: tuple[float, float] = LOW_RES) -> np.ndarray:
    """One augmented training image in the car form (motorcycle crops: jitter, re-lay, then photometry;
    ``low_res``: the low-resolution step's scale range, :data:`pipeline.plates.augment.LOW_RES`)."""
    if motorcycle:
        return photometric(motorcycle_to_car_form(geometric(img, img.shape[:2], rng), out_hw), rng, strength,
                           low_res)
    return augment(img, out_hw, rng, strength, low_res)


def motorcycle_validation_images(pool: Pool, out_hw: tuple[int, int]) -> np.ndarray:
    """Validation motorcycle crops re-laid into the car form (no augmentation)."""
    return np.stack([motorcycle_to_car_form(im, out_hw) for im in pool.images]) if len(pool) else \
        np.empty((0, *out_hw, 3), np.uint8)


def rectified_pools(car: list[PlateSample], moto: list[PlateSample], rectifier_dir: Path, n: int, seed: int,
                    car_hw: tuple[int, int], videos: list[Path], backgrounds: list[Path]) -> tuple[Pool, Pool]:
    """``n`` training plates turned in 3-D into real backgrounds (:mod:`pipeline.plates.warps`), cut out like a
    detector box and put upright again by the trained rectifier: what the reader sees behind the rectifier,
    residual corner errors included. Split into a car pool and a motorcycle pool by the layout the rectifier
    found (a wrong layout guess keeps the true label: the reader learns to read what it will be given)."""
    from pipeline.plates.rectifier import PlateRectifier
    from pipeline.plates.warps import Backgrounds, random_pose, warped_plate

    rng = np.random.default_rng(seed)
    rectifier = PlateRectifier(rectifier_dir, device="cpu")
    bgs = Backgrounds.from_paths(videos, backgrounds)
    sources = [(s, False) for s in car] + [(s, True) for s in moto]
    # a quarter of the warps are motorcycle plates
    weights = np.array([1.0 if not m else len(car) / (3.0 * max(len(moto), 1)) for _, m in sources])
    picks = rng.choice(len(sources), size=n, p=weights / weights.sum())
    crops, labels, provs = [], [], []
    for k in tqdm(picks, desc="warping plates", mininterval=5.0):
        sample, is_moto = sources[int(k)]
        img = read_crop(sample)
        roll, yaw, pitch = random_pose(rng)
        width = float(np.exp(rng.uniform(np.log(60), np.log(400))))
        crops.append(warped_plate(img, "motorcycle" if is_moto else "car", bgs, rng, width, roll, yaw, pitch,
                                  max_side=384).crop)
        labels.append(sample.label)
        provs.append(sample.province)
    cars: list[tuple[np.ndarray, str, int]] = []
    motos: list[tuple[np.ndarray, str, int]] = []
    for i in range(0, len(crops), 256):
        for j, r in enumerate(rectifier.rectify_batch(crops[i:i + 256])):
            moto = r.layout == "motorcycle"
            h, w = MOTO_PRELOAD_HW if moto else car_hw
            img = cv2.resize(r.image, (w, h), interpolation=cv2.INTER_AREA)
            (motos if moto else cars).append((img, labels[i + j], provs[i + j]))
    logger.info("rectified warps: %d read as car plates, %d as motorcycle plates", len(cars), len(motos))
    return _pool(cars, False, car_hw), _pool(motos, True, car_hw)


def _pool(items: list[tuple[np.ndarray, str, int]], motorcycle: bool, car_hw: tuple[int, int]) -> Pool:
    hw = MOTO_PRELOAD_HW if motorcycle else car_hw
    images = np.stack([i for i, _, _ in items]) if items else np.empty((0, *hw, 3), np.uint8)
    return Pool(images, [encode_label(lbl) for _, lbl, _ in items], np.array([p for *_, p in items]), motorcycle)
