#!/usr/bin/env bash
# `make test-slurm`: start a real single-node Slurm cluster (scripts/slurm_cluster.sh; root, Debian's packages,
# loopback only), run tests_slurm/ against it, and stop the daemons it started, whatever the tests did.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
dir=$(mktemp -d /tmp/alimb-slurm.XXXXXX)
chmod 755 "$dir"
trap 'bash scripts/slurm_cluster.sh down "$dir"' EXIT
SLURM_CONF=$(bash scripts/slurm_cluster.sh up "$dir")
export SLURM_CONF
echo "test-slurm: cluster up ($SLURM_CONF): $(sinfo -h -o '%P %D nodes %c CPUs %m MB %T')"
# jobs run in the tests' temporary folders: keep them where slurmd (root here) and the job can both reach them
WANDB_MODE=offline "$python" -m pytest tests_slurm -p no:cacheprovider "$@"
