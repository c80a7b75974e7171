#!/usr/bin/env bash
# Every plate figure of README and the model cards, one benchmark at a time (about 15 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
export CCTV_MODEL_DIR=${CCTV_MODEL_DIR:-$(cd .. && pwd)/shared/models}
D=../shared/data
R=benchmarks/results
PY=.venv/bin/python
$PY -m pipeline.plates.dataset --labels $D/plates_thai/labels.csv --out var/plates_split
$PY -m pipeline.plates.dataset --labels $D/plates_thai_moto/labels.csv --out var/moto_split --val-fraction 0.5
echo "== car crops, plates never seen";       $PY -m benchmarks.plates --labels var/plates_split/val.csv --layout car --json $R/plates_val.json
echo "== car crops, series doubled";       $PY -m benchmarks.plates --labels var/plates_split/val.csv --layout car --doubled --json $R/plates_val_doubled.json
echo "== car crops cut at a frame edge";     $PY -m benchmarks.plates --labels var/plates_split/val.csv --layout car --edge-cut 0.6 --rectify --reading-pad --json $R/plates_val_edge_cut.json
echo "== car crops through the rectifier";    $PY -m benchmarks.plates --labels var/plates_split/val.csv --rectify --reading-pad --json $R/plates_val_rectified.json
echo "== motorcycle crops, never seen";       $PY -m benchmarks.plates --labels var/moto_split/val.csv --layout motorcycle --json $R/plates_moto.json
echo "== all motorcycle crops, layout auto";  $PY -m benchmarks.plates --labels $D/plates_thai_moto/labels.csv --json $R/plates_moto_all.json
echo "== motorcycle crops, rectified";        $PY -m benchmarks.plates --labels var/moto_split/val.csv --rectify --reading-pad --json $R/plates_moto_rectified.json
echo "== Thai scene photos";                  $PY -m benchmarks.plates --labels $D/plates_thai_scenes/labels.csv --scenes --show 11 --json $R/plates_scenes.json
echo "== Thai scene photos, no rectifier";    $PY -m benchmarks.plates --labels $D/plates_thai_scenes/labels.csv --scenes --no-rectify --json $R/plates_scenes_plain.json
echo "== motorcycle plate detection";         $PY -m benchmarks.plate_detection --labels $D/plates_thai_moto/detection.csv --iou 0.3 --json $R/plate_detection_moto.json
echo "== motorcycle detection, tiles";        $PY -m benchmarks.plate_detection --labels $D/plates_thai_moto/detection.csv --iou 0.3 --whole-frame tiles --whole-frame-tile 240 --json $R/plate_detection_moto_tiles.json
echo "== OpenALPR detection";                 $PY -m benchmarks.plate_detection --labels $D/plates_openalpr_us/labels.csv $D/plates_openalpr_eu/labels.csv --json $R/plate_detection_openalpr.json
echo "== rectifier corners";                  $PY -m benchmarks.rectifier --n 600 --json $R/rectifier.json
echo "== angle sweep";                        $PY -m benchmarks.plates --labels var/plates_split/val.csv --sweep --sweep-n 40 --json $R/plates_sweep.json
