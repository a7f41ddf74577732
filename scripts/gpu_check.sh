#!/usr/bin/env bash
# Every GPU path in one command (issue #13): installs what the GPU machine lacks from wheels/ (no network
# there), alimb itself with --no-deps against the torch that is there, then runs scripts/gpu_check.py.
#   bash scripts/gpu_check.sh [--cpu] [--quick] [--out DIR]      (make gpu-check; wheels: make gpu-wheels)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
MISSING=(hydra-core omegaconf wandb submitit hydra-joblib-launcher hydra-submitit-launcher pydantic)
if ! "$PYTHON" -c "import hydra, omegaconf, wandb, submitit, pydantic, hydra_plugins.hydra_joblib_launcher" 2>/dev/null; then
  if [ ! -d wheels ]; then
    echo "gpu_check: ${MISSING[*]} are missing and there is no wheels/ folder; run 'make gpu-wheels' where pip reaches a registry, and carry wheels/" >&2
    exit 2
  fi
  "$PYTHON" -m pip install --quiet --no-index --find-links wheels "${MISSING[@]}"
fi
if ! "$PYTHON" -c "import alimb.run" 2>/dev/null; then
  "$PYTHON" -m pip install --quiet --no-deps --no-build-isolation -e .
fi
exec "$PYTHON" scripts/gpu_check.py "$@"
