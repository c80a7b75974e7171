"""Train the Thai plate reader (CTC registration + province head) and export it to ONNX.

One command, fixed seeds, CPU-friendly::

    python -m pipeline.plates.train --data ../shared/data/plates_thai/labels.csv --out models/plate_reader \
        --epochs 40 --threads 2

It pre-loads every crop once, validates on a split that is disjoint by plate string (``--val-fraction``;
``--val-fraction 0`` trains on everything), keeps an exponential moving average (EMA) of the weights, exports the
best of raw/EMA weights to ``<out>/plate_reader.onnx`` (dynamic batch) with ``<out>/plate_reader.json``
(charset, provinces, input size) and writes ``<out>/train_report.json`` with the validation figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import random
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pipeline.plates.augment import LOW_RES
from pipeline.plates.dataset import PlateSample, encode_label, load_images, plate_disjoint_split, read_labels
from pipeline.plates.grammar import CHARSET
from pipeline.plates.layout import MOTO_BANDS, REGISTRATION_SHARE
from pipeline.plates.net import INPUT_H, INPUT_W, PlateNet, adapt_state_dict
from pipeline.plates.provinces import PROVINCES
from pipeline.plates.training_data import (
    NO_PROVINCE,
    ExtraPools,
    collage_pool,
    cut_province,
    doubled_pool,
    edge_cut_pool,
    make_sample,
    motorcycle_validation_images,
    pseudo_moto_pool,
    real_pool,
    rectified_pools,
    rendered_pools,
    series_swap_pool,
)

logger = logging.getLogger(__name__)

PRELOAD_HW = (72, 144)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _to_tensor(batch: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))).float()


def greedy_decode(char_probs: np.ndarray) -> list[str]:
    """Best-path CTC decoding of ``[B, T, C]`` probabilities (used for quick validation)."""
    out = []
    for seq in char_probs.argmax(-1):
        prev, chars = 0, []
        for k in seq:
            if k != prev and k != 0:
                chars.append(CHARSET[k - 1])
            prev = k
        out.append("".join(chars))
    return out


def parse_input_size(text: str) -> tuple[int, int]:
    """``"64x128"`` -> ``(64, 128)``; the height a multiple of 8, the width of 4, both at least 32."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--input-size: expected HxW such as 64x128, got {text!r}") from None
    if h < 32 or w < 32 or h % 8 or w % 4:
        raise SystemExit(f"--input-size {text}: the height must be a multiple of 8 and the width of 4, both >= 32")
    return h, w


def checkpoint_input_size(state: dict[str, torch.Tensor]) -> tuple[int, int]:
    """The input (height, width) a :class:`PlateNet` checkpoint was trained at: its time-step convolution reads
    H/8 rows; the width is twice the height (the plate's 2:1)."""
    height = 8 * int(state["seq_in.0.weight"].shape[2])
    return height, 2 * height


def exported_input_size(model_dir: Path) -> tuple[int, int]:
    """The input (height, width) an exported reader's side-car JSON states."""
    meta = json.loads((Path(model_dir) / "plate_reader.json").read_text(encoding="utf-8"))
    return int(meta["input"]["height"]), int(meta["input"]["width"])


@torch.no_grad()
def evaluate(model: nn.Module, images: np.ndarray, labels: list[str], provinces: list[int],
             batch: int = 256, input_hw: tuple[int, int] = (INPUT_H, INPUT_W)) -> dict[str, float]:
    """Exact match (greedy), character accuracy and province accuracy of ``model`` on center-resized crops."""
    from pipeline.plates.provinces import levenshtein

    model.eval()
    texts: list[str] = []
    prov_pred: list[int] = []
    for i in range(0, len(images), batch):
        chunk = np.stack([im if im.shape[:2] == input_hw else
                          cv2.resize(im, input_hw[::-1], interpolation=cv2.INTER_AREA)
                          for im in images[i:i + batch]])
        cp, pp = model(_to_tensor(chunk))
        texts += greedy_decode(cp.numpy())
        prov_pred += pp.argmax(-1).tolist()
    exact = float(np.mean([t == g for t, g in zip(texts, labels, strict=True)]))
    n_chars = sum(len(g) for g in labels)
    errs = sum(levenshtein(t, g) for t, g in zip(texts, labels, strict=True))
    with_prov = [(p, g) for p, g in zip(prov_pred, provinces, strict=True) if g >= 0 and g != NO_PROVINCE]
    prov_acc = float(np.mean([p == g for p, g in with_prov])) if with_prov else float("nan")
    return {"exact": exact, "char_accuracy": 1.0 - errs / max(n_chars, 1), "province_accuracy": prov_acc}


class EMA:
    """Exponential moving average of all floating-point parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval()
        self.decay = decay
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        src = model.state_dict()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(src[k].detach(), alpha=1 - d)
            else:
                v.copy_(src[k])


def export_onnx(model: PlateNet, path: Path, input_hw: tuple[int, int] = (INPUT_H, INPUT_W)) -> None:
    """Export with a dynamic batch axis: input ``image`` [B,3,H,W] 0..255 BGR -> char_probs, province_probs."""
    model = copy.deepcopy(model).eval().float()
    dummy = torch.rand(2, 3, *input_hw) * 255
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (dummy,), str(path), input_names=["image"],
                      output_names=["char_probs", "province_probs"],
                      dynamic_axes={"image": {0: "batch"}, "char_probs": {0: "batch"}, "province_probs": {0: "batch"}},
                      opset_version=17, dynamo=False)


def write_meta(out: Path, onnx_name: str, extra: dict[str, object],
               input_hw: tuple[int, int] = (INPUT_H, INPUT_W)) -> None:
    """Write the reader's side-car JSON (charset, provinces, input size)."""
    meta = {
        "onnx": onnx_name,
        "input": {"height": input_hw[0], "width": input_hw[1], "channels": "BGR", "range": "0..255"},
        "charset": CHARSET,
        "blank_index": 0,
        "provinces": [{"thai": p.thai, "latin": p.latin} for p in PROVINCES],
        "no_province_class": NO_PROVINCE,  # the extra class after the provinces: no province line to read
        "layouts": {"car": "as is", "motorcycle": {"bands": MOTO_BANDS, "registration_share": REGISTRATION_SHARE}},
        **extra,
    }
    (out / "plate_reader.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")


def rng_pick(n: int, k: int, seed: int) -> np.ndarray:
    """``min(n, k)`` distinct indices below ``n`` (seeded)."""
    return np.random.default_rng(seed).permutation(n)[: min(n, k)]


def _check_disjoint(train: list[PlateSample], held: list[PlateSample]) -> None:
    """Refuse a held-out file that shares a plate string with the training rows (the split must stay disjoint)."""
    shared = {s.label for s in train} & {s.label for s in held}
    if shared:
        raise SystemExit(f"--moto-val shares {len(shared)} plate strings with --moto (e.g. {sorted(shared)[:3]}): "
                         "the held-out plates must be disjoint by plate string")


def _extra_pools(args: argparse.Namespace, car_train: list[PlateSample], preload_hw: tuple[int, int] = PRELOAD_HW,
                 input_hw: tuple[int, int] = (INPUT_H, INPUT_W)
                 ) -> tuple[ExtraPools, tuple[np.ndarray, list[str], list[int]] | None]:
    """Motorcycle crops (train part; the held-out part is returned for validation), rendered plates and
    rectified warps of training plates; car-form pools at ``preload_hw``, validation at ``input_hw``."""
    extra = ExtraPools()
    weights = {k: float(v) for k, v in (kv.split("=") for kv in args.pool_weights.split(",") if kv)}
    moto_val = None
    moto_train: list[PlateSample] = []
    if args.moto is not None:
        moto = read_labels(args.moto)
        if args.moto_val is not None:  # an explicit held-out file: every row of --moto trains
            held = read_labels(args.moto_val)
            _check_disjoint(moto, held)
            m_tr, m_va = list(range(len(moto))), list(range(len(moto), len(moto) + len(held)))
            moto = moto + held
        else:
            m_tr, m_va = plate_disjoint_split(moto, args.moto_val_fraction, args.split_seed)
        logger.info("motorcycle crops: %d train / %d val (plate-disjoint)", len(m_tr), len(m_va))
        moto_train = [moto[i] for i in m_tr]
        extra.add(real_pool(moto_train, True, preload_hw), weights.get("real_moto", 0.0))
        if m_va:
            val_pool = real_pool([moto[i] for i in m_va], True, preload_hw)
            moto_val = (motorcycle_validation_images(val_pool, input_hw),
                        [moto[i].label for i in m_va], [moto[i].province for i in m_va])
    if args.swap_series and moto_train:
        extra.add(series_swap_pool(moto_train, args.swap_series, args.seed + 5, preload_hw,
                                   car_train if args.swap_car_glyphs else None), weights.get("moto_swap", 0.0))
    if args.collage:
        extra.add(collage_pool(car_train, args.collage, args.seed + 3, preload_hw), weights.get("collage_moto", 0.0))
    if args.pseudo_moto:
        extra.add(pseudo_moto_pool(car_train, preload_hw), weights.get("pseudo_moto", 0.0))
    if args.doubled:
        extra.add(doubled_pool(car_train, preload_hw), weights.get("doubled_car", 0.0))
    if args.edge_cut:
        extra.add(edge_cut_pool(car_train, preload_hw, args.seed + 4), weights.get("edge_cut_car", 0.0))
    if args.synthetic:
        cars, motos = rendered_pools(args.synthetic, args.seed + 1, args.synthetic_moto_share, preload_hw)
        extra.add(cars, weights.get("rendered_car", 0.0))
        extra.add(motos, weights.get("rendered_moto", 0.0))
    if args.rectified:
        videos = sorted(args.videos.glob("*.mp4")) if args.videos else []
        cars, motos = rectified_pools(car_train, moto_train, args.rectifier_dir, args.rectified, args.seed + 2,
                                      preload_hw, videos, args.backgrounds)
        extra.add(cars, weights.get("rectified_car", 0.0))
        extra.add(motos, weights.get("rectified_moto", 0.0))
    return extra, moto_val


def main(argv: list[str] | None = None) -> None:  # noqa: PLR0915 - a linear training script
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="labels.csv (relative_path,label,province,...)")
    ap.add_argument("--out", type=Path, default=Path("models/plate_reader"))
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--minutes", type=float, default=0.0,
                    help="wall-time budget: the LR schedule follows max(step, time) progress and training stops "
                         "when the budget is spent (0 = follow --epochs only)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images (smoke runs)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--val-fraction", type=float, default=0.15)
    ap.add_argument("--province-weight", type=float, default=1.0)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=5, help="validate every N epochs")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from this checkpoint (plate_reader.pt of an earlier run), e.g. to continue training")
    ap.add_argument("--init-onnx", type=Path, default=None,
                    help="start from an exported reader (a folder with plate_reader.onnx), e.g. the shipped one")
    ap.add_argument("--moto", type=Path, default=None,
                    help="labels.csv of real motorcycle crops (three-line plates); split by plate like --data")
    ap.add_argument("--moto-val-fraction", type=float, default=0.5)
    ap.add_argument("--moto-val", type=Path, default=None,
                    help="held-out motorcycle labels file (absolute paths, e.g. from pipeline.plates.dataset); with "
                         "it every row of --moto trains and --moto-val-fraction is ignored")
    ap.add_argument("--pseudo-moto", action="store_true",
                    help="also train on training car crops with a three-character series re-laid as motorcycle plates "
                         "(pool weight pseudo_moto)")
    ap.add_argument("--input-size", default=None, metavar="HxW",
                    help="network input (height a multiple of 8, width of 4; default: the --init or --init-onnx reader's, "
                         f"else {INPUT_H}x{INPUT_W}); another size than the starting model's resamples its "
                         "time-step convolution (net.adapt_state_dict)")
    ap.add_argument("--edge-cut", action="store_true",
                    help="real training crops cut through their first or last character at a frame edge "
                         "(pipeline/plates/collage.py edge_cut; pool weight edge_cut_car)")
    ap.add_argument("--doubled", action="store_true",
                    help="real training crops with their series letter doubled (XY -> XX, YY; "
                         "pipeline/plates/collage.py doubled_series; pool weight doubled_car)")
    ap.add_argument("--swap-series", type=int, default=0, metavar="N",
                    help="add N variants of each training motorcycle crop with its series letters replaced by other "
                         "real motorcycle series letters (pipeline/plates/collage.py swap_series; pool weight "
                         "moto_swap)")
    ap.add_argument("--swap-car-glyphs", action="store_true",
                    help="--swap-series also draws the consonants no motorcycle series shows from the car crops")
    ap.add_argument("--collage", type=int, default=0,
                    help="add this many motorcycle plates collaged from the real characters of the training car crops "
                         "(pipeline/plates/collage.py; pool weight collage_moto)")
    ap.add_argument("--synthetic", type=int, default=0, help="render this many synthetic plates (Thai fonts)")
    ap.add_argument("--synthetic-moto-share", type=float, default=0.4)
    ap.add_argument("--rectified", type=int, default=0,
                    help="add this many training plates warped in 3-D and put upright by the rectifier")
    ap.add_argument("--rectifier-dir", type=Path, default=Path("models/plate_rectifier"))
    ap.add_argument("--videos", type=Path, default=None, help="folder of videos (backgrounds for --rectified)")
    ap.add_argument("--backgrounds", type=Path, nargs="*", default=[], help="image folders (backgrounds)")
    ap.add_argument("--pool-weights", default="real_moto=0.20,rendered_car=0.30,rendered_moto=0.20,"
                    "rectified_car=0.22,rectified_moto=0.08",
                    help="relative weights of the extra pools an extra sample is drawn from")
    ap.add_argument("--extra-share", type=float, default=0.25,
                    help="share of each batch drawn from the motorcycle crops and the rendered plates")
    ap.add_argument("--low-res-min", type=float, default=LOW_RES[0],
                    help="smallest scale of the low-resolution augmentation (share of the input size the crop is "
                         "shrunk to and enlarged back from; 0.2 = plates 38 px wide at the 192 px input)")
    ap.add_argument("--cut-share", type=float, default=0.06,
                    help="share of car samples cut below the registration line (province -> none)")
    ap.add_argument("--no-export", action="store_true")
    args = ap.parse_args(argv)
    if not 0.05 <= args.low_res_min <= LOW_RES[1]:
        raise SystemExit(f"--low-res-min must be in [0.05, {LOW_RES[1]}], got {args.low_res_min}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    _seed(args.seed)

    samples = read_labels(args.data)
    if args.limit:
        samples = samples[: args.limit]
    tr_idx, va_idx = plate_disjoint_split(samples, args.val_fraction, args.split_seed)
    logger.info("%d images, %d train / %d val (plate-disjoint, %d/%d distinct plates)", len(samples), len(tr_idx),
                len(va_idx), len({samples[i].label for i in tr_idx}), len({samples[i].label for i in va_idx}))
    t0 = time.time()
    init_state = torch.load(args.init, map_location="cpu", weights_only=False)["state_dict"] if args.init else None
    input_hw = parse_input_size(args.input_size) if args.input_size else \
        checkpoint_input_size(init_state) if init_state is not None else \
        exported_input_size(args.init_onnx) if args.init_onnx is not None else (INPUT_H, INPUT_W)
    preload_hw = (round(input_hw[0] * PRELOAD_HW[0] / INPUT_H), round(input_hw[1] * PRELOAD_HW[1] / INPUT_W))
    images = load_images(samples, preload_hw)
    logger.info("loaded images in %.1fs", time.time() - t0)

    targets = [encode_label(s.label) for s in samples]
    provs = np.array([s.province for s in samples])

    extra, moto_val = _extra_pools(args, [samples[i] for i in tr_idx], preload_hw, input_hw)
    model = PlateNet(len(CHARSET), NO_PROVINCE + 1, input_h=input_hw[0])
    if init_state is not None:
        model.load_state_dict(adapt_state_dict(init_state, model))
        logger.info("initialised from %s", args.init)
    elif args.init_onnx is not None:
        from pipeline.plates.onnx_import import load_onnx_weights

        onnx_hw = exported_input_size(args.init_onnx)
        source = PlateNet(len(CHARSET), NO_PROVINCE + 1, input_h=onnx_hw[0])
        calib = np.stack([cv2.resize(im, onnx_hw[::-1], interpolation=cv2.INTER_AREA)
                          for im in images[np.asarray(tr_idx)[rng_pick(len(tr_idx), 256, args.seed)]]])
        load_onnx_weights(source, args.init_onnx / "plate_reader.onnx", calib)
        model.load_state_dict(adapt_state_dict(source.state_dict(), model))
    logger.info("parameters: %d", sum(p.numel() for p in model.parameters()))
    ema = EMA(model, args.ema)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.02)
    n_extra = int(round(args.batch * args.extra_share)) if extra.pools else 0
    n_car = args.batch - n_extra
    steps_per_epoch = math.ceil(len(tr_idx) / n_car)
    total = steps_per_epoch * args.epochs

    def lr_at(progress: float) -> float:
        """Linear warm-up over 5% then cosine decay to 1% of the peak."""
        if progress < 0.05:
            return args.lr * (0.05 + 0.95 * progress / 0.05)
        q = min(1.0, (progress - 0.05) / 0.95)
        return args.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * q)))
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    ce = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing, ignore_index=-1)
    rng = np.random.default_rng(args.seed)
    out_hw = input_hw
    low_res = (args.low_res_min, LOW_RES[1])
    va_imgs = images[va_idx]
    va_labels = [samples[i].label for i in va_idx]
    va_provs = [samples[i].province for i in va_idx]
    history: list[dict[str, float]] = []
    step = 0
    start = time.time()
    stopped_early = False
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(tr_idx)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=5.0)
        run_loss = 0.0
        for b in bar:
            progress = step / total
            if args.minutes > 0:
                progress = max(progress, (time.time() - start) / 60 / args.minutes)
            if progress >= 1.0:
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(progress)
            idx = order[b * n_car:(b + 1) * n_car]
            if len(idx) < 2:
                continue
            xs, tg, pv = [], [], []
            for i in idx:
                img, prov = images[i], int(provs[i])
                if rng.random() < args.cut_share:
                    img, prov = cut_province(img, rng), NO_PROVINCE
                # Light augmentation for 10% of samples keeps clean-crop accuracy high.
                xs.append(make_sample(img, False, out_hw, rng, 0.3 if rng.random() < 0.1 else 1.0, low_res))
                tg.append(targets[i])
                pv.append(prov)
            for _ in range(n_extra):
                pool, j = extra.draw(rng)
                xs.append(make_sample(pool.images[j], pool.motorcycle, out_hw, rng, 1.0, low_res))
                tg.append(pool.targets[j])
                pv.append(int(pool.provinces[j]))
            x = np.stack(xs)
            ctc_logits, prov_logits = model.forward_logits(_to_tensor(x))
            logp = ctc_logits.log_softmax(-1).transpose(0, 1)  # T, B, C
            t_len = torch.full((len(x),), logp.shape[0], dtype=torch.long)
            loss = ctc(logp, torch.tensor([c for t in tg for c in t]), t_len, torch.tensor([len(t) for t in tg]))
            loss = loss + args.province_weight * ce(prov_logits, torch.tensor(pv, dtype=torch.long))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            step += 1
            ema.update(model, step)
            run_loss = 0.95 * run_loss + 0.05 * loss.item() if b else loss.item()
            bar.set_postfix(loss=f"{run_loss:.3f}", lr=f"{opt.param_groups[0]['lr']:.1e}", refresh=False)
        elapsed = (time.time() - start) / 60
        last = epoch + 1 == args.epochs
        over = args.minutes > 0 and elapsed >= args.minutes
        if (va_idx or moto_val is not None) and ((epoch + 1) % args.eval_every == 0 or last or over):
            m_raw = evaluate(model, va_imgs, va_labels, va_provs, input_hw=input_hw)
            m_ema = evaluate(ema.model, va_imgs, va_labels, va_provs, input_hw=input_hw)
            if moto_val is not None:
                m_raw |= {f"moto_{k}": v for k, v in evaluate(model, *moto_val, input_hw=input_hw).items()}
                m_ema |= {f"moto_{k}": v for k, v in evaluate(ema.model, *moto_val, input_hw=input_hw).items()}
            history.append({"epoch": epoch + 1, "minutes": elapsed, **{f"raw_{k}": v for k, v in m_raw.items()},
                            **{f"ema_{k}": v for k, v in m_ema.items()}})
            logger.info("epoch %d (%.1f min) raw %s | ema %s", epoch + 1, elapsed, m_raw, m_ema)
        if over:
            logger.info("time budget spent after %.1f minutes, epoch %d (--minutes)", elapsed, epoch + 1)
            stopped_early = True
            break

    args.out.mkdir(parents=True, exist_ok=True)
    final = ema.model
    if history and "raw_exact" in history[-1] and history[-1]["raw_exact"] + history[-1]["raw_province_accuracy"] > \
            history[-1]["ema_exact"] + history[-1]["ema_province_accuracy"]:
        final = model
    chosen = "raw" if final is model else "ema"
    torch.save({"state_dict": final.state_dict(), "args": vars(args) | {"data": str(args.data),
                "out": str(args.out)}}, args.out / "plate_reader.pt")
    report = {"history": history, "chosen": chosen, "minutes": (time.time() - start) / 60,
              "stopped_early": stopped_early, "n_train": len(tr_idx), "n_val": len(va_idx),
              "args": {k: str(v) for k, v in vars(args).items()}}
    (args.out / "train_report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    if not args.no_export:
        export_onnx(final, args.out / "plate_reader.onnx", input_hw)
        write_meta(args.out, "plate_reader.onnx", {"weights": chosen}, input_hw)
        logger.info("exported %s", args.out / "plate_reader.onnx")


if __name__ == "__main__":
    main()
