#!/usr/bin/env bash
# Set up the project-local virtual environment (.venv) with everything the demo, tests and benchmarks need.
# Handles two install traps: torch (CPU build 2.13.0 unless a torch is already importable, e.g. a user's CUDA
# build in a venv made with QSM_VENV_ARGS=--system-site-packages) and pyradiomics (needs --no-build-isolation).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
  echo "[install] creating $VENV with $($PYTHON --version)"
  # shellcheck disable=SC2086
  "$PYTHON" -m venv ${QSM_VENV_ARGS:-} "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "[install] keeping the installed torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
else
  echo "[install] torch==2.13.0 (CPU build)"
  "${PIP[@]}" install "torch==${QSM_TORCH_VERSION:-2.13.0}"
fi
if ! "$VENV/bin/python" -c "import radiomics" 2>/dev/null; then
  echo "[install] pyradiomics (built with --no-build-isolation)"
  "${PIP[@]}" install numpy versioneer setuptools wheel
  "${PIP[@]}" install --no-build-isolation pyradiomics
fi
echo "[install] the project and its test peers"
"${PIP[@]}" install -e ".[test]"
# our own shipped bundle configs run without MONAI's "only proceed if you trust this config" warning
"$VENV/bin/python" -c "from lightning_modules.monai_trust import install_pth; print('[install] wrote', install_pth())"
touch "$VENV/.installed"
echo "[install] done: $VENV"
