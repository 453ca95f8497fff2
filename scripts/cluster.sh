#!/usr/bin/env bash
# Start or stop a Newsdesk deployment on this machine: one Redis (the job queue and the
# sources registry), one Chroma server, N API replicas, M queue workers and, optionally,
# feed watchers that put polls on the queue.
#
#   scripts/cluster.sh start      # starts everything, waits until it is ready
#   scripts/cluster.sh status     # which processes are alive
#   scripts/cluster.sh stop       # SIGTERM, then SIGKILL after STOP_GRACE seconds
#
# Settings (environment):
#   CLUSTER_DIR   where data, logs and pids go            (./data/cluster)
#   REPLICAS      API replicas                             (2)
#   WORKERS       queue workers (`newsdesk worker`)        (2)
#   WATCHERS      `newsdesk watch --queue` processes       (0)
#   API_PORTS     the replicas' ports, space-separated     (8000 8001 ...: API_PORT + i)
#   API_PORT      first replica port when API_PORTS unset  (8000)
#   API_HOST      interface the replicas bind              (127.0.0.1)
#   CHROMA_PORT   (8100)     REDIS_PORT (6379)
#   REDIS_FSYNC   appendfsync of the Redis AOF: always | everysec | no   (always)
#   READY_TIMEOUT seconds to wait for replicas and workers (300)
#   NEWSDESK      the newsdesk command                     (.venv/bin/newsdesk if present)
# Every other NEWSDESK_* variable is passed to the replicas and workers as it is.
#
# Ready means: Chroma answers its heartbeat, Redis answers PING, each replica's /readyz is
# 200 (model loaded), and each worker has registered with RQ (it registers only after it
# has loaded the model). pids are in $CLUSTER_DIR/pids/<name>.pid, logs in
# $CLUSTER_DIR/logs/<name>.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_DIR="${CLUSTER_DIR:-$ROOT/data/cluster}"
REPLICAS="${REPLICAS:-2}"
WORKERS="${WORKERS:-2}"
WATCHERS="${WATCHERS:-0}"
API_PORT="${API_PORT:-8000}"
API_HOST="${API_HOST:-127.0.0.1}"
CHROMA_PORT="${CHROMA_PORT:-8100}"
REDIS_PORT="${REDIS_PORT:-6379}"
REDIS_FSYNC="${REDIS_FSYNC:-always}"
READY_TIMEOUT="${READY_TIMEOUT:-300}"
STOP_GRACE="${STOP_GRACE:-10}"
if [[ -z "${NEWSDESK:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/newsdesk" ]]; then NEWSDESK="$ROOT/.venv/bin/newsdesk"; else NEWSDESK=newsdesk; fi
fi
if [[ -z "${CHROMA:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/chroma" ]]; then CHROMA="$ROOT/.venv/bin/chroma"; else CHROMA=chroma; fi
fi
PREFIX="${NEWSDESK_COLLECTION_PREFIX:-newsdesk}"

PIDS="$CLUSTER_DIR/pids"
LOGS="$CLUSTER_DIR/logs"

api_ports() {
    if [[ -n "${API_PORTS:-}" ]]; then
        echo "$API_PORTS"
    else
        local i ports=""
        for ((i = 0; i < REPLICAS; i++)); do ports+="$((API_PORT + i)) "; done
        echo "$ports"
    fi
}

die() { echo "cluster.sh: $*" >&2; exit 1; }

alive() { [[ -f "$PIDS/$1.pid" ]] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

launch() { # name command...: in the background, in its own session, its pid recorded
    local name="$1"; shift
    alive "$name" && die "$name is already running (pid $(cat "$PIDS/$name.pid")); stop first"
    setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$PIDS/$name.pid"
}

wait_until() { # description timeout command...
    local what="$1" timeout="$2"; shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what not ready after ${timeout}s (logs: $LOGS)"
        sleep 0.5
    done
}

replica_ready() { curl -fsS "http://$API_HOST:$1/readyz"; }

workers_registered() {
    local n
    n="$(redis-cli -p "$REDIS_PORT" SCARD "rq:workers:$PREFIX-ingest")"
    [[ "$n" -ge "$WORKERS" ]]
}

# The environment replicas, workers and watchers share.
CHILD_ENV=(env NEWSDESK_CHROMA_HOST=127.0.0.1 NEWSDESK_CHROMA_PORT="$CHROMA_PORT"
    NEWSDESK_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False
    NEWSDESK_MODEL_DIR="${NEWSDESK_MODEL_DIR:-$CLUSTER_DIR/models}")

start() {
    mkdir -p "$PIDS" "$LOGS" "$CLUSTER_DIR/redis" "$CLUSTER_DIR/chroma" "$CLUSTER_DIR/models"
    command -v redis-server >/dev/null || die "redis-server is not installed (scripts/system-deps.sh)"

    # appendfsync always: Redis writes and fsyncs its log before it replies, so a job the
    # API acknowledged survives a crash of the Redis machine too.
    launch redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$CLUSTER_DIR/redis" \
        --appendonly yes --appendfsync "$REDIS_FSYNC" --save "" --daemonize no
    launch chroma "$CHROMA" run --path "$CLUSTER_DIR/chroma" --host 127.0.0.1 --port "$CHROMA_PORT"
    wait_until redis 30 redis-cli -p "$REDIS_PORT" PING
    wait_until chroma 60 curl -fsS "http://127.0.0.1:$CHROMA_PORT/api/v2/heartbeat"

    # The first worker exports the model (ONNX) into the shared model dir; the others
    # start once it has, instead of all exporting it at once.
    local i
    for ((i = 1; i <= WORKERS; i++)); do
        launch "worker-$i" "${CHILD_ENV[@]}" NEWSDESK_DATA_DIR="$CLUSTER_DIR/worker-$i" \
            "$NEWSDESK" worker --name "worker-$i"
        if ((i == 1)); then
            WORKERS=1 wait_until "worker-1" "$READY_TIMEOUT" workers_registered
        fi
    done
    i=0
    for port in $(api_ports); do
        i=$((i + 1))
        launch "replica-$i" "${CHILD_ENV[@]}" NEWSDESK_DATA_DIR="$CLUSTER_DIR/replica-$i" \
            "$NEWSDESK" serve --host "$API_HOST" --port "$port"
    done
    for ((i = 1; i <= WATCHERS; i++)); do
        launch "watcher-$i" "${CHILD_ENV[@]}" NEWSDESK_DATA_DIR="$CLUSTER_DIR/watcher-$i" \
            "$NEWSDESK" watch --queue
    done
    for port in $(api_ports); do
        wait_until "replica on port $port" "$READY_TIMEOUT" replica_ready "$port"
    done
    wait_until "$WORKERS workers" "$READY_TIMEOUT" workers_registered
    echo "cluster ready: redis :$REDIS_PORT, chroma :$CHROMA_PORT, replicas $(api_ports| xargs | tr ' ' ,), $WORKERS worker(s), $WATCHERS watcher(s); pids in $PIDS"
}

stop() {
    [[ -d "$PIDS" ]] || return 0
    local f pid name
    # Clients first, the stores they write to last.
    for name in $(ls "$PIDS" | sed 's/\.pid$//' | grep -v -e '^redis$' -e '^chroma$') chroma redis; do
        f="$PIDS/$name.pid"
        [[ -f "$f" ]] || continue
        pid="$(cat "$f")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            local deadline=$((SECONDS + STOP_GRACE))
            while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
            # A worker finishes its task on SIGTERM; a task left now is run again by RQ.
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$f"
    done
}

status() {
    [[ -d "$PIDS" ]] || { echo "not started"; return 0; }
    local f name
    for f in "$PIDS"/*.pid; do
        [[ -e "$f" ]] || continue
        name="$(basename "$f" .pid)"
        if alive "$name"; then echo "$name $(cat "$f") up"; else echo "$name $(cat "$f") down"; fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
