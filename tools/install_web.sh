#!/usr/bin/env bash
# Set up the web app (issue 27): its own virtual environment .venv-web with trame-slicer (which pins an older
# slicer-core than the test layer of .venv), Playwright in .venv for the browser tests, and a headless Chromium
# (Debian package; installed when we are root and apt-get is there, else the browser tests skip and say why).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv-web
if [ ! -x "$VENV/bin/python" ]; then
  echo "[install-web] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
echo "*" > "$VENV/.gitignore"  # the environment is not part of the repository
echo "[install-web] trame-slicer (pulls slicer-core without Qt), nibabel"
"$VENV/bin/python" -m pip --disable-pip-version-check -q install "trame-slicer[standalone]==2.0.0" nibabel
if [ -x .venv/bin/python ]; then
  echo "[install-web] playwright into .venv (drives Chromium in tests/web)"
  .venv/bin/python -m pip --disable-pip-version-check -q install "playwright==1.65.2"
fi
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[install-web] chromium (Debian package, for the headless browser tests)"
    (apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }) \
      || echo "[install-web] could not install chromium: the browser tests will skip"
  else
    echo "[install-web] no chromium and not root: 'apt-get install chromium' to run the browser tests"
  fi
fi
touch "$VENV/.installed"
echo "[install-web] done: $VENV"
