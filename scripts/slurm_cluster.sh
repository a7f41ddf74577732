#!/usr/bin/env bash
# A real single-node Slurm cluster on loopback, for `make test-slurm` (root; Debian's packages).
#
#   scripts/slurm_cluster.sh up DIR     install slurmctld/slurmd/munge if missing, start them; prints the
#                                       SLURM_CONF to export (DIR/slurm.conf)
#   scripts/slurm_cluster.sh down DIR   stop the daemons this script started (their pid files in DIR)
#
# One node (this machine's CPUs and memory, as `slurmd -C` reports them), one partition `debug`, no
# accounting (accounting_storage/none: sacct has nothing, as on many small clusters), proctrack/linuxproc.
# Everything lives in DIR (config, state, spool, logs); /etc/slurm is not touched.
set -euo pipefail

cmd=${1:?usage: slurm_cluster.sh up|down DIR}
dir=${2:?usage: slurm_cluster.sh up|down DIR}

stop() {
  for daemon in slurmd slurmctld munged; do
    if [[ -f "$dir/$daemon.pid" ]]; then
      pid=$(cat "$dir/$daemon.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/$daemon.pid"
    fi
  done
}

if [[ $cmd == down ]]; then
  stop
  exit 0
fi
[[ $cmd == up ]] || { echo "slurm_cluster.sh: unknown command '$cmd' (up or down)" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "slurm_cluster.sh: needs root (it starts slurmd, which runs jobs as their users)" >&2; exit 2; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
   || ! command -v sbatch >/dev/null; then
  echo "slurm_cluster.sh: installing slurmctld, slurmd, munge (apt)" >&2
  packages=(slurmctld slurmd slurm-client munge)
  export DEBIAN_FRONTEND=noninteractive
  # a fresh image may have no package lists yet: update them once if the install cannot find the packages
  apt-get install -y -q "${packages[@]}" >"$dir.apt.log" 2>&1 \
    || { apt-get update -q >>"$dir.apt.log" 2>&1 && apt-get install -y -q "${packages[@]}" >>"$dir.apt.log" 2>&1; } \
    || { echo "slurm_cluster.sh: apt-get install ${packages[*]} failed; see $dir.apt.log" >&2; exit 1; }
fi

mkdir -p "$dir"/{state,spool,munge,socket}
dir=$(cd "$dir" && pwd)
stop  # a previous cluster in the same DIR

# munge: its own key and socket in DIR, so a system munged (if any) is left alone
key="$dir/munge/munge.key"
[[ -f $key ]] || dd if=/dev/urandom of="$key" bs=128 count=1 status=none
chown -R munge:munge "$dir/munge" "$dir/socket"
chmod 700 "$dir/munge"; chmod 400 "$key"; chmod 755 "$dir/socket"  # the socket's folder: open to every job user
socket="$dir/socket/munge.socket"
runuser -u munge -- munged --key-file="$key" --socket="$socket" --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
cp "$dir/munge/munged.pid" "$dir/munged.pid"

node=$(hostname -s)
read -r cpus mem < <(slurmd -C | awk '/NodeName/ {for (i = 1; i <= NF; i++) {split($i, kv, "=");
  if (kv[1] == "CPUs") c = kv[2]; if (kv[1] == "RealMemory") m = kv[2]}} END {print c, m}')
mem=$((mem * 9 / 10))  # leave the daemons and the test runner room
cat >"$dir/slurm.conf" <<EOF
ClusterName=alimb-test
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=300
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do
  if sinfo -h -o '%T' 2>/dev/null | grep -qx idle; then
    echo "$SLURM_CONF"
    exit 0
  fi
  sleep 0.2
done
echo "slurm_cluster.sh: the node did not become idle in 20 s; logs: $dir/slurmctld.log $dir/slurmd.log" >&2
sinfo >&2 || true
stop
exit 1
