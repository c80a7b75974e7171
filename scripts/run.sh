#!/usr/bin/env bash
# One command for the main job: installs everything, starts Redis, serves the sample footage as looping RTSP
# cameras on loopback, then runs the workers and the API until Ctrl-C.
set -euo pipefail
# recordings (faces, plates), exports, var/log, var/spool, var/cache: private to this user and group (0750/0640)
umask 027
cd "$(dirname "$0")/.."
bash scripts/install.sh
set -a; . "${CCTV_REDIS_SECRETS_FILE:-var/secrets/redis.env}"; set +a  # Redis URLs of the workers and the API
export CCTV_MODEL_DIR=${CCTV_MODEL_DIR:-$(cd .. && pwd)/shared/models}
export CCTV_VIDEOS_DIR=${CCTV_VIDEOS_DIR:-$(cd .. && pwd)/shared/data/videos}
PY=.venv/bin/python

if ! $PY -m pipeline models verify >/dev/null 2>&1; then
  if [ -d ../shared/models ] && [ "$CCTV_MODEL_DIR" != "$(cd .. && pwd)/shared/models" ]; then
    $PY -m pipeline models fetch --mirror ../shared/models
  else
    $PY -m pipeline models fetch
  fi
fi
$PY -m pipeline check-config cameras.yaml

# The demo's fixed ports: the RTSP cameras of cameras.yaml (8554) and the control room (8000). Another program on
# one of them is named now, not after minutes of transcoding (or, for 8554, never: ffmpeg would reach that program).
for port in 8554 8000; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "[run] 127.0.0.1:$port is already in use by another program (see: ss -ltnp 'sport = :$port');" \
      "the demo needs it (8554: the RTSP cameras of cameras.yaml, 8000: the control room): stop that program" >&2
    exit 1
  fi
done

mkdir -p var/log
$PY -m pipeline serve-cameras --videos "$CCTV_VIDEOS_DIR" --port 8554 >var/log/cameras.log 2>&1 &
CAMS=$!
trap 'kill $CAMS 2>/dev/null || true' EXIT
# The first run transcodes the footage once (a minute or more) before the cameras listen: wait for them, so that the
# service does not start against cameras that refuse, and stop with the server's own error if it exits.
echo "[run] starting the RTSP test cameras (first run: the footage is transcoded once; log: var/log/cameras.log)"
waited=0
until (exec 3<>/dev/tcp/127.0.0.1/8554) 2>/dev/null; do
  if ! kill -0 "$CAMS" 2>/dev/null || [ "$waited" -ge 1200 ]; then
    echo "[run] the RTSP test cameras did not start on 127.0.0.1:8554 (var/log/cameras.log):" >&2
    tail -n 5 var/log/cameras.log >&2
    exit 1
  fi
  sleep 0.5
  waited=$((waited + 1))
done
echo
echo "  RTSP cameras : rtsp://127.0.0.1:8554/<video name>   (log: var/log/cameras.log)"
echo "  Control room : http://127.0.0.1:8000/               (API docs: http://127.0.0.1:8000/docs)"
echo "  Recordings   : $(pwd)/recordings"
echo "  Redis        : 127.0.0.1:${CCTV_REDIS_PORT:-6380} (AOF + RDB in ${CCTV_REDIS_DATA_DIR:-var/redis}; credentials in var/secrets/redis.env)"
echo
if [ -n "${CCTV_ADMIN_USER:-}" ] && [ -n "${CCTV_ADMIN_PASSWORD:-}" ]; then
  echo "  Sign in      : as ${CCTV_ADMIN_USER} with CCTV_ADMIN_PASSWORD (created if that user does not exist yet)"
else
  echo "  Sign in      : first run (no user yet): the user name and a generated password of a new admin appear"
  echo "                 below, once, in a box; sign in with them and choose your own password."
  echo "                 Later runs: your own accounts. Lost the admin password?"
  echo "                 .venv/bin/python -m api create-user admin --role admin"
fi
echo
$PY -m pipeline run --config cameras.yaml --host 127.0.0.1 --port 8000
