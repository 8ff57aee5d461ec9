#!/usr/bin/env bash
# Create .venv (once) and install ccrop-plugins with every extra, pinned by
# requirements/constraints.txt (the set that installs on Python 3.11 / x86_64; see docs/install.md).
# Safe to re-run: an up-to-date environment costs a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
pip_install() { .venv/bin/python -m pip install --disable-pip-version-check -q -c requirements/constraints.txt "$@"; }
# torch first, on its own: a resolver that sees torch only as a dependency may pick another build.
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
    pip_install "torch==2.14.1" "torchvision==0.29.1"
fi
pip_install -e ".[all]"
echo "ccrop-plugins is installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
