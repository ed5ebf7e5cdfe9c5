#!/usr/bin/env bash
# Runs the real-browser page tests (setup.mjs: the first-superuser setup page at /_/; tls.mjs:
# the development certificate trusted through an NSS database) with headless Chromium driven by
# puppeteer-core. setup.mjs starts its own `pier serve --http
# 127.0.0.1:0 --dir <tmp>` (fresh SQLite, no superuser), reads the port from the
# `listening on http://…` line and the one-time link from the `pbinstal/` line, and stops pier
# at the end.
#
# Usage: tests/pages/run.sh
#
# Environment:
#   PIER_BIN      pier binary (default: target/debug/pier in the repo). Never built here: run
#                 `cargo build -p pier` first.
#   CHROMIUM_BIN  browser (default /usr/bin/chromium: Debian's `chromium`, which scripts/test
#                 installs). puppeteer-core never downloads a browser.
#   KEEP_DATA=1   keep the temporary folder (pier's data and log, the screenshot)
set -euo pipefail

PAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$PAGES_DIR/../.." && pwd)
cd "$PAGES_DIR"

say() { echo "[pages] $*" >&2; }

export PUPPETEER_SKIP_DOWNLOAD=1
if [[ ! -f node_modules/puppeteer-core/package.json || ! -f node_modules/pocketbase/package.json ]]; then
  say "installing the packages: npm ci"
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

export PIER_BIN=${PIER_BIN:-${CARGO_TARGET_DIR:-$REPO_DIR/target}/debug/pier}
[[ -x "$PIER_BIN" ]] || { say "pier binary not found: $PIER_BIN (build it with: cargo build -p pier, or set PIER_BIN)"; exit 2; }
export CHROMIUM_BIN=${CHROMIUM_BIN:-/usr/bin/chromium}
[[ -x "$CHROMIUM_BIN" ]] || { say "browser not found: $CHROMIUM_BIN (apt-get install chromium, or set CHROMIUM_BIN)"; exit 2; }
say "using $("$PIER_BIN" version 2>/dev/null || echo "$PIER_BIN") and $CHROMIUM_BIN"

command -v "${CERTUTIL_BIN:-certutil}" >/dev/null || { say "certutil not found (apt-get install libnss3-tools, or set CERTUTIL_BIN)"; exit 2; }

node "$PAGES_DIR/setup.mjs"
exec node "$PAGES_DIR/tls.mjs"
