#!/usr/bin/env bash
# Set up .venv with the test dependencies and run the whole test suite (lint included).
# Extra arguments go to pytest, e.g. ./scripts/test.sh -k splits -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev,llm,qwen,tabpfn,cluster
.venv/bin/ruff check bench tests scripts
exec .venv/bin/python -m pytest "$@"
