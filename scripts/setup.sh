#!/usr/bin/env bash
# Create .venv (if missing) and install the project into it, editable, with the given extras.
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh dev   (comma-separated, optional)
# Reinstalls only when pyproject.toml or the extras changed, so repeated calls take a second.
# Extras with `tabpfn` install torch first, so pip never picks a multi-GB CUDA build for it:
# BENCH_TORCH_SPEC (default `torch==2.13.0`, a CPU wheel on the project machine) is what
# `pip install` is given; a torch already in .venv (e.g. your CUDA build) is left alone.
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
  if [[ ",$extras," == *",tabpfn,"* ]]; then
    if .venv/bin/python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)'; then
      echo "setup: torch is already installed in .venv ($(.venv/bin/python -m pip show torch 2>/dev/null | sed -n 's/^Version: //p')); leaving it as it is"
    else
      torch_spec="${BENCH_TORCH_SPEC:-torch==2.13.0}"
      echo "setup: installing torch first for TabPFN: pip install $torch_spec"
      # Word splitting is wanted: the spec may carry pip options such as --index-url.
      # shellcheck disable=SC2086
      .venv/bin/python -m pip install --quiet $torch_spec
    fi
  fi
  .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
  echo "$want" > "$stamp"
fi
if ! command -v bwrap >/dev/null 2>&1; then
  echo "setup: bubblewrap (bwrap) is not installed: llm_codegen then runs generated code without" \
       "confinement and refuses a hosted model's code; install it (Debian/Ubuntu: apt-get install" \
       "bubblewrap; README 'The sandbox')." >&2
fi
