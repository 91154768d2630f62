#!/usr/bin/env bash
# Create .venv (if missing) and install the project into it, editable, with the given extras.
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh dev   (comma-separated, optional)
# Reinstalls only when pyproject.toml or the extras changed, so repeated calls take a second.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: needs Python >= 3.11; set PYTHON=/path/to/python3.11 (found: $("$python" --version 2>&1))" >&2
    exit 1
  fi
  echo "setup: creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi

stamp=".venv/.bench-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) extras=[$extras]"
if [ ! -f "$stamp" ] || ! grep -qxF "$want" "$stamp"; then
  echo "setup: installing the project into .venv${extras:+ with extras [$extras]} (first time: several minutes; llama-cpp-python compiles for ~7 min on 2 cores, then pip caches it)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
  echo "$want" > "$stamp"
fi
