#!/usr/bin/env bash
# HTTP benchmark of the `dashtam` server with wrk. See bench/README.md.
#
#   bench/run.sh [--postgres] [--record] [--no-build]
#
# Builds the release binary, starts it on a free loopback port with a throw-away SQLite database (and,
# with --postgres, again on a fresh PostgreSQL database plus Redis), loads every endpoint below at every
# connection count, and prints a Markdown table. The table is written to bench/results/latest.md; with
# --record it also replaces the results section of docs/benchmarks.md.
set -euo pipefail

# Endpoints under test, one per line: "name method path [lua-script [connections]]".
# `name` labels raw output files; a script is looked up in bench/lua/ and can set headers and bodies
# (wrk.method, wrk.headers, wrk.body). A non-GET method without a script gets a one-line script.
# `connections` (comma-separated) overrides BENCH_CONNECTIONS for that endpoint.
ENDPOINTS=(
    "health  GET  /health"
    "ready   GET  /ready"
    "me      GET  /api/v1/auth/me       me.lua"
    "sessions GET /api/v1/auth/sessions me.lua"
    "refresh POST /api/v1/auth/refresh  refresh.lua"
    "login   POST /api/v1/auth/login    login.lua      1,16,256"
)

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
# Extra sessions (each with a refresh token) seeded before the load, to show lookups do not slow down as
# the tables grow.
SEED_SESSIONS="${BENCH_SEED_SESSIONS:-0}"
POSTGRES="${BENCH_POSTGRES:-0}"
PG_HOST="${BENCH_PG_HOST:-127.0.0.1}"
PG_PORT="${BENCH_PG_PORT:-5432}"
PG_USER="${BENCH_PG_USER:-postgres}"
REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
RECORD=0
BUILD=1
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
MEMORY=()
BACKGROUND=()
NOTES=()
MAX_BUSY=0
BACKEND_BUSY=0

usage() {
    cat <<'EOF'
Usage: bench/run.sh [--postgres] [--record] [--no-build]

  --postgres   also run against PostgreSQL + Redis (same as BENCH_POSTGRES=1)
  --record     replace the results section of docs/benchmarks.md with this run
  --no-build   use the existing release binary instead of running cargo build

Environment (defaults in brackets):
  BENCH_DURATION         seconds per measurement [10]
  BENCH_WARMUP           seconds of discarded load per endpoint, 0 to skip [2]
  BENCH_CONNECTIONS      connection counts, space separated ["1 16 64"]
  BENCH_THREADS          wrk threads (capped at the connection count) [2]
  BENCH_STARTUP_TIMEOUT  seconds to wait for /health after start [30]
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
            --record) RECORD=1 ;;
            --no-build) BUILD=0 ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; die "unknown option: $1" ;;
        esac
        shift
    done
    [[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "BENCH_DURATION must be a whole number of seconds"
    [[ "$WARMUP" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a whole number of seconds"
    [[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_THREADS must be a positive integer"
    [[ "$STARTUP_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "BENCH_STARTUP_TIMEOUT must be a positive integer"
    [[ "$QUIET_WAIT" =~ ^[0-9]+$ ]] || die "BENCH_QUIET_WAIT must be a whole number of seconds"
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
    for tool in curl cargo; do
        command -v "$tool" >/dev/null || die "$tool is required"
    done
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
    if ((BUILD)); then
        log "building the release binary"
        (cd "$REPO_DIR" && cargo build --release --quiet -p dashtam-server)
    fi
    [[ -x "$BIN" ]] || die "$BIN not found; run without --no-build"
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

# start_server <label> [VAR=value...]: starts dashtam with a fresh data dir and waits for /health.
start_server() {
    local label="$1"
    shift
    local port data_dir
    port="$(free_port)"
    data_dir="$TMP_DIR/$label"
    mkdir -p "$data_dir"
    BASE_URL="http://127.0.0.1:$port"
    SERVER_LOG="$RESULTS_DIR/server-$label.log"
    SERVER_ENV=(DASHTAM_BIND="127.0.0.1:$port" DASHTAM_DATA_DIR="$data_dir" DASHTAM_LOG__FILTER=warn "$@")
    env -u DASHTAM_CONFIG -u DASHTAM_DATABASE_URL -u DASHTAM_REDIS_URL "${SERVER_ENV[@]}" \
        "$BIN" >"$SERVER_LOG" 2>&1 &
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

# prepare_accounts: creates the benchmark account and an access token for the authenticated endpoints.
prepare_accounts() {
    printf '%s\n' "$BENCH_PASSWORD" | env -u DASHTAM_CONFIG -u DASHTAM_DATABASE_URL -u DASHTAM_REDIS_URL \
        "${SERVER_ENV[@]}" "$BIN" user create --email "$BENCH_EMAIL" --name Bench >/dev/null \
        || die "could not create the benchmark account"
    local body
    body="$(curl -fsS --max-time 10 -H 'content-type: application/json' -d "$(login_body)" \
        "$BASE_URL/api/v1/auth/login")" || die "the benchmark account could not log in"
    BENCH_ACCESS_TOKEN="$(sed -E 's/.*"access_token":"([^"]+)".*/\1/' <<<"$body")"
    export BENCH_ACCESS_TOKEN BENCH_EMAIL BENCH_PASSWORD
    export BENCH_REFRESH_TOKENS="$TMP_DIR/refresh-tokens.txt"
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
        sqlite3 "$TMP_DIR/sqlite/dashtam.db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $count)
INSERT INTO sessions (id, user_id, created_at, last_activity_at, expires_at)
SELECT randomblob(16), (SELECT id FROM users LIMIT 1), '2026-01-01T00:00:00Z',
       '2026-01-01T00:00:00Z', '2099-01-01T00:00:00Z' FROM n;
INSERT INTO refresh_tokens (id, session_id, token_hash, created_at)
SELECT randomblob(16), id, randomblob(32), '2026-01-01T00:00:00Z' FROM sessions
WHERE id NOT IN (SELECT session_id FROM refresh_tokens);
SQL
    fi
}

# fresh_refresh_tokens <count>: one new session per wrk thread, its refresh token on a line of its own.
fresh_refresh_tokens() {
    local count="$1" body
    : >"$BENCH_REFRESH_TOKENS"
    for ((i = 0; i < count; i++)); do
        body="$(curl -fsS --max-time 10 -H 'content-type: application/json' -d "$(login_body)" \
            "$BASE_URL/api/v1/auth/login")" || die "login for a refresh session failed"
        sed -E 's/.*"refresh_token":"([^"]+)".*/\1/' <<<"$body" >>"$BENCH_REFRESH_TOKENS"
    done
}

# run_wrk <seconds> <output file> <url>: one wrk run with WRK_ARGS, bounded in time.
run_wrk() {
    local seconds="$1" output="$2" url="$3"
    # A refresh run starts from sessions no earlier run has rotated.
    if [[ " ${WRK_ARGS[*]} " == *"/lua/refresh.lua "* ]]; then
        local threads
        threads="$(awk '{ for (i = 1; i < NF; i++) if ($i == "-t") print $(i + 1) }' <<<"${WRK_ARGS[*]}")"
        fresh_refresh_tokens "$threads"
    fi
    if ! timeout "$((seconds + 30))" wrk "${WRK_ARGS[@]}" -d "${seconds}s" "$url" >"$output" 2>&1; then
        cat "$output" >&2
        die "wrk failed against $url"
    fi
}

# measure_row <label> <method> <path> <script> <connections> <raw output file>: one row of the table.
measure_row() {
    local label="$1" method="$2" path="$3" script="$4" connections="$5" raw="$6"
    local busy stats rps p50 p99 errors elapsed
    # Anything else using the CPUs now (a build, a test run) distorts the row; say so.
    busy="$(background_cpu_percent)"
    if ((busy > MAX_BUSY)); then MAX_BUSY=$busy; fi
    if ((busy > BACKEND_BUSY)); then BACKEND_BUSY=$busy; fi
    if ((busy > BUSY_WARN)); then
        log "warning: other work keeps the CPUs ${busy}% busy; this row will be distorted"
    fi

    log "$label $method $path, $connections connection(s), ${DURATION}s"
    wrk_args "$connections" "$method" "$script"
    run_wrk "$DURATION" "$raw" "$BASE_URL$path"
    stats="$(parse_wrk "$raw")" || die "could not parse wrk output $raw"
    IFS='|' read -r rps p50 p99 errors elapsed <<<"$stats"
    log "    $rps req/s, p50 $p50 ms, p99 $p99 ms, $errors error(s)"
    ROWS+=("| $label | \`$method $path\` | $connections | $rps | $p50 | $p99 | $errors |")

    # A row that ran much longer than asked saw the machine stall (a paused VM, heavy swapping).
    if ((elapsed > DURATION * 1200 + 1000)); then
        local note="$label \`$method $path\` with $connections connection(s) ran $((elapsed / 1000)) s"
        note+=" instead of ${DURATION} s: the machine stalled, so its figures are unreliable."
        log "warning: $note"
        NOTES+=("- $note")
    fi
}

# bench_backend <label>: loads every endpoint at every connection count against the running server,
# appending table rows to ROWS and the memory row to MEMORY.
bench_backend() {
    local label="$1"
    local idle_rss entry name method path script status connections max_connections
    idle_rss="$(proc_status_mib VmRSS)"
    BACKEND_BUSY=0

    prepare_accounts
    if ((SEED_SESSIONS > 0)); then seed_sessions "$SEED_SESSIONS"; fi
    for entry in "${ENDPOINTS[@]}"; do
        local endpoint_connections
        read -r name method path script endpoint_connections <<<"$entry"
        if [[ -n "$ONLY" && " $ONLY " != *" $name "* ]]; then continue; fi
        endpoint_connections="${endpoint_connections//,/ }"
        endpoint_connections="${endpoint_connections:-$CONNECTIONS}"
        max_connections=0
        for connections in $endpoint_connections; do
            if ((connections > max_connections)); then max_connections=$connections; fi
        done
        # A plain request must succeed before loading it; scripted requests are the script's business.
        if [[ -z "$script" ]]; then
            status="$(curl -sS -o /dev/null -w '%{http_code}' -X "$method" --max-time 5 "$BASE_URL$path")" \
                || status=000
            [[ "$status" =~ ^[23] ]] || die "$label: $method $path answered $status before the load started"
        fi
        if ((WARMUP > 0)); then
            wrk_args "$max_connections" "$method" "$script"
            run_wrk "$WARMUP" "$TMP_DIR/warmup.txt" "$BASE_URL$path"
        fi
        for connections in $endpoint_connections; do
            measure_row "$label" "$method" "$path" "$script" "$connections" \
                "$RESULTS_DIR/raw/$label-$name-c$connections.txt"
        done
    done
    MEMORY+=("| $label | $idle_rss | $(proc_status_mib VmHWM) |")
    BACKGROUND+=("${BACKEND_BUSY} % ($label)")
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
        echo
        echo "| backend | endpoint | connections | req/s | p50 (ms) | p99 (ms) | errors |"
        echo "|---|---|---:|---:|---:|---:|---:|"
        printf '%s\n' "${ROWS[@]}"
        if ((${#NOTES[@]} > 0)); then
            echo
            printf '%s\n' "${NOTES[@]}"
        fi
        echo
        echo "| backend | RSS after startup (MiB) | peak RSS (MiB, VmHWM) |"
        echo "|---|---:|---:|"
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
    build
    TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/dashtam-bench.XXXXXX")"
    rm -rf -- "$RESULTS_DIR/raw"
    mkdir -p "$RESULTS_DIR/raw"

    start_server sqlite
    bench_backend sqlite
    stop_server

    if ((POSTGRES)); then
        PG_DB="dashtam_bench_$$"
        createdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$PG_DB" || die "could not create database $PG_DB"
        start_server postgres+redis \
            DASHTAM_DATABASE_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$PG_DB" \
            DASHTAM_REDIS_URL="$REDIS_URL"
        bench_backend postgres+redis
        stop_server
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
