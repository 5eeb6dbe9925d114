#!/usr/bin/env bash
# A real single-node Slurm cluster with accounting, for the slurm backend's integration tests and CI.
#
#   scripts/slurm_cluster.sh start|stop|status [DIR]     (default DIR: /tmp/harness-slurm; must run as root)
#
# start: munged (shared system daemon, started only if not running), MariaDB on 127.0.0.1 with its data dir under
# DIR, slurmdbd (so sacct reports cancelled and failed jobs), slurmctld and slurmd — all configured from files under
# DIR/etc with this machine's hostname, core count and memory. Idempotent: a running cluster is left as it is.
# The last line printed is `export SLURM_CONF=DIR/etc/slurm.conf`; sbatch/squeue/sacct (and so submitit) need it.
# stop: kills exactly the daemons this script started, by their PID files under DIR/run.
# Ports (override by env): SLURM_DB_PORT (MariaDB, 13306), SLURMDBD_PORT (16819), SLURMCTLD_PORT (16817),
# SLURMD_PORT (16818) — away from the defaults so a system Slurm or MariaDB does not collide.
# SLURM_MAX_ARRAY_SIZE (5): the cluster's MaxArraySize, small so that a sweep larger than one job array (submitted
# as several chained arrays) is exercised by the tests; Slurm's own default is 1001.
set -euo pipefail

CMD="${1:-status}"
DIR="${2:-/tmp/harness-slurm}"
DB_PORT="${SLURM_DB_PORT:-13306}"
DBD_PORT="${SLURMDBD_PORT:-16819}"
CTLD_PORT="${SLURMCTLD_PORT:-16817}"
SLURMD_PORT="${SLURMD_PORT:-16818}"
MAX_ARRAY_SIZE="${SLURM_MAX_ARRAY_SIZE:-5}"
DB_PASS="harness-slurmdb"
ETC="$DIR/etc"; RUN="$DIR/run"; LOG="$DIR/log"
export SLURM_CONF="$ETC/slurm.conf"

say() { echo "slurm_cluster: $*" >&2; }

alive() {  # alive PIDFILE -> 0 if the process named in it runs
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local secs="$1" what="$2"; shift 2
    for _ in $(seq $((secs * 5))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    say "timed out after ${secs}s waiting for $what"; return 1
}

write_configs() {
    local host cpus mem_mb
    host="$(hostname -s)"
    cpus="$(nproc)"
    # leave 5 % of memory out so slurmd never finds less than the node claims (which would drain it)
    mem_mb="$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.95}' /proc/meminfo)"
    mkdir -p "$ETC" "$RUN" "$LOG" "$DIR/state" "$DIR/spool"
    cat > "$ETC/slurm.conf" <<EOF
ClusterName=local
SlurmctldHost=$host
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
KillWait=5
MinJobAge=60
MaxArraySize=$MAX_ARRAY_SIZE
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    # slurmdbd reads slurmdbd.conf next to SLURM_CONF and refuses it unless it is 600 and owned by SlurmUser
    cat > "$ETC/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
    chown root:root "$ETC/slurmdbd.conf"
    chmod 600 "$ETC/slurmdbd.conf"
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
        else create-munge-key -f; fi
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    runuser -u munge -- /usr/sbin/munged
    wait_for 10 munged sh -c 'munge -n | unmunge'
    # munged writes its own pid file; remember it so stop ends only the munged this script started
    cp /run/munge/munged.pid "$RUN/munged.pid"
}

mysql_root() { mariadb --socket="$RUN/mysqld.sock" -u root "$@"; }

start_mariadb() {
    alive "$RUN/mysqld.pid" && return 0
    local data="$DIR/mysql"
    if [[ ! -d "$data/mysql" ]]; then
        mkdir -p "$data"
        chown mysql:mysql "$data"
        mariadb-install-db --user=mysql --datadir="$data" --skip-test-db >"$LOG/mariadb-install.log" 2>&1
    fi
    chown mysql:mysql "$RUN" 2>/dev/null || true
    chmod 755 "$RUN"
    # started by hand (no systemd): data dir, socket and pid file all under DIR, TCP on 127.0.0.1 only
    nohup mariadbd --user=mysql --datadir="$data" --socket="$RUN/mysqld.sock" --pid-file="$RUN/mysqld.pid" \
        --bind-address=127.0.0.1 --port="$DB_PORT" --log-error="$LOG/mariadb.log" \
        --innodb-buffer-pool-size=64M --skip-name-resolve >/dev/null 2>&1 &
    wait_for 60 mariadb mysql_root -e 'SELECT 1'
    mysql_root <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF
}

start_slurmdbd() {
    alive "$RUN/slurmdbd.pid" && return 0
    slurmdbd
    wait_for 60 slurmdbd sacctmgr -n list cluster
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx local; then
        sacctmgr -i add cluster local >/dev/null
    fi
}

start_slurm() {
    alive "$RUN/slurmctld.pid" || slurmctld
    wait_for 30 slurmctld scontrol ping
    alive "$RUN/slurmd.pid" || slurmd
    local host; host="$(hostname -s)"
    if ! wait_for 30 "node $host idle" sh -c "sinfo -h -n $host -o %t | grep -qx idle"; then
        # a node left down/drained by an earlier run comes back once resumed
        scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
        wait_for 30 "node $host idle" sh -c "sinfo -h -n $host -o %t | grep -qx idle"
    fi
}

stop_pidfile() {  # stop_pidfile NAME
    local pidfile="$RUN/$1.pid" pid
    if alive "$pidfile"; then
        pid="$(cat "$pidfile")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
        say "stopped $1 ($pid)"
    fi
    rm -f "$pidfile"
}

case "$CMD" in
    start)
        [[ "$(id -u)" == 0 ]] || { say "must run as root"; exit 1; }
        mkdir -p "$RUN" "$LOG"
        alive "$RUN/slurmctld.pid" || write_configs   # hostname, cores and memory read at each fresh start
        start_munge
        start_mariadb
        start_slurmdbd
        start_slurm
        say "cluster up: $(sinfo -h -o '%P %D %t %c cpus')"
        echo "export SLURM_CONF=$SLURM_CONF"
        ;;
    stop)
        # slurmd before slurmctld before slurmdbd before the database, then munged if this script started it
        for name in slurmd slurmctld slurmdbd mysqld munged; do stop_pidfile "$name"; done
        ;;
    status)
        for name in munged mysqld slurmdbd slurmctld slurmd; do
            if alive "$RUN/$name.pid"; then echo "$name running ($(cat "$RUN/$name.pid"))"; else echo "$name stopped"; fi
        done
        if alive "$RUN/slurmctld.pid"; then sinfo; fi
        echo "export SLURM_CONF=$SLURM_CONF"
        ;;
    *)
        echo "usage: $0 start|stop|status [DIR]" >&2; exit 2 ;;
esac
