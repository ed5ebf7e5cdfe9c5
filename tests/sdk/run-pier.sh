#!/usr/bin/env bash
# Runs the SDK suites (conformance.mjs, files.mjs, realtime.mjs, mail.mjs) against pier: the same
# script that passes against the real PocketBase (run-pocketbase.sh), so pier's results are
# directly comparable.
#
# Usage: tests/sdk/run-pier.sh
#
# It creates the superuser first (`pier superuser upsert EMAIL PASS --dir DIR`), then serves
# (`pier serve --http 127.0.0.1:PORT --dir DIR`). scripts/test runs it on SQLite and, through
# scripts/pg-throwaway, on PostgreSQL.
#
# Environment:
#   PIER_BIN             pier binary (default: target/debug/pier in the repo). This script never
#                        builds it: run `cargo build -p pier` first.
#   DATABASE_URL         passed through unchanged to both pier commands, for a PostgreSQL run
#                        (e.g. postgres://user:pass@127.0.0.1:5432/db). Unset: pier's default store
#                        (SQLite under the temporary --dir). The suite uses unique collection names,
#                        but a reused PostgreSQL database keeps earlier runs' data; prefer a fresh one.
#   SDK_S3=1             keep uploaded files on a real S3 server (the tests' s3s-fs server, which
#                        checks signatures, started here on 127.0.0.1) instead of the local folder;
#                        S3_SERVER_BIN names it (default: target/debug/pier-s3-test-server, built
#                        by `cargo build -p pier-testkit --bin pier-s3-test-server`).
#   PB_SUPERUSER_EMAIL / PB_SUPERUSER_PASSWORD   superuser to create (defaults below)
#   CONFORMANCE_FILTER   regex: run only the checks whose name matches
#   SDK_SUITES           the suites to run (default: conformance files realtime mail)
#   SMTP_PYTHON          the Python that runs the SMTP server for `mail` (default: the first of
#                        python3, /usr/bin/python3 that can import aiosmtpd; Debian: python3-aiosmtpd)
#   KEEP_DATA=1          keep the temporary data dir (and server log) for inspection
#   READY_TIMEOUT        seconds to wait for /api/health (default 30)
#
# When the suites include `mail`, a real SMTP server (aiosmtpd, plain SMTP, no TLS, no auth) is
# started on 127.0.0.1 with a Maildir handler, and SMTP_HOST, SMTP_PORT and MAILDIR (whose new/
# gets one file per message) are exported for the suite, which points the server's SMTP settings
# at it.
#
# Only 127.0.0.1 is used; the ports are picked free at start. The servers are stopped on exit.
set -euo pipefail

SDK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SDK_DIR/../.." && pwd)
cd "$SDK_DIR"

say() { echo "[run-pier] $*" >&2; }

# --- the SDK -----------------------------------------------------------------------------------
if [[ ! -f node_modules/pocketbase/package.json ]]; then
  if [[ -f package-lock.json ]]; then
    say "installing the SDK: npm ci"
    npm ci --no-audit --no-fund --loglevel=error >&2
  else
    say "installing the SDK: npm install"
    npm install --no-audit --no-fund --loglevel=error >&2
  fi
fi

# --- pier --------------------------------------------------------------------------------------
PIER=${PIER_BIN:-${CARGO_TARGET_DIR:-$REPO_DIR/target}/debug/pier}
[[ -x "$PIER" ]] || { say "pier binary not found: $PIER (build it with: cargo build -p pier, or set PIER_BIN)"; exit 2; }
say "using $("$PIER" version 2>/dev/null || echo "$PIER")"
if [[ -n "${DATABASE_URL:-}" ]]; then
  export DATABASE_URL
  say "DATABASE_URL is set: pier will use that database"
fi

export PB_SUPERUSER_EMAIL=${PB_SUPERUSER_EMAIL:-conformance@example.com}
export PB_SUPERUSER_PASSWORD=${PB_SUPERUSER_PASSWORD:-Conformance-Pass-123}

# --- temp dir, port, cleanup -------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pier-conformance-XXXXXX")
DATA="$WORK/pier_data"
LOG="$WORK/server.log"
SERVER_PID=""
SMTP_PID=""
S3_PID=""

cleanup() {
  local rc=$?
  if [[ -n "$SMTP_PID" ]]; then kill -TERM "$SMTP_PID" 2>/dev/null || true; wait "$SMTP_PID" 2>/dev/null || true; fi
  if [[ -n "$S3_PID" ]]; then kill -TERM "$S3_PID" 2>/dev/null || true; wait "$S3_PID" 2>/dev/null || true; fi
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ "${KEEP_DATA:-0}" == 1 ]]; then
    say "kept $WORK (server log: $LOG)"
  else
    rm -rf -- "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
export PB_URL="http://127.0.0.1:$PORT"

# --- the S3 server, when asked for -----------------------------------------------------------------
if [[ "${SDK_S3:-0}" == 1 ]]; then
  S3_BIN=${S3_SERVER_BIN:-${CARGO_TARGET_DIR:-$REPO_DIR/target}/debug/pier-s3-test-server}
  [[ -x "$S3_BIN" ]] || { say "S3 test server not found: $S3_BIN (cargo build -p pier-testkit --bin pier-s3-test-server)"; exit 2; }
  mkdir -p "$WORK/s3"
  "$S3_BIN" "$WORK/s3" >"$WORK/s3.out" 2>&1 &
  S3_PID=$!
  for _ in $(seq 1 100); do grep -q "^listening on" "$WORK/s3.out" 2>/dev/null && break; sleep 0.05; done
  S3_ENDPOINT=$(sed -n 's/^listening on //p' "$WORK/s3.out")
  [[ -n "$S3_ENDPOINT" ]] || { say "the S3 test server did not start:"; cat "$WORK/s3.out" >&2; exit 1; }
  read -r _ S3_BUCKET _ _ S3_ACCESS _ S3_SECRET < <(sed -n 2p "$WORK/s3.out")
  # The secret goes through a file, as a deployment would pass it.
  printf '%s\n' "$S3_SECRET" > "$WORK/s3.secret"
  export PIER_FILES__S3__ENABLED=true PIER_FILES__S3__BUCKET="$S3_BUCKET" \
    PIER_FILES__S3__ENDPOINT="$S3_ENDPOINT" PIER_FILES__S3__ACCESS_KEY="$S3_ACCESS" \
    PIER_FILES__S3__SECRET_FILE="$WORK/s3.secret" PIER_FILES__S3__FORCE_PATH_STYLE=true
  say "files on S3: bucket $S3_BUCKET at $S3_ENDPOINT"
fi

# --- superuser first, then serve ------------------------------------------------------------------
"$PIER" superuser upsert "$PB_SUPERUSER_EMAIL" "$PB_SUPERUSER_PASSWORD" --dir "$DATA" >/dev/null

"$PIER" serve --http "127.0.0.1:$PORT" --dir "$DATA" >"$LOG" 2>&1 &
SERVER_PID=$!

if ! node -e '
  const url = process.argv[1] + "/api/health", deadline = Date.now() + 1000 * Number(process.argv[2]);
  (async () => {
    for (;;) {
      try { const r = await fetch(url); if (r.ok) process.exit(0); } catch {}
      if (Date.now() > deadline) process.exit(1);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();' "$PB_URL" "${READY_TIMEOUT:-30}"; then
  say "pier did not become healthy at $PB_URL; its log:"
  cat "$LOG" >&2 || true
  exit 1
fi
say "pier (pid $SERVER_PID) is up at $PB_URL"

# --- the SMTP server, when the mail suite runs ------------------------------------------------
SUITES=${SDK_SUITES:-conformance files realtime mail}
if [[ " $SUITES " == *" mail "* ]]; then
  SMTP_PY=${SMTP_PYTHON:-}
  if [[ -z "$SMTP_PY" ]]; then
    for py in python3 /usr/bin/python3; do
      if command -v "$py" >/dev/null && "$py" -c 'import aiosmtpd' 2>/dev/null; then SMTP_PY=$py; break; fi
    done
  fi
  [[ -n "$SMTP_PY" ]] || { say "no Python with aiosmtpd found for the mail suite (apt-get install python3-aiosmtpd, or set SMTP_PYTHON)"; exit 2; }
  SMTP_PORT=$PORT
  while [[ "$SMTP_PORT" == "$PORT" ]]; do
    SMTP_PORT=$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
  done
  # all three Maildir folders: the handler creates them only when the folder itself is missing
  mkdir -p "$WORK/maildir/new" "$WORK/maildir/cur" "$WORK/maildir/tmp"
  "$SMTP_PY" -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$WORK/maildir" >"$WORK/smtp.log" 2>&1 &
  SMTP_PID=$!
  if ! node -e '
    const net = require("net"), port = Number(process.argv[1]), deadline = Date.now() + 10000;
    (function attempt() {
      const c = net.connect(port, "127.0.0.1", () => { c.destroy(); process.exit(0); });
      c.on("error", () => { if (Date.now() > deadline) process.exit(1); setTimeout(attempt, 50); });
    })();' "$SMTP_PORT"; then
    say "the SMTP server did not start on 127.0.0.1:$SMTP_PORT; its log:"
    cat "$WORK/smtp.log" >&2 || true
    exit 1
  fi
  export SMTP_HOST=127.0.0.1 SMTP_PORT MAILDIR="$WORK/maildir"
  say "SMTP server (aiosmtpd, pid $SMTP_PID) at 127.0.0.1:$SMTP_PORT, mail in $MAILDIR/new"
fi

set +e
status=0
for suite in $SUITES; do
  node "$SDK_DIR/$suite.mjs" || status=$?
done
set -e
if [[ $status -ne 0 ]]; then
  say "suite failed (exit $status); last lines of the server log:"
  tail -n 20 "$LOG" >&2 || true
fi
exit "$status"
