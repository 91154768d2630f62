#!/usr/bin/env bash
# Set up .venv if needed, run the default sweep (experiment=quick) and write its report.
# Extra arguments go to bench-run, e.g. ./scripts/run.sh experiment=classical, or
# ./scripts/run.sh dataset=wa_churn (the quick sweep on another table). A plain `bench-run ...`
# without experiment= is an ad-hoc run (results/adhoc, the protocol's full test set).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh llm
experiment=(experiment=quick)
for arg in "$@"; do
  [[ "$arg" == experiment=* || "$arg" == +experiment=* ]] && experiment=()
done
exec .venv/bin/bench-run "${experiment[@]}" "$@"
