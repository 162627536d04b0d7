#!/usr/bin/env bash
# A/B comparison of release binaries on one endpoint, alternated run by run. See bench/README.md.
#
#   bench/ab.sh [--postgres] [--login] LABEL=BINARY LABEL=BINARY ...
#
# Each run starts from nothing: a fresh data directory (and, with --postgres, a fresh database plus an emptied
# Redis), `migrate up`, `user create`, the server on a free 127.0.0.1 port, one login per connection (for
# refresh), then one wrk run. Rounds alternate the binaries at every connection count, because this kind of
# machine drifts by tens of percent within an hour: only runs minutes apart compare. A line per run gives
# req/s, and the CPU per request of the server and, with --postgres, of all `postgres` processes together
# (from /proc), which is steadier than throughput on shared cores.
set -euo pipefail

CONNECTIONS="${AB_CONNECTIONS:-1 16 64}"
DURATION="${AB_DURATION:-8}"
ROUNDS="${AB_ROUNDS:-2}"
PG_URL_BASE="${AB_PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}"
REDIS_URL="${AB_REDIS_URL:-redis://127.0.0.1:6379/0}"
readonly EMAIL="ab@example.com" PASSWORD="benchmark passphrase 2026"  # pragma: allowlist secret
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly BENCH_DIR

die() { echo "ab.sh: $*" >&2; exit 1; }

POSTGRES=0
ENDPOINT=refresh
ARMS=()
for argument in "$@"; do
    case "$argument" in
        --postgres) POSTGRES=1 ;;
        --login) ENDPOINT=login ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *=*) [[ -x "${argument#*=}" ]] || die "${argument#*=} is not an executable"; ARMS+=("$argument") ;;
        *) die "unknown argument $argument (see --help)" ;;
    esac
done
((${#ARMS[@]} > 0)) || die "name at least one LABEL=BINARY"
for tool in wrk curl python3; do command -v "$tool" >/dev/null || die "$tool is required"; done
if ((POSTGRES)); then
    for tool in createdb dropdb redis-cli; do command -v "$tool" >/dev/null || die "$tool is required"; done
fi

# State of the run in progress, for the cleanup on exit.
RUN_DIR="" SERVER_PID="" DATABASE=""
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    if [[ -n "$DATABASE" ]]; then dropdb --force -h 127.0.0.1 -U postgres "$DATABASE" 2>/dev/null || true; fi
    if [[ -n "$RUN_DIR" ]]; then rm -rf "$RUN_DIR"; fi
    SERVER_PID="" DATABASE="" RUN_DIR=""
}
trap cleanup EXIT

# cpu_ticks PID...: user plus system clock ticks of the processes.
cpu_ticks() {
    local pid total=0
    for pid in "$@"; do
        if [[ -r "/proc/$pid/stat" ]]; then
            total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
        fi
    done
    echo "$total"
}

postgres_ticks() {
    # shellcheck disable=SC2046  # one pid per word
    cpu_ticks $(pgrep -x postgres || true)
}

# per_request TICKS REQUESTS: microseconds of CPU per request.
per_request() {
    python3 -c "import os, sys; print(round(int(sys.argv[1]) * 1e6 / os.sysconf('SC_CLK_TCK') / max(int(sys.argv[2]), 1)))" "$1" "$2"
}

# run_once LABEL BINARY CONNECTIONS: one fresh server, one wrk run, one line of results.
run_once() {
    local label="$1" binary="$2" connections="$3"
    RUN_DIR="$(mktemp -d)"
    local -a environment=(env -u DASHTAM_CONFIG -u DASHTAM_DATABASE_URL -u DASHTAM_REDIS_URL
        DASHTAM_DATA_DIR="$RUN_DIR" DASHTAM_LOG__FILTER=warn DASHTAM_RATE_LIMIT__ENABLED=false
        DASHTAM_SYNC__SCHEDULER=false)
    if ((POSTGRES)); then
        DATABASE="dashtam_ab_$$_$RANDOM"
        createdb -h 127.0.0.1 -U postgres "$DATABASE"
        redis-cli -u "$REDIS_URL" flushdb >/dev/null
        environment+=(DASHTAM_DATABASE_URL="$PG_URL_BASE/$DATABASE" DASHTAM_REDIS_URL="$REDIS_URL")
    fi
    { "${environment[@]}" "$binary" migrate up \
        && printf '%s\n' "$PASSWORD" | "${environment[@]}" "$binary" user create --email "$EMAIL" --name AB; } \
        >"$RUN_DIR/setup.log" 2>&1 || { cat "$RUN_DIR/setup.log" >&2; die "$label could not set up its database"; }
    local port
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    local base="http://127.0.0.1:$port"
    "${environment[@]}" DASHTAM_BIND="127.0.0.1:$port" "$binary" serve --no-migrate >"$RUN_DIR/server.log" 2>&1 &
    SERVER_PID=$!
    local deadline=$((SECONDS + 30))
    until curl -fsS -o /dev/null "$base/health" 2>/dev/null; do
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$RUN_DIR/server.log" >&2; die "$label exited at start-up"; }
        ((SECONDS < deadline)) || die "$label did not answer /health within 30 s"
        sleep 0.2
    done

    local -a load
    if [[ "$ENDPOINT" == refresh ]]; then
        # One session per connection, each rotated by its own wrk thread (bench/lua/refresh.lua).
        local login
        for _ in $(seq "$connections"); do
            login="$(curl -fsS -H 'content-type: application/json' \
                -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" "$base/api/v1/auth/login")"
            python3 -c 'import json, sys; print(json.loads(sys.argv[1])["refresh_token"])' "$login" >>"$RUN_DIR/tokens"
        done
        load=(env BENCH_REFRESH_TOKENS="$RUN_DIR/tokens" wrk -t "$connections" -c "$connections"
            -s "$BENCH_DIR/lua/refresh.lua" "$base/api/v1/auth/refresh")
    else
        load=(env BENCH_EMAIL="$EMAIL" BENCH_PASSWORD="$PASSWORD" wrk -t 2 -c "$connections"
            -s "$BENCH_DIR/lua/login.lua" "$base/api/v1/auth/login")
    fi

    local server_before postgres_before output
    server_before="$(cpu_ticks "$SERVER_PID")"
    postgres_before="$(postgres_ticks)"
    output="$(timeout $((DURATION + 30)) "${load[@]}" -d "${DURATION}s" 2>&1)" || { echo "$output" >&2; die "wrk failed"; }
    local server_ticks=$(($(cpu_ticks "$SERVER_PID") - server_before))
    local postgres_ticks=$(($(postgres_ticks) - postgres_before))
    local requests rps failed
    requests="$(awk '/requests in/ { print $1 }' <<<"$output")"
    rps="$(awk '/Requests\/sec/ { print $2 }' <<<"$output")"
    failed="$(awk '/Non-2xx/ { print $NF }' <<<"$output")"
    local line
    line="$(printf '%-10s %-7s conns=%-3s req/s=%-9s server µs/req=%-5s' "$label" "$ENDPOINT" "$connections" "$rps" \
        "$(per_request "$server_ticks" "$requests")")"
    if ((POSTGRES)); then line+="$(printf ' postgres µs/req=%-5s' "$(per_request "$postgres_ticks" "$requests")")"; fi
    echo "$line non-2xx=${failed:-0}"
    cleanup
}

for round in $(seq "$ROUNDS"); do
    for connections in $CONNECTIONS; do
        for arm in "${ARMS[@]}"; do
            run_once "${arm%%=*}" "${arm#*=}" "$connections"
        done
    done
    echo "-- round $round done"
done
