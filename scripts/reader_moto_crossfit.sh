#!/usr/bin/env bash
# Cross-fit the shipped plate reader's lineage (stages 3-7, models/plate_reader/MODEL_CARD.md) on the motorcycle
# plates, so that the reader's accuracy on motorcycle plates it never saw is measured for the recipe that ships.
#
# The shipped reader trained on all 106 real motorcycle plates from stage 3 on, so it has no held-out motorcycle
# figure of its own. Here the 52 plates that stage 2 never saw (var/moto_split/val.csv) are cut in two halves by
# plate string (var/moto_cv); for each half, stages 3-7 are run again from the stage-2 export (git 09e032a) with
# the 54 stage-2 training plates plus the other half, and the fold's stage-7 model reads the half it never saw.
#
#   bash scripts/reader_moto_crossfit.sh [WORK_DIR]      (default var/crossfit; about 30 minutes a fold on 2 cores)
#
# Needs ../shared/data (plates_thai, plates_thai_moto, videos, plates_openalpr_eu) and the splits:
#   python -m pipeline.plates.dataset --labels ../shared/data/plates_thai/labels.csv --out var/plates_split
#   python -m pipeline.plates.dataset --labels ../shared/data/plates_thai_moto/labels.csv --out var/moto_split --val-fraction 0.5
#   python -m pipeline.plates.dataset --labels var/moto_split/val.csv --out var/moto_cv --val-fraction 0.5 --split-seed 1
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=${1:-var/crossfit}
SHARED=${SHARED:-../shared}
STAGE2_COMMIT=09e032a
POOLS=real_moto=0.35,rendered_car=0.15,rendered_moto=0.15,rectified_car=0.15,rectified_moto=0.20
COMMON=(--data "$SHARED/data/plates_thai/labels.csv" --batch 32 --synthetic 3000 --rectified 3000
        --videos "$SHARED/data/videos" --backgrounds "$SHARED/data/plates_openalpr_eu/images"
        --extra-share 0.4 --cut-share 0.06)

for f in var/moto_split/train.csv var/moto_cv/train.csv var/moto_cv/val.csv; do
    [[ -f $f ]] || { echo "missing $f: write the splits first (see the head of this script)" >&2; exit 2; }
done

mkdir -p "$WORK/stage2"
git show "$STAGE2_COMMIT:models/plate_reader/plate_reader.onnx" > "$WORK/stage2/plate_reader.onnx"
git show "$STAGE2_COMMIT:models/plate_reader/plate_reader.json" > "$WORK/stage2/plate_reader.json"

fold_files() {  # fold number -> "train.csv held.csv": the 54 stage-2 plates plus the other half train
    local held other
    if [[ $1 == 1 ]]; then held=var/moto_cv/train.csv; other=var/moto_cv/val.csv
    else held=var/moto_cv/val.csv; other=var/moto_cv/train.csv; fi
    { cat var/moto_split/train.csv; tail -n +2 "$other"; } > "$WORK/fold$1_train.csv"
    echo "$WORK/fold$1_train.csv $held"
}

for fold in ${FOLDS:-1 2}; do
    read -r train held < <(fold_files "$fold")
    d=$WORK/fold$fold
    moto=(--moto "$train" --moto-val "$held")
    echo "== fold $fold: trains on $(($(wc -l < "$train") - 1)) motorcycle plates, holds out $held ($(date -u +%H:%M))"
    "$PY" -m pipeline.plates.train "${COMMON[@]}" "${moto[@]}" --epochs 2 --lr 3e-4 --eval-every 3 \
        --init-onnx "$WORK/stage2" --pool-weights "$POOLS" --out "$d/stage3"
    "$PY" -m pipeline.plates.train "${COMMON[@]}" "${moto[@]}" --epochs 2 --lr 3e-4 --eval-every 3 --seed 0 \
        --init-onnx "$d/stage3" --doubled --pool-weights "$POOLS,doubled_car=0.15" --out "$d/stage4"
    "$PY" -m pipeline.plates.train "${COMMON[@]}" "${moto[@]}" --epochs 2 --lr 3e-4 --eval-every 3 --seed 0 \
        --init-onnx "$d/stage4" --doubled --edge-cut --pool-weights "$POOLS,doubled_car=0.15,edge_cut_car=0.15" \
        --out "$d/stage5"
    "$PY" -m pipeline.plates.train "${COMMON[@]}" "${moto[@]}" --epochs 5 --lr 6e-4 --eval-every 2 --seed 0 \
        --minutes 22 --init "$d/stage5/plate_reader.pt" --input-size 96x192 --doubled --edge-cut \
        --pool-weights "$POOLS,doubled_car=0.15,edge_cut_car=0.15" --out "$d/stage6"
    "$PY" -m pipeline.plates.train "${COMMON[@]}" "${moto[@]}" --epochs 5 --lr 3e-4 --eval-every 1 --seed 2 \
        --minutes 30 --init-onnx "$d/stage6" --doubled --edge-cut \
        --pool-weights "$POOLS,doubled_car=0.25,edge_cut_car=0.25" --out "$d/stage7_finetune"
    "$PY" -m pipeline.plates.average_exports "$d/stage6" "$d/stage7_finetune" --out "$d/stage7"
    for model in "$WORK/stage2" "$d/stage7"; do
        stage=$(basename "$model")
        echo "-- fold $fold, $stage, reads the held-out half through the rectifier"
        "$PY" -m benchmarks.plates --labels "$held" --rectify --reading-pad --model-dir "$model" \
            --json "$d/${stage}_held.json" | grep -E "^(n|exact|province_accuracy|exact_both) "
    done
done
