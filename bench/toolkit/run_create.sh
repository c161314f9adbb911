#!/usr/bin/env bash
# One record create per candidate: recordbase's own app on uvicorn and on granian, and minimal
# create endpoints (raw ASGI, FastAPI, Litestar; create_*.py) on uvicorn.
#   VENV=.venv OUT=/tmp/create-results ROUNDS=3 DURATION=8s ./run_create.sh [candidate ...]
# VENV must have recordbase installed (./dev.sh setup) plus granian, fastapi and litestar
# (pip install granian==2.8.7 fastapi==0.165.0 litestar==2.25.0; not in the lock).
# Each run gets a fresh SQLite file, a new admin key (CLI) and the type "contact" (API).
# Server pinned to core 0 (one worker), wrk pinned to core 1; candidates alternate
# (A B A B ...) and the order rotates each round.
set -euo pipefail
cd "$(dirname "$0")"
VENV=$(cd "${VENV:-../../.venv}" && pwd)
OUT=${OUT:-/tmp/create-results}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
PORT=${PORT:-18766}
export PYTHONDONTWRITEBYTECODE=1
mkdir -p "$OUT"
if ss -ltn | grep -q ":$PORT "; then echo "port $PORT is in use; set PORT=" >&2; exit 1; fi

UVICORN="$VENV/bin/uvicorn --port $PORT --workers 1 --loop uvloop --http httptools --no-access-log --log-level warning"
GRANIAN="$VENV/bin/granian --port $PORT --interface asgi --workers 1 --loop uvloop --no-access-log --log-level warning"
declare -A CMD=(
  [recordbase-uvicorn]="$UVICORN --factory recordbase.app:create_app"
  [recordbase-granian]="$GRANIAN --factory recordbase.app:create_app"
  [raw-uvicorn]="$UVICORN create_raw:app"
  [fastapi-uvicorn]="$UVICORN create_fastapi:app"
  [litestar-uvicorn]="$UVICORN create_litestar:app"
)
if [ $# -gt 0 ]; then ORDER=("$@"); else
  ORDER=(recordbase-uvicorn recordbase-granian recordbase-uvicorn raw-uvicorn
         recordbase-uvicorn fastapi-uvicorn recordbase-uvicorn litestar-uvicorn)
fi
BODY=$(sed -n 's/^wrk.body = \[\[\(.*\)\]\]$/\1/p' post_create.lua)
URL="http://127.0.0.1:$PORT/v1/types/contact/records"

stop_server() {  # SIGTERM the group, then SIGKILL if anything is left
  kill -TERM -- "-$1" 2>/dev/null || true
  for _ in $(seq 50); do ps -g "$1" >/dev/null 2>&1 || return 0; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null || true
}

[ -f "$OUT/results.csv" ] || echo "round,candidate,rps,p99,idle_rss_kb" > "$OUT/results.csv"
for r in $(seq "$ROUNDS"); do
  n=${#ORDER[@]}; s=$(( (r - 1) % n ))
  for i in $(seq 0 $((n - 1))); do
    name=${ORDER[$(( (i + s) % n ))]}
    log="$OUT/$name.r$r.$i"
    db=$(mktemp -d /tmp/rb-create-bench.XXXXXX)/bench.db
    key=$(timeout 30 "$VENV/bin/recordbase" keys create --db "$db" --project bench --scope admin | tail -1)
    export RB_KEY=$key
    # the type, through recordbase's API (in-process, before the server starts, so every
    # candidate, including the minimal apps without a types route, gets the same setup)
    RECORDBASE_DATABASE_URL=$db timeout 30 "$VENV/bin/python" - <<'PY'
import os
from starlette.testclient import TestClient
from recordbase.app import create_app
with TestClient(create_app()) as c:
    r = c.post("/v1/types", json={"key": "contact", "schema": {"type": "object"}},
               headers={"Authorization": "Bearer " + os.environ["RB_KEY"]})
    assert r.status_code == 201, r.text
PY
    # own session => own process group; hard time cap of 60 s per server
    RECORDBASE_DATABASE_URL=$db RECORDBASE_DEFAULT_RATE=1000000 RECORDBASE_DEFAULT_BURST=1000000 \
      setsid timeout -k 5 60 taskset -c 0 ${CMD[$name]} >"$log.server" 2>&1 &
    pgid=$!
    trap 'stop_server $pgid' EXIT
    for _ in $(seq 100); do  # up when a create answers
      code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
        -H "Authorization: Bearer $key" --data "$BODY" "$URL" || true)
      [ "$code" != "000" ] && break; sleep 0.1
    done
    sleep 1; rss=$(ps -o rss= -g "$pgid" | awk '{s+=$1} END {print s+0}')
    check=$(curl -s -m 5 -w ' %{http_code}' -X POST -H 'content-type: application/json' \
      -H "Authorization: Bearer $key" --data "$BODY" "$URL")
    case "$check" in *'"records":[{"id"'*' 201') ;; *) echo "WARN: $name create check: $check" >&2 ;; esac
    timeout 10 taskset -c 1 wrk -t1 -c32 -d2s -s post_create.lua "$URL" >/dev/null  # warm-up
    load=$(cut -d' ' -f1 /proc/loadavg)
    timeout 30 taskset -c 1 wrk -t1 -c32 -d"$DURATION" --latency -s post_create.lua "$URL" > "$log.wrk"
    rps=$(awk '/^Requests\/sec/ {print $2}' "$log.wrk")
    p99=$(awk '$1 == "99%" {print $2}' "$log.wrk")
    errs=$(grep -E 'Non-2xx|Socket errors' "$log.wrk" || true)
    [ -n "$errs" ] && echo "WARN: $name r$r: $errs" >&2
    echo "$r,$name,$rps,$p99,$rss" | tee -a "$OUT/results.csv"
    echo "$r,$name,load1=$load" >> "$OUT/load.csv"
    stop_server "$pgid"; trap - EXIT
    rm -rf "$(dirname "$db")"
  done
done
if pgrep -f "create_(raw|fastapi|litestar):app|recordbase.app:create_app" >/dev/null; then
  echo "WARN: a server is still running" >&2
fi
"$VENV/bin/python" summarize.py "$OUT/results.csv"
