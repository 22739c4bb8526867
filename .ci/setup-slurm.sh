#!/usr/bin/env bash
# Bring up a single-node SLURM (one node, one partition, two fake GPUs) for tests/test_slurm.py.
#
# Runs as root on Debian/Ubuntu without systemd (a CI container). Idempotent: when the node is
# idle under the same configuration it does nothing. Never fails the build: when SLURM cannot
# start it says why and exits 0, and the slurm tests skip with the reason. Facts: reference C6.
set -uo pipefail

say() { echo "setup-slurm: $*"; }
give_up() { say "SLURM not started: $*"; exit 0; }

CONF_DIR=/etc/slurm
GPU_DIR=/var/lib/daskprs-fakegpu
LOG_DIR=/var/log/slurm
NODE=$(hostname -s 2>/dev/null || hostname)

if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        exec sudo -n bash "$0" "$@"
    fi
    give_up "needs root (apt and the daemons), running as $(id -un) without passwordless sudo."
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
        || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    command -v apt-get >/dev/null || give_up "no apt-get to install SLURM (not Debian/Ubuntu)."
    say "installing slurmctld slurmd slurm-client munge with apt (about a minute) ..."
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q --no-install-recommends \
        slurmctld slurmd slurm-client munge; } >/tmp/setup-slurm-apt.log 2>&1 \
        || give_up "apt-get failed: $(tail -n 3 /tmp/setup-slurm-apt.log) (/tmp/setup-slurm-apt.log)"
fi

# This host's CPUs, sockets and memory as slurmd sees them, so the node is not drained.
HW=$(slurmd -C 2>/dev/null | head -n1 | sed -E 's/^NodeName=[^ ]+ //')
[ -n "$HW" ] || give_up "'slurmd -C' printed nothing; cannot describe this node."
CPUS=$(sed -nE 's/.*CPUs=([0-9]+).*/\1/p' <<<"$HW")
MEM=$(sed -nE 's/.*RealMemory=([0-9]+).*/\1/p' <<<"$HW")
DEF_MEM=$(( ${MEM:-2048} / ${CPUS:-1} ))  # a job without --mem gets a share, not the node

CONF=$(cat <<EOF
# Written by daskprs .ci/setup-slurm.sh: a single-node test cluster, not for production.
ClusterName=daskprs
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEF_MEM
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
KillWait=5
MinJobAge=30
GresTypes=gpu
NodeName=$NODE $HW Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)
GRES="NodeName=$NODE Name=gpu File=$GPU_DIR/fakegpu[0-1]"

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1; }

if [ "$(cat "$CONF_DIR/slurm.conf" 2>/dev/null)" = "$CONF" ] \
        && [ "$(cat "$CONF_DIR/gres.conf" 2>/dev/null)" = "$GRES" ] && [ "$(node_state)" = idle ]; then
    say "already up: node $NODE idle."
    exit 0
fi

# Stop the daemons of an earlier attempt so that the configuration is read again.
for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
    pid=$(cat "$pidfile" 2>/dev/null)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    fi
    rm -f "$pidfile"
done

mkdir -p "$CONF_DIR" "$GPU_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
# gres needs File= (a Count-only gres drains the node), and slurmd sets CUDA_VISIBLE_DEVICES
# only for device files: harmless /dev/null-like nodes, else links to /dev/null and /dev/zero.
for i in 0 1; do
    f="$GPU_DIR/fakegpu$i"
    [ -c "$f" ] && continue
    rm -f "$f"
    mknod "$f" c 1 $((3 + 2 * i)) 2>/dev/null \
        || ln -s "/dev/$([ "$i" = 0 ] && echo null || echo zero)" "$f" 2>/dev/null || touch "$f"
done
printf '%s\n' "$CONF" >"$CONF_DIR/slurm.conf"
printf '%s\n' "$GRES" >"$CONF_DIR/gres.conf"
# A state dir from another host name gives "CLUSTER NAME MISMATCH" and slurmctld exits.
rm -f /var/spool/slurmctld/clustername

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

# munged first (as the munge user: it refuses root), then slurmctld, then slurmd.
if ! munge_ok; then
    [ -s /etc/munge/munge.key ] || mungekey --create >/dev/null 2>&1 \
        || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    if id munge >/dev/null 2>&1; then
        chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
        chmod 0400 /etc/munge/munge.key
        runuser -u munge -- munged >/tmp/setup-slurm-munged.log 2>&1 \
            || give_up "munged failed: $(cat /tmp/setup-slurm-munged.log)"
    else
        munged --force >/tmp/setup-slurm-munged.log 2>&1 \
            || give_up "munged failed: $(cat /tmp/setup-slurm-munged.log)"
    fi
    for _ in $(seq 20); do munge_ok && break; sleep 0.25; done
    munge_ok || give_up "munged started but does not answer (munge -n | unmunge)."
fi

slurmctld || give_up "slurmctld did not start: $(tail -n 5 "$LOG_DIR/slurmctld.log" 2>/dev/null)"
for _ in $(seq 40); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.25; done
slurmd || give_up "slurmd did not start: $(tail -n 5 "$LOG_DIR/slurmd.log" 2>/dev/null)"

for _ in $(seq 60); do
    case "$(node_state)" in
        idle) say "up: node $NODE idle, partition debug, 2 fake GPUs in $GPU_DIR."; exit 0 ;;
        down*|drain*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 ;;
    esac
    sleep 0.5
done
give_up "node $NODE is '$(node_state)', not idle after 30 s: $(scontrol show node "$NODE" 2>&1 \
    | grep -io 'reason=.*') (logs: $LOG_DIR/slurmctld.log, $LOG_DIR/slurmd.log)."
