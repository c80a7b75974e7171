#!/usr/bin/env bash
# Installs everything the service needs on a fresh Debian/Ubuntu machine with Python 3.11:
# system packages (redis-server, ffmpeg, chromium and a Thai font for browser tests), a virtual
# environment in .venv with the pinned Python packages, and a running Redis on 127.0.0.1:6379.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(redis-server ffmpeg chromium chromium-driver fonts-tlwg-loma-otf
  # Thai fonts the plate-reader trainer renders synthetic plates with (pipeline.plates.render)
  fonts-tlwg-loma-ttf fonts-tlwg-garuda-ttf fonts-tlwg-waree-ttf fonts-tlwg-umpush-ttf fonts-tlwg-laksaman-ttf
  fonts-tlwg-typist-ttf)

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

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "[install] starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/cctv-redis.log
fi
echo "[install] ready"
