#!/usr/bin/env bash
# Installs everything the service needs on a fresh Debian/Ubuntu machine with Python 3.11:
# system packages (redis-server, ffmpeg, chromium and a Thai font for browser tests, GStreamer's RTSP server as
# the tests' independent Digest-authenticated camera), a virtual environment in .venv with the pinned Python
# packages, and the project's own durable Redis on 127.0.0.1:6380 (see the end of this file).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(redis-server ffmpeg chromium chromium-driver fonts-tlwg-loma-otf
  # Thai fonts the plate-reader trainer renders synthetic plates with (pipeline.plates.render)
  fonts-tlwg-loma-ttf fonts-tlwg-garuda-ttf fonts-tlwg-waree-ttf fonts-tlwg-umpush-ttf fonts-tlwg-laksaman-ttf
  fonts-tlwg-typist-ttf
  # an independent RTSP camera with Digest authentication for the tests (pipeline/gstcams.py): gst-rtsp-server
  # through the system Python's GObject bindings; base/good/bad give filesrc, qtdemux, h264parse/h265parse, rtph26Xpay
  gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  # Redis high availability (README: three-node layout) and the multi-host tests' network namespaces (tests/cluster)
  redis-sentinel iproute2)

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "[install] system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "[install] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[install] Python packages (pinned in requirements.lock)"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.lock
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi

# The project's own Redis (not the machine's 6379): AOF (appendfsync everysec) + RDB snapshots in var/redis, bound
# to 127.0.0.1:${CCTV_REDIS_PORT:-6380}, ACL users for the workers and the API with passwords generated on first run
# into var/secrets/redis.env (mode 0600). redis-server reads them from the generated var/secrets/redis.conf (0600,
# password hashes only), so no password shows in a process listing; redis-cli authenticates with REDISCLI_AUTH.
# CCTV_START_REDIS=0 skips this (scripts/test.sh: the tests start their own servers on free ports).
if [ "${CCTV_START_REDIS:-1}" = "0" ]; then
  echo "[install] ready (the project's Redis not started: CCTV_START_REDIS=0)"
  exit 0
fi
.venv/bin/python -m pipeline redis-setup
set -a; . "${CCTV_REDIS_SECRETS_FILE:-var/secrets/redis.env}"; set +a
REDIS_PORT=${CCTV_REDIS_PORT:-6380}
if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
  if (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; then
    echo "[install] 127.0.0.1:$REDIS_PORT is taken by something that does not accept var/secrets/redis.env;" \
      "stop it or choose another port with CCTV_REDIS_PORT" >&2
    exit 1
  fi
  echo "[install] starting the project's redis-server on 127.0.0.1:$REDIS_PORT (data: ${CCTV_REDIS_DATA_DIR:-var/redis})"
  redis-server "${CCTV_REDIS_CONF_FILE:-var/secrets/redis.conf}" --daemonize yes || true
  up=0  # CCTV_REDIS_START_WAIT_S: how long to wait for its first PONG (default 30 s)
  for _ in $(seq $((${CCTV_REDIS_START_WAIT_S:-30} * 10))); do
    if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then up=1; break; fi
    sleep 0.1
  done
  if [ "$up" != 1 ]; then
    # never "ready" without a Redis: the service would start and only log connection errors
    conf=${CCTV_REDIS_CONF_FILE:-var/secrets/redis.conf}
    log=$(sed -n 's/^logfile "\(.*\)"$/\1/p' "$conf")
    echo "[install] the project's redis-server did not answer on 127.0.0.1:$REDIS_PORT within ${CCTV_REDIS_START_WAIT_S:-30} s;" \
      "see its log ${log:-(none)} (config: $conf)" >&2
    if [ -n "$log" ] && [ -f "$log" ]; then tail -n 5 "$log" >&2; fi
    exit 1
  fi
fi
echo "[install] ready (Redis credentials: var/secrets/redis.env; load them with: set -a; . var/secrets/redis.env; set +a)"
