#!/usr/bin/env bash
# What an audit append costs PostgreSQL alone, part by part. See bench/README.md.
#
#   bench/pg-audit.sh [DASHTAM_BINARY]        (default: target/release/dashtam)
#
# pgbench runs a write transaction shaped like a refresh (BEGIN, one row into a table like refresh_tokens,
# COMMIT) with, before its COMMIT: nothing; a bare round trip (SELECT 1); the chain-head UPDATE alone; the entry
# INSERT alone; and the append as the server sends it (both in one statement), on the real schema and on a
# copy without the four lookup indexes of audit_log. Variants alternate within each round, as this kind of
# machine drifts between minutes. Databases are made with `dashtam migrate up` and dropped on exit.
set -euo pipefail

CLIENTS="${PG_AUDIT_CLIENTS:-1 16}"
DURATION="${PG_AUDIT_DURATION:-8}"
ROUNDS="${PG_AUDIT_ROUNDS:-2}"
PG_URL_BASE="${PG_AUDIT_URL_BASE:-postgres://postgres@127.0.0.1:5432}"
BINARY="${1:-target/release/dashtam}"

die() { echo "pg-audit.sh: $*" >&2; exit 1; }

[[ -x "$BINARY" ]] || die "$BINARY is not an executable (build it with cargo build --release)"
for tool in pgbench psql createdb dropdb; do command -v "$tool" >/dev/null || die "$tool is required"; done

DATABASE="dashtam_pg_audit_$$"
WORK_DIR="$(mktemp -d)"
cleanup() {
    dropdb --if-exists --force -h 127.0.0.1 -U postgres "$DATABASE" 2>/dev/null || true
    dropdb --if-exists --force -h 127.0.0.1 -U postgres "${DATABASE}_no_lookup" 2>/dev/null || true
    rm -rf "$WORK_DIR"
}
trap cleanup EXIT

sql() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d "$1" -c "$2"; }

createdb -h 127.0.0.1 -U postgres "$DATABASE"
env -u DASHTAM_CONFIG DASHTAM_DATABASE_URL="$PG_URL_BASE/$DATABASE" "$BINARY" migrate up >/dev/null
sql "$DATABASE" "CREATE TABLE work_tokens (id UUID PRIMARY KEY, session_id UUID NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE, created_at TIMESTAMPTZ NOT NULL)"
createdb -h 127.0.0.1 -U postgres -T "$DATABASE" "${DATABASE}_no_lookup"
sql "${DATABASE}_no_lookup" "DROP INDEX audit_log_user_seq, audit_log_action_seq, audit_log_request_id,
    audit_log_occurred_at"

# The audit statements, with the values a refresh's entry has. Each client keeps to one of the 16 chains; the
# head moves by one whatever its hash (the server links the entry after the head it remembers instead).
# Stand-ins of the same length: 64 hex digits of hash, 43 characters of seal (base64 of 32 bytes).
readonly HASH="repeat('5a', 32)"
readonly SEAL="repeat('s', 43)"
readonly MOVE_HEAD="UPDATE audit_chain SET head_seq = head_seq + 1, head_hash = $HASH, head_seal = $SEAL
    WHERE id = :chain"
readonly ENTRY_VALUES="gen_random_uuid(), now(), 'auth.token_refreshed', 'success', gen_random_uuid(), 'user', NULL,
    NULL, md5(random()::text), gen_random_uuid(), 'POST', '/api/v1/auth/refresh', '/api/v1/auth/refresh',
    '127.0.0.1', 'wrk', NULL, '{}', $HASH"
readonly ENTRY_COLUMNS="chain, chain_seq, id, occurred_at, action, outcome, user_id, actor, resource_type,
    resource_id, request_id, session_id, method, route, path, ip_address, user_agent, trace_id, details, hash"

# variant NAME STATEMENT: a pgbench script with STATEMENT (may be empty) before the COMMIT.
variant() {
    {
        echo '\set chain (:client_id % 16) + 1'
        echo 'BEGIN;'
        echo 'INSERT INTO work_tokens (id, session_id, token_hash, created_at)'
        echo '    VALUES (gen_random_uuid(), gen_random_uuid(), sha256(random()::text::bytea), now());'
        if [[ -n "$2" ]]; then echo "$2;"; fi
        echo 'COMMIT;'
    } >"$WORK_DIR/$1.sql"
}
variant off ""
variant round-trip "SELECT 1"
variant head-update "$MOVE_HEAD"
variant entry-insert "INSERT INTO audit_log ($ENTRY_COLUMNS) SELECT :chain, nextval('audit_log_seq'), $ENTRY_VALUES"
variant append "WITH moved AS ($MOVE_HEAD RETURNING head_seq)
    INSERT INTO audit_log ($ENTRY_COLUMNS) SELECT :chain, head_seq, $ENTRY_VALUES FROM moved"

# run LABEL DATABASE SCRIPT CLIENTS: one pgbench run, one line.
run() {
    local output tps
    output="$(pgbench -h 127.0.0.1 -U postgres -n -M prepared -c "$4" -j 2 -T "$DURATION" -f "$WORK_DIR/$3.sql" "$2" 2>&1)" \
        || { echo "$output" >&2; die "pgbench failed on $1"; }
    tps="$(awk '/^tps/ { printf "%d", $3 }' <<<"$output")"
    printf '%-26s clients=%-3s tps=%-6s µs/transaction=%s\n' "$1" "$4" "$tps" "$((1000000 / (tps > 0 ? tps : 1)))"
}

for round in $(seq "$ROUNDS"); do
    for clients in $CLIENTS; do
        for script in off round-trip head-update entry-insert append; do
            run "$script" "$DATABASE" "$script" "$clients"
        done
        run "append, no lookup indexes" "${DATABASE}_no_lookup" append "$clients"
    done
    echo "-- round $round done"
done
