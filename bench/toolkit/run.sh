#!/usr/bin/env bash
# Re-run the HTTP toolkit/server benchmark.
#   VENV=/path/to/venv OUT=/tmp/results ROUNDS=3 DURATION=8s ./run.sh
# Server pinned to core 0 (one worker), wrk pinned to core 1.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-/work/toolkit-bench/.venv}
OUT=${OUT:-/work/toolkit-bench/results}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
PORT=${PORT:-18765}
export PYTHONDONTWRITEBYTECODE=1
mkdir -p "$OUT"
if ss -ltn | grep -q ":$PORT "; then echo "port $PORT is in use; set PORT=" >&2; exit 1; fi

UVICORN="$VENV/bin/uvicorn --port $PORT --workers 1 --loop uvloop --http httptools --no-access-log --log-level warning"
GRANIAN="$VENV/bin/granian --port $PORT --interface asgi --workers 1 --loop uvloop --no-access-log --log-level warning"
declare -A CMD=(
  [starlette-uvicorn]="$UVICORN app_starlette:app"
  [starlette-granian]="$GRANIAN app_starlette:app"
  [raw-uvicorn]="$UVICORN app_raw:app"
  [raw-granian]="$GRANIAN app_raw:app"
  [fastapi-uvicorn]="$UVICORN app_fastapi:app"
  [litestar-uvicorn]="$UVICORN app_litestar:app"
)
ORDER=(starlette-uvicorn starlette-granian raw-uvicorn raw-granian fastapi-uvicorn litestar-uvicorn)
BODY=$(sed -n 's/^wrk.body = \[\[\(.*\)\]\]$/\1/p' post.lua)

tree_rss_kb() {  # summed RSS of every process in the process group
  ps -o rss= -g "$1" | awk '{s+=$1} END {print s+0}'
}

stop_server() {  # SIGTERM the group, then SIGKILL if anything is left
  kill -TERM -- "-$1" 2>/dev/null || true
  for _ in $(seq 50); do ps -g "$1" >/dev/null 2>&1 || return 0; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null || true
}

echo "round,candidate,rps,p99,idle_rss_kb" > "$OUT/results.csv"
for r in $(seq "$ROUNDS"); do
  # rotate the order each round so no candidate always runs first/last
  n=${#ORDER[@]}; s=$(( (r - 1) % n ))
  for i in $(seq 0 $((n - 1))); do
    name=${ORDER[$(( (i + s) % n ))]}
    log="$OUT/$name.r$r"
    # own session => own process group; hard time cap of 60 s per server
    setsid timeout -k 5 60 taskset -c 0 ${CMD[$name]} >"$log.server" 2>&1 &
    pgid=$!
    trap 'stop_server $pgid' EXIT
    for _ in $(seq 100); do
      curl -fs -o /dev/null -X POST -H 'content-type: application/json' \
        --data "$BODY" "http://127.0.0.1:$PORT/echo" && break; sleep 0.1
    done
    sleep 1; rss=$(tree_rss_kb "$pgid")
    curl -fs -X POST -H 'content-type: application/json' --data "$BODY" \
      "http://127.0.0.1:$PORT/echo" | cmp -s - <(printf %s "$BODY") \
      || echo "WARN: $name echo mismatch" >&2
    timeout 10 taskset -c 1 wrk -t1 -c32 -d2s -s post.lua "http://127.0.0.1:$PORT/echo" >/dev/null  # warm-up
    timeout 30 taskset -c 1 wrk -t1 -c32 -d"$DURATION" --latency -s post.lua \
      "http://127.0.0.1:$PORT/echo" > "$log.wrk"
    rps=$(awk '/^Requests\/sec/ {print $2}' "$log.wrk")
    p99=$(awk '$1 == "99%" {print $2}' "$log.wrk")
    errs=$(grep -E 'Non-2xx|Socket errors' "$log.wrk" || true)
    [ -n "$errs" ] && echo "WARN: $name r$r: $errs" >&2
    echo "$r,$name,$rps,$p99,$rss" | tee -a "$OUT/results.csv"
    stop_server "$pgid"; trap - EXIT
  done
done
if pgrep -f "app_(raw|starlette|fastapi|litestar):app" >/dev/null; then
  echo "WARN: a server is still running" >&2
fi
"$VENV/bin/python" summarize.py "$OUT/results.csv"
