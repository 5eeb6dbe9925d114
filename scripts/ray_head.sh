#!/usr/bin/env bash
# A local Ray head on 127.0.0.1 for the ray backend's integration tests and CI.
#
#   scripts/ray_head.sh start|stop|status [DIR]     (default DIR: /tmp/harness-ray)
#   scripts/ray_head.sh join DIR ADDRESS            a second Ray node on this machine, joining the head at ADDRESS
#
# start: `ray start --head` with auth disabled (Ray 2.60 turns token auth on by default; clients then need
# RAY_AUTH_MODE=disabled too), its session under DIR/ray, in a process group of its own whose id is kept in
# DIR/pgid. Prints `export RAY_ADDRESS=127.0.0.1:PORT RAY_AUTH_MODE=disabled` last. Idempotent.
# stop: kills only that process group (the head's daemons and the workers they forked) — never `ray stop`,
# which would kill every Ray process on the machine.
# join: `ray start --address ADDRESS` with RAY_NODE_CPUS (1) and RAY_NODE_RESOURCES (a JSON object, e.g.
# '{"node2": 1}'), in a process group of its own kept in DIR/pgid as for a head, so `stop DIR` ends that node only.
# Env: RAY_HEAD_PORT (26379), RAY_HEAD_CPUS (2), RAY_NODE_CPUS (1), RAY_NODE_RESOURCES ({}).
set -euo pipefail

CMD="${1:-status}"
DIR="${2:-/tmp/harness-ray}"
PORT="${RAY_HEAD_PORT:-26379}"
CPUS="${RAY_HEAD_CPUS:-2}"
NODE_CPUS="${RAY_NODE_CPUS:-1}"
NODE_RESOURCES="${RAY_NODE_RESOURCES:-{\}}"
TMP="$DIR/ray"
export RAY_AUTH_MODE=disabled

say() { echo "ray_head: $*" >&2; }

members() {  # PIDs of the head's process group (recorded at start)
    [[ -s "$DIR/pgid" ]] || return 0
    ps -e -o pid=,pgid=,stat= | awk -v g="$(cat "$DIR/pgid")" '$2 == g && $3 !~ /^Z/ {print $1}'
}

running() { [[ -n "$(members)" ]]; }

case "$CMD" in
    start)
        if running; then
            say "already running"
        else
            mkdir -p "$TMP"
            # its own session and process group, so that every process of this head (daemons, and the workers
            # the raylet forks later) can be found and stopped by that group id and nothing else
            setsid --wait bash -c 'echo $$ >"$0/pgid"; exec ray start --head --node-ip-address=127.0.0.1 \
                --port="$1" --num-cpus="$2" --include-dashboard=false --temp-dir="$3" --disable-usage-stats' \
                "$DIR" "$PORT" "$CPUS" "$TMP" >"$DIR/start.log" 2>&1 || { cat "$DIR/start.log" >&2; exit 1; }
            say "head up on 127.0.0.1:$PORT ($(members | wc -l) processes in group $(cat "$DIR/pgid"))"
        fi
        echo "export RAY_ADDRESS=127.0.0.1:$PORT RAY_AUTH_MODE=disabled"
        ;;
    join)
        ADDRESS="${3:?usage: $0 join DIR ADDRESS}"
        if running; then
            say "node already running"
        else
            mkdir -p "$DIR"
            setsid --wait bash -c 'echo $$ >"$0/pgid"; exec ray start --address="$1" --node-ip-address=127.0.0.1 \
                --num-cpus="$2" --resources="$3" --disable-usage-stats' \
                "$DIR" "$ADDRESS" "$NODE_CPUS" "$NODE_RESOURCES" >"$DIR/start.log" 2>&1 \
                || { cat "$DIR/start.log" >&2; exit 1; }
            say "node joined $ADDRESS ($(members | wc -l) processes in group $(cat "$DIR/pgid"))"
        fi
        ;;
    stop)
        if running; then
            pgid="$(cat "$DIR/pgid")"
            kill -TERM -- "-$pgid" 2>/dev/null || true
            for _ in $(seq 50); do running || break; sleep 0.2; done
            running && kill -KILL -- "-$pgid" 2>/dev/null || true
            say "stopped process group $pgid"
        fi
        rm -f "$DIR/pgid"
        ;;
    status)
        if running; then echo "running: $(members | tr '\n' ' ')"; else echo "stopped"; fi
        ;;
    *)
        echo "usage: $0 start|stop|status [DIR] | join DIR ADDRESS" >&2; exit 2 ;;
esac
