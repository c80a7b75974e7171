#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite (tests start their own redis-server and RTSP cameras).
set -euo pipefail
cd "$(dirname "$0")/.."
CCTV_START_REDIS=0 bash scripts/install.sh  # the tests run their own redis-servers on free ports
export CCTV_MODEL_DIR=${CCTV_MODEL_DIR:-$(cd .. && pwd)/shared/models}
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
