"""Train the plate rectifier (corners + layout, :mod:`pipeline.plates.rectifier_net`) on synthetic warps and
export it to ONNX.

One command, fixed seeds, CPU-friendly::

    python -m pipeline.plates.train_rectifier --cars ../shared/data/plates_thai/labels.csv \
        --motos ../shared/data/plates_thai_moto/labels.csv --videos ../shared/data/videos \
        --backgrounds ../shared/data/plates_openalpr_us/images ../shared/data/plates_openalpr_eu/images \
        --out models/plate_rectifier

Upright plates (real car crops and motorcycle crops of the plate-disjoint *training* split, plus rendered plates
with ``--rendered``) are turned by random homographies (roll up to 40, yaw up to 50, pitch up to 35 degrees; half
near frontal), 30-600 px wide, framed or not, composited into real backgrounds and cut out like a detector box
(:mod:`pipeline.plates.warps`), with blur, noise, low light and JPEG. The corners and layout of every sample are
known. A validation set is made the same way from the held-out plates. Writes ``plate_rectifier.onnx``,
``plate_rectifier.json`` and ``train_report.json`` (mean corner error in % of the plate width, layout accuracy).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pipeline.plates.dataset import PlateSample, plate_disjoint_split, read_labels
from pipeline.plates.geometry import quad_size
from pipeline.plates.layout import CAR, LAYOUTS, MOTORCYCLE
from pipeline.plates.rectifier_net import RECT_INPUT, RectifierNet
from pipeline.plates.warps import Backgrounds, random_pose, warped_plate

logger = logging.getLogger(__name__)

CAR_HW = (96, 192)
MOTO_HW = (112, 128)


def _load(samples: list[PlateSample], hw: tuple[int, int]) -> list[np.ndarray]:
    out = []
    for s in samples:
        img = cv2.imread(str(s.path), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read image {s.path}")
        out.append(cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_AREA))
    return out


def _split(labels: Path, fraction: float, seed: int) -> tuple[list[PlateSample], list[PlateSample]]:
    samples = read_labels(labels)
    tr, va = plate_disjoint_split(samples, fraction, seed)
    return [samples[i] for i in tr], [samples[i] for i in va]


def make_set(plates: dict[str, list[np.ndarray]], backgrounds: Backgrounds, n: int, moto_share: float,
             seed: int, desc: str, cut: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` warped samples: images ``[n, 96, 96, 3]``, corners ``[n, 8]`` (fractions of the crop), layout ids and
    the plate width in crop pixels of each sample's corners (for error in % of the plate width)."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, RECT_INPUT, RECT_INPUT, 3), np.uint8)
    corners = np.empty((n, 8), np.float32)
    layouts = np.empty(n, np.int64)
    widths = np.empty(n, np.float32)
    for k in tqdm(range(n), desc=desc, mininterval=5.0):
        layout = MOTORCYCLE if plates[MOTORCYCLE] and rng.random() < moto_share else CAR
        pool = plates[layout]
        plate = pool[int(rng.integers(len(pool)))]
        roll, yaw, pitch = random_pose(rng)
        width = float(math.exp(rng.uniform(math.log(30), math.log(600))))
        s = warped_plate(plate, layout, backgrounds, rng, width, roll, yaw, pitch, max_side=2 * RECT_INPUT,
                         cut=cut)
        h, w = s.crop.shape[:2]
        images[k] = cv2.resize(s.crop, (RECT_INPUT, RECT_INPUT),
                               interpolation=cv2.INTER_AREA if max(h, w) > RECT_INPUT else cv2.INTER_LINEAR)
        corners[k] = (s.corners / np.float32([w, h])).reshape(-1)
        layouts[k] = LAYOUTS.index(layout)
        widths[k] = quad_size(s.corners)[0] / max(w, 1)
    return images, corners, layouts, widths


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float()


@torch.no_grad()
def evaluate(model: RectifierNet, data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> dict[str, float]:
    """Mean and 95th-percentile corner error (in % of the plate's width) and layout accuracy."""
    images, corners, layouts, widths = data
    model.eval()
    preds, probs = [], []
    for i in range(0, len(images), 256):
        c, p = model(_tensor(images[i:i + 256]))
        preds.append(c.numpy())
        probs.append(p.numpy())
    pred = np.concatenate(preds).reshape(-1, 4, 2)
    err = np.linalg.norm(pred - corners.reshape(-1, 4, 2), axis=2).mean(1) / np.maximum(widths, 1e-3)
    acc = float((np.concatenate(probs).argmax(1) == layouts).mean())
    return {"corner_error_pct": float(err.mean() * 100), "corner_error_p95_pct": float(np.percentile(err, 95) * 100),
            "layout_accuracy": acc}


def export_onnx(model: RectifierNet, out: Path) -> None:
    """``image`` [B,3,96,96] 0..255 BGR -> ``corners`` [B,8], ``layout_probs`` [B,2]; plus the side-car JSON."""
    import copy

    model = copy.deepcopy(model).eval().float()
    out.mkdir(parents=True, exist_ok=True)
    dummy = torch.rand(2, 3, RECT_INPUT, RECT_INPUT) * 255
    torch.onnx.export(model, (dummy,), str(out / "plate_rectifier.onnx"), input_names=["image"],
                      output_names=["corners", "layout_probs"],
                      dynamic_axes={"image": {0: "batch"}, "corners": {0: "batch"}, "layout_probs": {0: "batch"}},
                      opset_version=17, dynamo=False)
    meta = {"onnx": "plate_rectifier.onnx", "input": {"height": RECT_INPUT, "width": RECT_INPUT, "channels": "BGR",
            "range": "0..255"}, "corners": "TL,TR,BR,BL as x,y fractions of the crop", "layouts": list(LAYOUTS)}
    (out / "plate_rectifier.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cars", type=Path, required=True, help="labels.csv of upright car plate crops")
    ap.add_argument("--motos", type=Path, default=None, help="labels.csv of upright motorcycle plate crops")
    ap.add_argument("--videos", type=Path, default=None, help="folder of videos whose frames serve as backgrounds")
    ap.add_argument("--backgrounds", type=Path, nargs="*", default=[], help="folders of background images")
    ap.add_argument("--rendered", type=int, default=0, help="add this many rendered plates (pipeline.plates.render)")
    ap.add_argument("--out", type=Path, default=Path("models/plate_rectifier"))
    ap.add_argument("--train-samples", type=int, default=30000)
    ap.add_argument("--val-samples", type=int, default=2000)
    ap.add_argument("--moto-share", type=float, default=0.35)
    ap.add_argument("--cut", type=float, default=0.12,
                    help="share of samples whose crop runs through the plate (close-ups leaving the picture)")
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cars_tr, cars_va = _split(args.cars, 0.15, 0)
    motos_tr, motos_va = _split(args.motos, 0.5, 0) if args.motos else ([], [])
    train_plates = {CAR: _load(cars_tr, CAR_HW), MOTORCYCLE: _load(motos_tr, MOTO_HW)}
    val_plates = {CAR: _load(cars_va, CAR_HW), MOTORCYCLE: _load(motos_va, MOTO_HW)}
    if args.rendered:
        from pipeline.plates.render import render_plate

        rng = np.random.default_rng(args.seed + 7)
        for _ in tqdm(range(args.rendered), desc="rendering plates", mininterval=5.0):
            layout = MOTORCYCLE if rng.random() < 0.5 else CAR
            hw = MOTO_HW if layout == MOTORCYCLE else CAR_HW
            img = render_plate(rng, layout).image
            train_plates[layout].append(cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_AREA))
    videos = sorted(args.videos.glob("*.mp4")) if args.videos else []
    backgrounds = Backgrounds.from_paths(videos, args.backgrounds)
    train = make_set(train_plates, backgrounds, args.train_samples, args.moto_share, args.seed, "train warps",
                     args.cut)
    val = make_set(val_plates, backgrounds, args.val_samples, args.moto_share, args.seed + 1, "val warps", args.cut)
    model = RectifierNet()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * math.ceil(args.train_samples / args.batch)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up, then cosine decay to 1 %
        opt, lambda k: min(1.0, (k + 1) / warm) * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, k / steps)))))
    ce = nn.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed)
    history = []
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(args.train_samples)
        bar = tqdm(range(0, args.train_samples, args.batch), desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=5.0)
        for b in bar:
            idx = order[b:b + args.batch]
            if len(idx) < 2:
                continue
            corners, logits = model.forward_raw(_tensor(train[0][idx]))
            target = torch.from_numpy(train[1][idx])
            scale = torch.from_numpy(np.maximum(train[3][idx], 0.05))[:, None]  # error relative to plate width
            loss = nn.functional.smooth_l1_loss(corners / scale, target / scale, beta=0.02)
            loss = loss + 0.2 * ce(logits, torch.from_numpy(train[2][idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        metrics = evaluate(model, val)
        history.append({"epoch": epoch + 1, "minutes": (time.time() - start) / 60, **metrics})
        logger.info("epoch %d: %s", epoch + 1, metrics)
    export_onnx(model, args.out)
    report = {"history": history, "n_train": args.train_samples, "n_val": args.val_samples,
              "train_plates": {k: len(v) for k, v in train_plates.items()},
              "val_plates": {k: len(v) for k, v in val_plates.items()},
              "args": {k: str(v) for k, v in vars(args).items()}}
    (args.out / "train_report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    logger.info("exported %s", args.out / "plate_rectifier.onnx")


if __name__ == "__main__":
    main()
