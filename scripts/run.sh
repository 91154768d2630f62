#!/usr/bin/env bash
# Set up .venv if needed, run the default sweep (experiment=quick) and write its report.
# Extra arguments go to bench-run, e.g. ./scripts/run.sh dataset=wa_churn method=xgboost
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh llm
exec .venv/bin/bench-run "$@"
