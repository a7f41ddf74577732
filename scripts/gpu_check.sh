#!/usr/bin/env bash
# Every GPU path in one command (issue #13). The GPU machine has no network and its Python environment may not
# be writable: what it lacks (hydra-core, omegaconf, wandb, submitit, pydantic, Hydra's launchers) is installed
# from the carried wheels/ with `pip install --no-index --target` into a temporary folder, alimb is taken from
# this working tree, both through PYTHONPATH (nothing installed into the environment); the versions found are
# printed first; then scripts/gpu_check.py runs.
#   bash scripts/gpu_check.sh [--cpu] [--quick] [--out DIR]      (make gpu-check; wheels: make gpu-wheels)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
MISSING=(hydra-core omegaconf wandb submitit hydra-joblib-launcher hydra-submitit-launcher pydantic)
SITE=$(mktemp -d "${TMPDIR:-/tmp}/alimb-gpu-site.XXXXXX")
trap 'rm -rf "$SITE"' EXIT
if [ -n "${ALIMB_GPU_CHECK_TARGET:-}" ] || ! "$PYTHON" -c "import hydra, omegaconf, wandb, submitit, pydantic, \
    hydra_plugins.hydra_joblib_launcher, hydra_plugins.hydra_submitit_launcher" 2>/dev/null; then
  if [ ! -d wheels ]; then
    echo "gpu_check: ${MISSING[*]} are missing and there is no wheels/ folder; run 'make gpu-wheels' where pip reaches a registry, and carry wheels/" >&2
    exit 2
  fi
  echo "gpu_check: installing ${MISSING[*]} from wheels/ into $SITE" >&2
  "$PYTHON" -m pip install --quiet --no-index --find-links wheels --target "$SITE" "${MISSING[@]}"
fi
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"  # alimb and its Hydra plugins from this tree
"$PYTHON" - <<'EOF'
import importlib.metadata as md
import platform
import sys

names = ["torch", "torchvision", "lightning", "timm", "numpy", "pandas", "scikit-learn", "scipy", "hydra-core",
         "omegaconf", "wandb", "submitit", "pydantic", "hydra-submitit-launcher", "hydra-joblib-launcher"]
found = []
for name in names:
    try:
        found.append(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        found.append(f"{name} MISSING")
print(f"gpu_check: Python {platform.python_version()}; " + ", ".join(found), file=sys.stderr)
import alimb  # noqa: E402  - from this working tree
import hydra  # noqa: E402  - the machine's or the carried wheel's

print(f"gpu_check: alimb from {alimb.__file__}, hydra from {hydra.__file__}", file=sys.stderr)
EOF
"$PYTHON" scripts/gpu_check.py "$@"
