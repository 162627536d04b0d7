#!/usr/bin/env bash
# The benchmark suite of the `dashtam` server. See bench/README.md.
#
#   bench/run.sh [--postgres] [--record] [--no-build]
#
# Builds the release binary, prepares a throw-away SQLite database (and, with --postgres, a fresh PostgreSQL
# database plus Redis) holding a user, 50 sessions and 100,000 imported transactions (the import itself is
# measured), starts the server on a free loopback port, loads every endpoint below at every connection count
# with wrk while sampling the server's memory, times a sandbox sync, restarts the server with rate limiting on
# to measure the limiter's cost, and prints Markdown tables. They are written to bench/results/latest.md;
# with --record they also replace the results section of docs/benchmarks.md.
set -euo pipefail

# Endpoints under test, one per line: "name method path [lua-script [connections]]".
# `name` labels raw output files; a script is looked up in bench/lua/ and can set headers and bodies
# (wrk.method, wrk.headers, wrk.body); `-` means none. A non-GET method without a script gets a one-line
# script. `connections` (comma-separated) overrides BENCH_CONNECTIONS for that endpoint. In a path, {CURSOR}
# is a transactions cursor 50,000 rows deep and {FROM}/{TO} span the last two years.
ENDPOINTS=(
    "health       GET  /health"
    "ready        GET  /ready"
    "me           GET  /api/v1/auth/me  me.lua"
    "sessions     GET  /api/v1/auth/sessions  me.lua"
    "refresh      POST /api/v1/auth/refresh  refresh.lua"
    "login        POST /api/v1/auth/login  login.lua  1,16,256"
    "transactions GET  /api/v1/transactions?limit=100  me.lua"
    "tx-deep      GET  /api/v1/transactions?limit=100&cursor={CURSOR}  me.lua"
    "net-worth    GET  /api/v1/net-worth?from={FROM}&to={TO}&interval=day  me.lua"
)
# Measured again after a restart with rate limiting on, under a limit the load never reaches, so every
# request pays for the full check (the main run has rate limiting off: it would refuse most of the load).
readonly LIMITED_ENDPOINT="me-limited GET /api/v1/auth/me me.lua"
readonly LIMITER_ON=(DASHTAM_RATE_LIMIT__ENABLED=true
    'DASHTAM_RATE_LIMIT__RULES=[{name="api-reads", burst=1000000000, rate="1000000/s"}]')

# How the server and the CLI are started: with the settings this script gives them and none from the caller's
# configuration file or database URLs.
readonly CLEAN_ENV=(env -u DASHTAM_CONFIG -u DASHTAM_DATABASE_URL -u DASHTAM_REDIS_URL)

# The account the authenticated endpoints use; created with `dashtam user create` before the load.
readonly BENCH_EMAIL="loadtest@example.com"
readonly BENCH_PASSWORD="benchmark passphrase 2026"

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$BENCH_DIR")"
RESULTS_DIR="$BENCH_DIR/results"
DOC="$REPO_DIR/docs/benchmarks.md"
readonly BENCH_DIR REPO_DIR RESULTS_DIR DOC
readonly MARK_START='<!-- bench:results:start -->'
readonly MARK_END='<!-- bench:results:end -->'

DURATION="${BENCH_DURATION:-10}"
WARMUP="${BENCH_WARMUP:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-1 16 64}"
THREADS="${BENCH_THREADS:-2}"
STARTUP_TIMEOUT="${BENCH_STARTUP_TIMEOUT:-30}"
QUIET_WAIT="${BENCH_QUIET_WAIT:-0}"
# Only these endpoint names (space-separated), when set.
ONLY="${BENCH_ONLY:-}"
# Extra sessions (each with a refresh token) seeded before the load: with the benchmark's own session, the
# session list shows 50. Raise it to show that lookups do not slow down as the tables grow.
SEED_SESSIONS="${BENCH_SEED_SESSIONS:-49}"
# Transactions in the generated OFX statement imported before the load.
IMPORT_COUNT="${BENCH_IMPORT_COUNT:-100000}"
# Sandbox activity per account and day for the timed sync (13 a day over a year is ~10,000 transactions).
SYNC_PER_DAY="${BENCH_SYNC_PER_DAY:-13}"
# PostgreSQL + Redis: "auto" runs them when both answer, 1 requires them, 0 skips them.
POSTGRES="${BENCH_POSTGRES:-auto}"
PG_HOST="${BENCH_PG_HOST:-127.0.0.1}"
PG_PORT="${BENCH_PG_PORT:-5432}"
PG_USER="${BENCH_PG_USER:-postgres}"
REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
RECORD=0
BUILD=1
AUDIT_OFF=0
# CPU use (percent of all CPUs), measured with the server idle before each row, above which the row is
# considered disturbed by other work.
readonly BUSY_WARN=10

# State shared between the functions below; the cleanup trap needs the first three.
TMP_DIR=""
SERVER_PID=""
PG_DB=""
BIN=""
BASE_URL=""
SERVER_LOG=""
SERVER_ENV=()
WRK_ARGS=()
ROWS=()
ONE_SHOT=()
MEMORY=()
# Settings shared by the server and the CLI commands run against the same backend (set by backend_env).
BACKEND_ENV=()
BACKEND_LABEL=""
DATA_DIR=""
RSS_PEAK_FILE=""
OFX_FILE=""
CURSOR=""
FROM=""
TO=""
BACKGROUND=()
NOTES=()
MAX_BUSY=0
BACKEND_BUSY=0

usage() {
    cat <<'EOF'
Usage: bench/run.sh [--postgres | --sqlite] [--record] [--no-build] [--audit-off]

  --postgres   require PostgreSQL + Redis (same as BENCH_POSTGRES=1; by default they are used when reachable)
  --sqlite     SQLite only (same as BENCH_POSTGRES=0)
  --record     replace the results section of docs/benchmarks.md with this run
  --no-build   use the existing release binary instead of running cargo build
  --audit-off  measure a build whose audit log writes nothing (feature benchmark-without-audit, built into
               target/audit-off): what auditing costs is the difference to a normal run

Environment (defaults in brackets):
  BENCH_DURATION         seconds per measurement [10]
  BENCH_WARMUP           seconds of discarded load per endpoint, 0 to skip [2]
  BENCH_CONNECTIONS      connection counts, space separated ["1 16 64"]
  BENCH_THREADS          wrk threads (capped at the connection count) [2]
  BENCH_STARTUP_TIMEOUT  seconds to wait for /health after start [30]
  BENCH_SEED_SESSIONS    extra sessions seeded before the load [49]
  BENCH_IMPORT_COUNT     transactions in the imported OFX statement [100000]
  BENCH_SYNC_PER_DAY     sandbox transactions per account and day for the timed sync [13]
  BENCH_ONLY             only these endpoint names, space separated (the one-shot rows always run)
  BENCH_QUIET_WAIT       seconds to wait before each row for other work to leave the CPUs idle [0]
  BENCH_PG_HOST, BENCH_PG_PORT, BENCH_PG_USER   PostgreSQL [127.0.0.1, 5432, postgres]
  BENCH_REDIS_URL        Redis for the PostgreSQL run [redis://127.0.0.1:6379]
  CARGO_TARGET_DIR       honoured when locating target/release/dashtam
EOF
}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------------
# Setup and teardown

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        local waited=0
        while kill -0 "$SERVER_PID" 2>/dev/null && ((waited < 100)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            log "server $SERVER_PID ignored SIGTERM for 10 s; killing it"
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

drop_database() {
    [[ -n "$PG_DB" ]] || return 0
    dropdb --if-exists -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$PG_DB" \
        || log "could not drop database $PG_DB; drop it by hand"
    PG_DB=""
}

cleanup() {
    stop_server
    drop_database
    if [[ -n "$TMP_DIR" ]]; then
        rm -rf -- "$TMP_DIR"
    fi
}

parse_args() {
    while (($# > 0)); do
        case "$1" in
            --postgres) POSTGRES=1 ;;
            --sqlite) POSTGRES=0 ;;
            --record) RECORD=1 ;;
            --no-build) BUILD=0 ;;
            --audit-off) AUDIT_OFF=1 ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; die "unknown option: $1" ;;
        esac
        shift
    done
    [[ "$POSTGRES" =~ ^(auto|0|1)$ ]] || die "BENCH_POSTGRES must be auto, 0 or 1"
    ((AUDIT_OFF && RECORD)) && die "--audit-off figures are a comparison, not results: they are never recorded"
    [[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "BENCH_DURATION must be a whole number of seconds"
    [[ "$WARMUP" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a whole number of seconds"
    [[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_THREADS must be a positive integer"
    [[ "$STARTUP_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "BENCH_STARTUP_TIMEOUT must be a positive integer"
    [[ "$QUIET_WAIT" =~ ^[0-9]+$ ]] || die "BENCH_QUIET_WAIT must be a whole number of seconds"
    [[ "$SEED_SESSIONS" =~ ^[0-9]+$ ]] || die "BENCH_SEED_SESSIONS must be a whole number"
    [[ "$IMPORT_COUNT" =~ ^[1-9][0-9]*$ ]] || die "BENCH_IMPORT_COUNT must be a positive integer"
    [[ "$SYNC_PER_DAY" =~ ^[1-9][0-9]*$ ]] || die "BENCH_SYNC_PER_DAY must be a positive integer"
    local connections
    for connections in $CONNECTIONS; do
        [[ "$connections" =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNECTIONS: '$connections' is not a positive integer"
    done
    [[ -n "${CONNECTIONS// /}" ]] || die "BENCH_CONNECTIONS is empty"
}

require_tools() {
    if ! command -v wrk >/dev/null; then
        if ((EUID == 0)) && command -v apt-get >/dev/null; then
            log "wrk is missing; installing it with apt-get"
            apt-get install -y wrk >&2 || { apt-get update >&2 && apt-get install -y wrk >&2; } \
                || die "could not install wrk"
        else
            die "wrk is not installed: run 'sudo apt-get install -y wrk' (Debian/Ubuntu)" \
                "or see https://github.com/wg/wrk"
        fi
    fi
    local tool
    for tool in curl cargo python3; do
        command -v "$tool" >/dev/null || die "$tool is required"
    done
    [[ -x /usr/bin/time ]] || die "/usr/bin/time is required to measure the import (apt-get install -y time)"
    command -v sqlite3 >/dev/null || die "sqlite3 is required to seed sessions (apt-get install -y sqlite3)"
    if [[ "$POSTGRES" == auto ]]; then
        POSTGRES=0
        if command -v pg_isready >/dev/null && pg_isready -q -h "$PG_HOST" -p "$PG_PORT" \
            && command -v redis-cli >/dev/null && [[ "$(redis-cli -u "$REDIS_URL" ping 2>/dev/null)" == PONG ]]; then
            POSTGRES=1
        else
            log "PostgreSQL ($PG_HOST:$PG_PORT) or Redis ($REDIS_URL) is not answering: SQLite only"
        fi
    fi
    if ((POSTGRES)); then
        for tool in createdb dropdb; do
            command -v "$tool" >/dev/null || die "$tool (PostgreSQL client) is required for --postgres"
        done
    fi
}

build() {
    local target_dir="${CARGO_TARGET_DIR:-$REPO_DIR/target}"
    [[ "$target_dir" == /* ]] || target_dir="$REPO_DIR/$target_dir"
    BIN="$target_dir/release/dashtam"
    local generator="$target_dir/release/examples/write_large"
    # The build without auditing goes to a target directory of its own, so that no later run can take it
    # for the real binary.
    local -a server_build=(cargo build --release --quiet -p dashtam-server)
    if ((AUDIT_OFF)); then
        BIN="$target_dir/audit-off/release/dashtam"
        server_build+=(--features benchmark-without-audit --target-dir "$target_dir/audit-off")
        NOTES+=("- Measured with the audit log OFF (a \`benchmark-without-audit\` build), for comparison only.")
    fi
    if ((BUILD)); then
        log "building the release binary and the OFX generator"
        (cd "$REPO_DIR" && "${server_build[@]}" \
            && cargo build --release --quiet -p dashtam-import --example write_large)
    fi
    [[ -x "$BIN" ]] || die "$BIN not found; run without --no-build"
    [[ -x "$generator" ]] || die "$generator not found; run without --no-build"
    OFX_FILE="$TMP_DIR/statement.ofx"
    "$generator" "$IMPORT_COUNT" "$OFX_FILE" || die "could not generate the OFX statement"
}

free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    local port attempt
    for attempt in $(seq 1 50); do
        port=$((20000 + (RANDOM + attempt) % 20000))
        # Nothing listening when the connection is refused.
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "found no free port"
}

# ---------------------------------------------------------------------------------------------------
# Server

# backend_env <label> [VAR=value...]: the settings of one backend, for the server and the CLI alike: a fresh
# data directory, rate limiting and the sync scheduler off (the load would be refused; scheduled syncs would
# compete with it), room for the large statement, log level warn (per-request logs would be measured too).
backend_env() {
    BACKEND_LABEL="$1"
    shift
    DATA_DIR="$TMP_DIR/$BACKEND_LABEL"
    mkdir -p "$DATA_DIR"
    BACKEND_ENV=(DASHTAM_DATA_DIR="$DATA_DIR" DASHTAM_LOG__FILTER=warn DASHTAM_RATE_LIMIT__ENABLED=false
        DASHTAM_SYNC__SCHEDULER=false DASHTAM_IMPORTS__MAX_FILE_SIZE=268435456 DASHTAM_HTTP__TOTAL_TIMEOUT=60s
        DASHTAM_HTTP__READ_TIMEOUT=60s DASHTAM_SERVER__REQUEST_TIMEOUT=120s "$@")
}

# dashtam <args...>: the CLI against the current backend.
dashtam() {
    "${CLEAN_ENV[@]}" "${BACKEND_ENV[@]}" "$BIN" "$@"
}

# start_server <log suffix> [VAR=value...]: starts dashtam on the current backend and waits for /health.
start_server() {
    local label="$BACKEND_LABEL$1"
    shift
    local port
    port="$(free_port)"
    BASE_URL="http://127.0.0.1:$port"
    SERVER_LOG="$RESULTS_DIR/server-$label.log"
    SERVER_ENV=("${BACKEND_ENV[@]}" DASHTAM_BIND="127.0.0.1:$port" "$@")
    "${CLEAN_ENV[@]}" "${SERVER_ENV[@]}" \
        "$BIN" serve >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    log "started $label server (pid $SERVER_PID) on $BASE_URL"

    local deadline=$((SECONDS + STARTUP_TIMEOUT))
    until curl -fsS --max-time 1 -o /dev/null "$BASE_URL/health" 2>/dev/null; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -n 20 "$SERVER_LOG" >&2
            die "the $label server exited during startup (log: $SERVER_LOG)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$SERVER_LOG" >&2
            die "the $label server did not answer /health within ${STARTUP_TIMEOUT}s"
        fi
        sleep 0.2
    done
}

# proc_status_mib <field>: a kB field of the server's /proc status, in MiB.
proc_status_mib() {
    awk -v field="$1:" '$1 == field { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"
}

# cpu_busy_percent: how busy all CPUs are over one second, in percent (from /proc/stat).
cpu_busy_percent() {
    local -a before after
    read -r -a before </proc/stat
    sleep 1
    read -r -a after </proc/stat
    # Fields 1-8 of the "cpu" line: user nice system idle iowait irq softirq steal.
    awk -v before="${before[*]:1:8}" -v after="${after[*]:1:8}" 'BEGIN {
        split(before, b); split(after, a)
        for (i = 1; i <= 8; i++) { delta = a[i] - b[i]; total += delta; if (i == 4 || i == 5) idle += delta }
        printf "%.0f", (total > 0 ? 100 * (total - idle) / total : 0)
    }'
}

# background_cpu_percent: cpu_busy_percent with the server idle, resampled for up to QUIET_WAIT seconds
# while it is above BUSY_WARN; prints the last sample.
background_cpu_percent() {
    local busy deadline=$((SECONDS + QUIET_WAIT))
    busy="$(cpu_busy_percent)"
    while ((busy > BUSY_WARN && SECONDS < deadline)); do
        busy="$(cpu_busy_percent)"
    done
    echo "$busy"
}

# ---------------------------------------------------------------------------------------------------
# Load

# wrk_args <connections> <method> <script>: sets WRK_ARGS for one run.
wrk_args() {
    local connections="$1" method="$2" script="$3"
    local threads=$((THREADS < connections ? THREADS : connections))
    # Refresh chains need strictly sequential requests per session: one thread per connection.
    if [[ "$script" == refresh.lua ]]; then threads=$connections; fi
    # A generous client timeout: queueing behind the bounded password hashing is latency, not an error.
    WRK_ARGS=(--latency --timeout 10s -t "$threads" -c "$connections")
    if [[ -n "$script" ]]; then
        WRK_ARGS+=(-s "$BENCH_DIR/lua/$script")
    elif [[ "$method" != GET ]]; then
        local generated="$TMP_DIR/method-$method.lua"
        printf 'wrk.method = "%s"\n' "$method" >"$generated"
        WRK_ARGS+=(-s "$generated")
    fi
}

# parse_wrk <file>: prints "req/s|p50 ms|p99 ms|errors|elapsed ms" from wrk --latency output.
parse_wrk() {
    awk '
        function ms(value) {
            if (value ~ /us$/) return value / 1000
            if (value ~ /ms$/) return value + 0
            if (value ~ /s$/) return value * 1000
            if (value ~ /m$/) return value * 60000
            return value + 0
        }
        function fmt(value) { return sprintf(value < 10 ? "%.3f" : "%.1f", value) }
        / requests in / { elapsed = $4; sub(",", "", elapsed) }
        /^Requests\/sec:/ { rps = $2 }
        $1 == "50%" { p50 = $2 }
        $1 == "99%" { p99 = $2 }
        /Socket errors:/ { gsub(",", ""); errors += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { errors += $NF }
        END {
            if (rps == "" || p50 == "" || p99 == "" || elapsed == "") exit 1
            printf "%.0f|%s|%s|%d|%.0f\n", rps, fmt(ms(p50)), fmt(ms(p99)), errors, ms(elapsed)
        }
    ' "$1"
}

# login_body: the benchmark account's login request body.
login_body() {
    printf '{"email":"%s","password":"%s"}' "$BENCH_EMAIL" "$BENCH_PASSWORD"
}

# json_field <name>: one top-level field of the JSON document on standard input ("" for null).
json_field() {
    python3 -c 'import json, sys; value = json.load(sys.stdin)[sys.argv[1]]; print("" if value is None else value)' "$1"
}

# api <curl args...>: an authenticated call to the running server; prints the body, fails on non-2xx.
api() {
    curl -fsS --max-time 120 -H "authorization: Bearer $BENCH_ACCESS_TOKEN" "$@"
}

# one_shot <what> <result> <detail>: a row of the one-shot table.
one_shot() {
    ONE_SHOT+=("| $BACKEND_LABEL | $1 | $2 | $3 |")
    log "    $1: $2 ($3)"
}

# import_statement <run>: `dashtam import` of the generated statement into the benchmark account, timed.
import_statement() {
    local run="$1" seconds rss_kib summary
    log "$BACKEND_LABEL: importing $IMPORT_COUNT transactions ($run)"
    /usr/bin/time -f '%e %M' -o "$TMP_DIR/time" \
        "${CLEAN_ENV[@]}" "${BACKEND_ENV[@]}" \
        "$BIN" import "$OFX_FILE" --user "$BENCH_EMAIL" >"$TMP_DIR/import.out" 2>&1 \
        || { cat "$TMP_DIR/import.out" >&2; die "the import failed"; }
    read -r seconds rss_kib <"$TMP_DIR/time"
    summary="$(tr '\n' ' ' <"$TMP_DIR/import.out" | head -c 160)"
    one_shot "\`dashtam import\` of a $IMPORT_COUNT-transaction OFX ($run)" \
        "$seconds s, peak RSS $((rss_kib / 1024)) MiB" "$summary"
}

# prepare_data: the benchmark account, its statement import (measured twice: new, then all duplicates) and
# the extra sessions, all before the server starts.
prepare_data() {
    printf '%s\n' "$BENCH_PASSWORD" | dashtam user create --email "$BENCH_EMAIL" --name Bench >/dev/null \
        || die "could not create the benchmark account"
    import_statement first
    import_statement "again: every transaction a duplicate"
    if ((SEED_SESSIONS > 0)); then seed_sessions "$SEED_SESSIONS"; fi
}

# log_in: an access token for the authenticated endpoints, and the cursor and dates their paths use.
log_in() {
    BENCH_ACCESS_TOKEN="$(curl -fsS --max-time 10 -H 'content-type: application/json' -d "$(login_body)" \
        "$BASE_URL/api/v1/auth/login" | json_field access_token)" || die "the benchmark account could not log in"
    export BENCH_ACCESS_TOKEN BENCH_EMAIL BENCH_PASSWORD
    export BENCH_REFRESH_TOKENS="$TMP_DIR/refresh-tokens.txt"
    FROM="$(date -u -d '730 days ago' +%F)"
    TO="$(date -u +%F)"
}

# deep_cursor: walks the transaction list 50,000 rows deep (100 pages of 500) and keeps that cursor.
deep_cursor() {
    local page
    CURSOR=""
    for ((page = 0; page < 100; page++)); do
        CURSOR="$(api "$BASE_URL/api/v1/transactions?limit=500${CURSOR:+&cursor=$CURSOR}" | json_field next_cursor)" \
            || die "walking the transaction list failed"
        [[ -n "$CURSOR" ]] || die "the transaction list ended after $((page + 1)) pages; raise BENCH_IMPORT_COUNT"
    done
}

# seed_sessions <count>: that many extra sessions of the benchmark account, each with a refresh token, written
# straight into the database (SQLite file or PostgreSQL) so preparing 100 000 of them takes seconds.
seed_sessions() {
    local count="$1"
    log "seeding $count sessions with refresh tokens"
    if [[ -n "$PG_DB" ]]; then
        psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" <<SQL
INSERT INTO sessions (id, user_id, created_at, last_activity_at, expires_at)
SELECT gen_random_uuid(), (SELECT id FROM users LIMIT 1), now(), now(), now() + interval '30 days'
FROM generate_series(1, $count);
INSERT INTO refresh_tokens (id, session_id, token_hash, created_at)
SELECT gen_random_uuid(), id, sha256(id::text::bytea), now() FROM sessions
WHERE id NOT IN (SELECT session_id FROM refresh_tokens);
SQL
    else
        # The timestamps in the format sqlx writes, or the rows could not be read back.
        sqlite3 "$DATA_DIR/dashtam.db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $count)
INSERT INTO sessions (id, user_id, created_at, last_activity_at, expires_at)
SELECT randomblob(16), (SELECT id FROM users LIMIT 1), '2026-01-01 00:00:00+00:00',
       '2026-01-01 00:00:00+00:00', '2099-01-01 00:00:00+00:00' FROM n;
INSERT INTO refresh_tokens (id, session_id, token_hash, created_at)
SELECT randomblob(16), id, randomblob(32), '2026-01-01 00:00:00+00:00' FROM sessions
WHERE id NOT IN (SELECT session_id FROM refresh_tokens);
SQL
    fi
}

# fresh_refresh_tokens <count>: one new session per wrk thread, its refresh token on a line of its own.
fresh_refresh_tokens() {
    local count="$1"
    : >"$BENCH_REFRESH_TOKENS"
    for ((i = 0; i < count; i++)); do
        curl -fsS --max-time 10 -H 'content-type: application/json' -d "$(login_body)" \
            "$BASE_URL/api/v1/auth/login" | json_field refresh_token >>"$BENCH_REFRESH_TOKENS" \
            || die "login for a refresh session failed"
    done
}

# server_rss_kib: the server's resident set size now, in KiB.
server_rss_kib() {
    local key value _
    while read -r key value _; do
        if [[ "$key" == VmRSS: ]]; then
            echo "$value"
            return
        fi
    done <"/proc/$SERVER_PID/status"
}

# sample_rss: until killed, keeps the highest server RSS seen (sampled every 0.1 s) in RSS_PEAK_FILE.
sample_rss() {
    local peak=0 rss
    while rss="$(server_rss_kib)"; do
        if ((rss > peak)); then
            peak=$rss
            echo "$peak" >"$RSS_PEAK_FILE"
        fi
        sleep 0.1
    done
}

# run_wrk <seconds> <output file> <url>: one wrk run with WRK_ARGS, bounded in time, while sampling the
# server's memory into RSS_PEAK_FILE.
run_wrk() {
    local seconds="$1" output="$2" url="$3" sampler
    # A refresh run starts from sessions no earlier run has rotated.
    if [[ " ${WRK_ARGS[*]} " == *"/lua/refresh.lua "* ]]; then
        local threads
        threads="$(awk '{ for (i = 1; i < NF; i++) if ($i == "-t") print $(i + 1) }' <<<"${WRK_ARGS[*]}")"
        fresh_refresh_tokens "$threads"
    fi
    RSS_PEAK_FILE="$TMP_DIR/rss-peak"
    server_rss_kib >"$RSS_PEAK_FILE"
    sample_rss &
    sampler=$!
    if ! timeout "$((seconds + 30))" wrk "${WRK_ARGS[@]}" -d "${seconds}s" "$url" >"$output" 2>&1; then
        kill "$sampler" 2>/dev/null || true
        cat "$output" >&2
        die "wrk failed against $url"
    fi
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
}

# measure_row <name> <method> <path> <script> <connections> <raw output file>: one row of the table.
measure_row() {
    local name="$1" method="$2" path="$3" script="$4" connections="$5" raw="$6"
    local busy stats rps p50 p99 errors elapsed rss
    # Anything else using the CPUs now (a build, a test run) distorts the row; say so.
    busy="$(background_cpu_percent)"
    if ((busy > MAX_BUSY)); then MAX_BUSY=$busy; fi
    if ((busy > BACKEND_BUSY)); then BACKEND_BUSY=$busy; fi
    if ((busy > BUSY_WARN)); then
        log "warning: other work keeps the CPUs ${busy}% busy; this row will be distorted"
    fi

    log "$BACKEND_LABEL $name, $connections connection(s), ${DURATION}s"
    wrk_args "$connections" "$method" "$script"
    run_wrk "$DURATION" "$raw" "$BASE_URL$(expand_path "$path")"
    stats="$(parse_wrk "$raw")" || die "could not parse wrk output $raw"
    IFS='|' read -r rps p50 p99 errors elapsed <<<"$stats"
    rss="$(awk '{ printf "%.1f", $1 / 1024 }' "$RSS_PEAK_FILE")"
    log "    $rps req/s, p50 $p50 ms, p99 $p99 ms, $errors error(s), server RSS up to $rss MiB"
    ROWS+=("| $BACKEND_LABEL | $(describe "$name" "$method" "$path") | $connections | $rps | $p50 | $p99 | $errors | $rss |")

    # A row that ran much longer than asked saw the machine stall (a paused VM, heavy swapping).
    if ((elapsed > DURATION * 1200 + 1000)); then
        local note="$BACKEND_LABEL $name with $connections connection(s) ran $((elapsed / 1000)) s"
        note+=" instead of ${DURATION} s: the machine stalled, so its figures are unreliable."
        log "warning: $note"
        NOTES+=("- $note")
    fi
}

# expand_path <path>: the path with {CURSOR}, {FROM} and {TO} filled in.
expand_path() {
    local path="${1//\{CURSOR\}/$CURSOR}"
    path="${path//\{FROM\}/$FROM}"
    echo "${path//\{TO\}/$TO}"
}

# describe <name> <method> <path>: the endpoint column of a row.
describe() {
    local name="$1" method="$2" path="$3"
    case "$name" in
        tx-deep) echo "\`GET /api/v1/transactions?limit=100\`, a cursor 50,000 rows deep" ;;
        net-worth) echo "\`GET /api/v1/net-worth\`, two years by day" ;;
        sessions) echo "\`GET /api/v1/auth/sessions\`, $((SEED_SESSIONS + 1)) sessions" ;;
        me-limited) echo "\`GET /api/v1/auth/me\`, rate limiting **on**" ;;
        *) echo "\`$method $path\`" ;;
    esac
}

# bench_endpoint <entry>: the warm-up and every connection count of one ENDPOINTS entry.
bench_endpoint() {
    local name method path script endpoint_connections connections max_connections=0 status
    read -r name method path script endpoint_connections <<<"$1"
    [[ "$script" == - ]] && script=""
    endpoint_connections="${endpoint_connections//,/ }"
    endpoint_connections="${endpoint_connections:-$CONNECTIONS}"
    for connections in $endpoint_connections; do
        if ((connections > max_connections)); then max_connections=$connections; fi
    done
    # A request must succeed before it is loaded (a refresh or login script's requests are checked by the
    # errors column, as they need state of their own).
    if [[ "$script" != refresh.lua && "$script" != login.lua ]]; then
        local -a auth=()
        [[ -n "$script" ]] && auth=(-H "authorization: Bearer $BENCH_ACCESS_TOKEN")
        status="$(curl -sS -o /dev/null -w '%{http_code}' -X "$method" --max-time 30 "${auth[@]}" \
            "$BASE_URL$(expand_path "$path")")" || status=000
        [[ "$status" =~ ^[23] ]] || die "$BACKEND_LABEL: $method $path answered $status before the load started"
    fi
    if ((WARMUP > 0)); then
        wrk_args "$max_connections" "$method" "$script"
        run_wrk "$WARMUP" "$TMP_DIR/warmup.txt" "$BASE_URL$(expand_path "$path")"
    fi
    for connections in $endpoint_connections; do
        measure_row "$name" "$method" "$path" "$script" "$connections" \
            "$RESULTS_DIR/raw/$BACKEND_LABEL-$name-c$connections.txt"
    done
}

# selected <entry>: whether BENCH_ONLY lets this ENDPOINTS entry run.
selected() {
    local name
    read -r name _ <<<"$1"
    [[ -z "$ONLY" || " $ONLY " == *" $name "* ]]
}

# sandbox_sync: connects the built-in sandbox brokerage (consent approved like a person would) and times the
# first sync of a year of its activity.
sandbox_sync() {
    local provider auth_url form callback started result elapsed created
    provider="$(api "$BASE_URL/api/v1/providers" -H 'content-type: application/json' \
        -d '{"provider_key":"sandbox","alias":"Bench sandbox"}' | json_field id)" || die "creating a provider failed"
    auth_url="$(api -X POST "$BASE_URL/api/v1/providers/$provider/authorization" | json_field auth_url)" \
        || die "starting the sandbox authorization failed"
    form="$(curl -fsS --max-time 10 "$auth_url" | python3 -c '
import html, re, sys, urllib.parse
page = sys.stdin.read()
fields = re.findall(r"<input type=\"hidden\" name=\"([^\"]*)\" value=\"([^\"]*)\">", page)
fields = [(html.unescape(k), html.unescape(v)) for k, v in fields] + [("decision", "approve")]
print(urllib.parse.urlencode(fields))')" || die "reading the sandbox consent page failed"
    callback="$(curl -fsS --max-time 10 -o /dev/null -w '%{redirect_url}' -X POST \
        "$BASE_URL/sandbox/v1/oauth/authorize" --data "$form")" || die "approving the sandbox consent failed"
    curl -fsS --max-time 30 -o /dev/null "$callback" || die "the OAuth callback failed"
    curl -fsS --max-time 10 -o /dev/null -X PUT "$BASE_URL/sandbox/control/clients/dashtam-sandbox" \
        -H 'content-type: application/json' -d "{\"transactions_per_day\": $SYNC_PER_DAY}" \
        || die "setting the sandbox volume failed"
    log "$BACKEND_LABEL: timing a sandbox sync"
    started="$(date +%s%N)"
    result="$(api -X POST "$BASE_URL/api/v1/providers/$provider/sync" -H 'content-type: application/json' -d '{}')" \
        || die "the sandbox sync failed"
    elapsed="$(( ($(date +%s%N) - started) / 1000000 ))"
    created="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["transactions"]["created"])' "$result")"
    one_shot "sandbox sync, first, one year of two accounts" "$((elapsed / 1000)).$(printf '%03d' $((elapsed % 1000))) s" \
        "$created transactions created"
}

# bench_backend <label> [VAR=value...]: the whole suite against one backend.
bench_backend() {
    local idle_rss loaded_rss peak_rss entry
    backend_env "$@"
    BACKEND_BUSY=0
    prepare_data

    start_server ""
    idle_rss="$(awk '{ printf "%.1f", $1 / 1024 }' <<<"$(server_rss_kib)")"
    log_in
    deep_cursor
    for entry in "${ENDPOINTS[@]}"; do
        if selected "$entry"; then bench_endpoint "$entry"; fi
    done
    sandbox_sync
    loaded_rss="$(awk '{ printf "%.1f", $1 / 1024 }' <<<"$(server_rss_kib)")"
    peak_rss="$(proc_status_mib VmHWM)"
    stop_server

    if selected "$LIMITED_ENDPOINT"; then
        start_server "-limited" "${LIMITER_ON[@]}"
        # A new port is a new issuer (tokens name the server's public URL): sign in again.
        log_in
        bench_endpoint "$LIMITED_ENDPOINT"
        stop_server
    fi
    MEMORY+=("| $BACKEND_LABEL | $idle_rss | $loaded_rss | $peak_rss |")
    BACKGROUND+=("${BACKEND_BUSY} % ($BACKEND_LABEL)")
}

# ---------------------------------------------------------------------------------------------------
# Report

machine_facts() {
    local date cpus kernel rustc_version cpu memory os commit wrk_version
    date="$(date -u '+%Y-%m-%d %H:%M UTC')"
    cpus="$(nproc)"
    kernel="$(uname -r)"
    rustc_version="$(rustc --version 2>/dev/null)" || rustc_version="rustc unknown"
    cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    memory="$(awk '$1 == "MemTotal:" { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    # shellcheck source=/dev/null
    os="$(. /etc/os-release && echo "${PRETTY_NAME:-${NAME:-unknown}}")"
    wrk_version="$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')" || true
    commit="$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    # Only changes to what goes into the binary matter.
    if [[ "$commit" != unknown ]] \
        && ! git -C "$REPO_DIR" diff-index --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null; then
        commit="$commit with uncommitted changes to the sources"
    fi
    if ((!BUILD)); then
        commit="$commit; binary not rebuilt, built $(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC')"
    fi
    echo "- **Date:** $date; commit $commit"
    echo "- **CPU:** ${cpu:-unknown}, $cpus logical CPU(s) (nproc), shared by wrk and the server"
    echo "- **Memory:** $memory; **OS:** $os, kernel $kernel"
    echo "- **Toolchain:** $rustc_version, release profile; wrk ${wrk_version:-unknown}"
    echo "- **Load:** wrk, $THREADS thread(s) (at most one per connection), keep-alive HTTP/1.1 over loopback," \
        "${DURATION} s per row after a ${WARMUP} s warm-up per endpoint; server log level \`warn\`"
    local background verdict="at most ${BUSY_WARN} %: the machine was otherwise idle"
    background="$(printf '%s, ' "${BACKGROUND[@]}")"
    if ((MAX_BUSY > BUSY_WARN)); then
        verdict="**above ${BUSY_WARN} %: other work competed for the CPUs, so these figures are distorted**"
    fi
    echo "- **Background CPU:** busiest 1 s sample with the server idle just before a row:" \
        "${background%, }; $verdict"
}

backend_versions() {
    local pg redis
    pg="$(psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc 'SHOW server_version' 2>/dev/null)" \
        || pg=unknown
    redis="$(redis-cli -u "$REDIS_URL" INFO server 2>/dev/null \
        | tr -d '\r' | awk -F: '$1 == "redis_version" { print $2 }')" || true
    echo "- **postgres+redis:** PostgreSQL ${pg:-unknown} and Redis ${redis:-unknown}, both on loopback," \
        "default pool settings"
}

write_report() {
    local output="$1"
    {
        machine_facts
        echo "- **sqlite:** a fresh database file in a temporary directory, default pool settings"
        if ((POSTGRES)); then backend_versions; fi
        echo "- **Data:** one account holding $((SEED_SESSIONS + 1)) sessions and the $IMPORT_COUNT transactions of" \
            "the import below; rate limiting off except in the rows that say **on**"
        echo
        echo "| backend | endpoint | connections | req/s | p50 (ms) | p99 (ms) | errors | server RSS (MiB) |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|"
        printf '%s\n' "${ROWS[@]}"
        if ((${#NOTES[@]} > 0)); then
            echo
            printf '%s\n' "${NOTES[@]}"
        fi
        echo
        echo "| backend | operation | result | detail |"
        echo "|---|---|---|---|"
        printf '%s\n' "${ONE_SHOT[@]}"
        echo
        echo "| backend | idle RSS after startup (MiB) | idle RSS after the load (MiB) | peak RSS (MiB, VmHWM) |"
        echo "|---|---:|---:|---:|"
        printf '%s\n' "${MEMORY[@]}"
    } >"$output"
}

record() {
    local report="$1"
    [[ -f "$DOC" ]] || die "$DOC does not exist"
    if ! grep -qxF "$MARK_START" "$DOC" || ! grep -qxF "$MARK_END" "$DOC"; then
        die "$DOC lacks the lines '$MARK_START' and '$MARK_END'"
    fi
    local updated="$TMP_DIR/benchmarks.md"
    awk -v start="$MARK_START" -v end="$MARK_END" -v report="$report" '
        $0 == start { print; print ""; while ((getline line < report) > 0) print line; print ""; skip = 1; next }
        $0 == end { skip = 0 }
        !skip { print }
    ' "$DOC" >"$updated"
    cat "$updated" >"$DOC"
    log "recorded the results in ${DOC#"$REPO_DIR"/}"
}

# ---------------------------------------------------------------------------------------------------

main() {
    parse_args "$@"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    require_tools
    TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/dashtam-bench.XXXXXX")"
    build
    rm -rf -- "$RESULTS_DIR/raw"
    mkdir -p "$RESULTS_DIR/raw"

    bench_backend sqlite

    if ((POSTGRES)); then
        PG_DB="dashtam_bench_$$"
        createdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$PG_DB" || die "could not create database $PG_DB"
        bench_backend postgres+redis \
            DASHTAM_DATABASE_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$PG_DB" \
            DASHTAM_REDIS_URL="$REDIS_URL"
        drop_database
    fi

    local report="$RESULTS_DIR/latest.md"
    write_report "$report"
    if ((RECORD)); then record "$report"; fi
    echo
    cat "$report"
    log "table written to ${report#"$REPO_DIR"/}; raw wrk output in ${RESULTS_DIR#"$REPO_DIR"/}/raw/"
}

main "$@"
