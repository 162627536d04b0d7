#!/usr/bin/env bash
# Data-path benchmarks of the release `dashtam` binary on SQLite (issues 9 and 10):
#
#   bench/data.sh [--no-build] [--postgres]
#
# With --postgres the same runs on a fresh PostgreSQL database (BENCH_PG_URL, default
# postgres://postgres@127.0.0.1:5432) plus Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379).
#
#   1. import a generated 100,000-transaction OFX with `dashtam import` (wall time and peak RSS), then again
#      (every transaction a duplicate);
#   2. GET /api/v1/transactions: the first page and a page 50,000 rows deep in the cursor (wrk, p50/p99);
#   3. GET /api/v1/net-worth for two years by day (wrk);
#   4. a sandbox sync writing about 10,000 transactions (wall time of POST /providers/{id}/sync).
#
# Loopback only, bounded in time; prints a Markdown table and writes it to bench/results/data.md.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$BENCH_DIR")"
RESULTS_DIR="$BENCH_DIR/results"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_DIR/target}"
BIN="$TARGET_DIR/release/dashtam"
DURATION="${BENCH_DURATION:-10}"
COUNT="${BENCH_IMPORT_COUNT:-100000}"
EMAIL="data-bench@example.com"
PASSWORD="benchmark passphrase 2026"

log() { printf '[data-bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

BUILD=1
POSTGRES=0
for argument in "$@"; do
    case "$argument" in
        --no-build) BUILD=0 ;;
        --postgres) POSTGRES=1 ;;
        *) die "unknown argument $argument" ;;
    esac
done
command -v wrk >/dev/null || die "wrk is not installed (apt-get install -y wrk)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is not installed (apt-get install -y time)"
if ((BUILD)); then
    log "building the release binary and the OFX generator"
    (cd "$REPO_DIR" && cargo build --release --quiet -p dashtam-server && cargo build --release --quiet -p dashtam-import --examples)
fi
[[ -x "$BIN" ]] || die "$BIN not found; run without --no-build"

TMP_DIR="$(mktemp -d)"
SERVER_PID=""
PG_DATABASE=""
PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}"
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    [[ -n "$PG_DATABASE" ]] && psql -X -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $PG_DATABASE WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$TMP_DIR"
}
trap cleanup EXIT
mkdir -p "$RESULTS_DIR"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
export DASHTAM_DATA_DIR="$TMP_DIR/data" DASHTAM_BIND="127.0.0.1:$PORT" DASHTAM_LOG__FILTER=warn
export DASHTAM_RATE_LIMIT__ENABLED=false DASHTAM_SYNC__SCHEDULER=false DASHTAM_HTTP__TOTAL_TIMEOUT=60s
export DASHTAM_HTTP__READ_TIMEOUT=60s DASHTAM_SERVER__REQUEST_TIMEOUT=120s
# The 100,000-transaction file is about 18 MB, above the 10 MiB default.
export DASHTAM_IMPORTS__MAX_FILE_SIZE=67108864
unset DASHTAM_CONFIG DASHTAM_DATABASE_URL DASHTAM_REDIS_URL
BACKEND="SQLite"
if ((POSTGRES)); then
    PG_DATABASE="dashtam_bench_$$"
    psql -X -q "$PG_URL/postgres" -c "CREATE DATABASE $PG_DATABASE" || die "cannot create a PostgreSQL database at $PG_URL"
    export DASHTAM_DATABASE_URL="$PG_URL/$PG_DATABASE" DASHTAM_REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
    BACKEND="PostgreSQL + Redis"
fi

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 |"); log "$1: $2 ($3)"; }

# --- 1. import -------------------------------------------------------------------------------------
"$TARGET_DIR/release/examples/write_large" "$COUNT" "$TMP_DIR/large.ofx"
printf '%s\n' "$PASSWORD" | "$BIN" user create --email "$EMAIL" --name "Data Bench" >/dev/null
for run in first repeat; do
    /usr/bin/time -f '%e %M' -o "$TMP_DIR/time" "$BIN" import "$TMP_DIR/large.ofx" --user "$EMAIL" >"$TMP_DIR/import.out"
    read -r seconds rss_kib <"$TMP_DIR/time"
    row "import $COUNT-transaction OFX ($run)" "${seconds} s, peak RSS $((rss_kib / 1024)) MiB" "$(head -c 160 "$TMP_DIR/import.out")"
done

# --- the server -------------------------------------------------------------------------------------
"$BIN" serve >"$RESULTS_DIR/data-server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 150); do curl -fsS -o /dev/null "$BASE/health" 2>/dev/null && break; sleep 0.2; done
TOKEN="$(curl -fsS "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
cat >"$TMP_DIR/auth.lua" <<EOF
wrk.headers["authorization"] = "Bearer $TOKEN"
EOF

# wrk_row <label> <path>: p50/p99 and throughput at 1 and 16 connections.
wrk_row() {
    local label="$1" path="$2" connections out
    for connections in 1 16; do
        out="$(wrk --latency -d "${DURATION}s" -t "$((connections < 2 ? 1 : 2))" -c "$connections" -s "$TMP_DIR/auth.lua" "$BASE$path")"
        local p50 p99 rps non2xx
        p50="$(awk '$1 == "50%" { print $2 }' <<<"$out")"
        p99="$(awk '$1 == "99%" { print $2 }' <<<"$out")"
        rps="$(awk '/Requests\/sec/ { print $2 }' <<<"$out")"
        non2xx="$(awk '/Non-2xx/ { print $NF }' <<<"$out")"
        row "$label, $connections conn." "p50 $p50, p99 $p99" "${rps} req/s${non2xx:+, $non2xx non-2xx}"
    done
}

# --- 2. transaction pages ---------------------------------------------------------------------------
wrk_row "GET /transactions first page (100 rows)" "/api/v1/transactions?limit=100"
cursor=""
for _ in $(seq 1 100); do
    cursor="$(curl -fsS -H "authorization: Bearer $TOKEN" "$BASE/api/v1/transactions?limit=500${cursor:+&cursor=$cursor}" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"] or "")')"
done
[[ -n "$cursor" ]] || die "the cursor walk ended early"
wrk_row "GET /transactions page 50,000 rows deep" "/api/v1/transactions?limit=100&cursor=$cursor"

# --- 3. net worth ------------------------------------------------------------------------------------
from="$(date -u -d '730 days ago' +%F)"
to="$(date -u +%F)"
wrk_row "GET /net-worth 2 years by day" "/api/v1/net-worth?from=$from&to=$to&interval=day"

# --- 4. sandbox sync ---------------------------------------------------------------------------------
provider="$(curl -fsS "$BASE/api/v1/providers" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"provider_key":"sandbox","alias":"Bench sandbox"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
auth_url="$(curl -fsS -X POST "$BASE/api/v1/providers/$provider/authorization" -H "authorization: Bearer $TOKEN" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["auth_url"])')"
form="$(curl -fsS "$auth_url" | python3 -c '
import html, re, sys, urllib.parse
page = sys.stdin.read()
fields = re.findall(r"<input type=\"hidden\" name=\"([^\"]*)\" value=\"([^\"]*)\">", page)
fields = [(html.unescape(k), html.unescape(v)) for k, v in fields] + [("decision", "approve")]
print(urllib.parse.urlencode(fields))')"
callback="$(curl -fsS -o /dev/null -w '%{redirect_url}' -X POST "$BASE/sandbox/v1/oauth/authorize" --data "$form")"
curl -fsS -o /dev/null "$callback"
# About 13 trades a day per account over a year, plus the other activity: ~10,000 transactions in all.
curl -fsS -o /dev/null -X PUT "$BASE/sandbox/control/clients/dashtam-sandbox" -H 'content-type: application/json' \
    -d '{"transactions_per_day": 13}'
started="$(date +%s.%N)"
result="$(curl -fsS -X POST "$BASE/api/v1/providers/$provider/sync" -H "authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -d '{}')"
elapsed="$(python3 -c "print(f'{$(date +%s.%N) - $started:.2f}')")"
created="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["transactions"]["created"])' "$result")"
row "sandbox sync (first, one year)" "${elapsed} s" "$created transactions created"

{
    echo "Measured $(date -u +%F) on $(nproc) CPUs ($(uname -m)), $BACKEND, release build (bench/data.sh)."
    echo
    echo "| Benchmark | Result | Detail |"
    echo "|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} | tee "$RESULTS_DIR/data-$( ((POSTGRES)) && echo postgres || echo sqlite).md"
