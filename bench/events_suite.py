"""The `events` suite: what record events cost the writers, and how fast they cross backends.

Registered by bench.py (``events_suite.register(bench)``); see bench/README.md, "Events".
pier is measured against itself (PocketBase has nothing to compare):

* SQLite: the records suite's create load (``POST .../records`` with bench/lua/post.lua, the
  same wrk command for each) against `events_bench serve N`, which is `pier serve` with N
  in-process subscribers that receive every event and read its record, for N = 0, 1, 100.
* PostgreSQL (when ``DATABASE_URL`` is set, e.g. under ``scripts/pg-throwaway``): the same
  load with the outbox on and off (``PIER_EVENTS__OUTBOX=false``), each on a database of its
  own in that cluster, and then `events_bench probe`: another backend on the database that
  creates records one at a time through the first and times each from the write's answer
  (and from its request) to its event arriving through the outbox.

The servers are pinned to the server CPU and interleaved run by run, as in the other suites.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
from pathlib import Path

import benchlib as bl

EXAMPLE = bl.REPO_DIR / "target/release/examples/events_bench"
SUBSCRIBERS = (0, 1, 100)
PROBE_COUNT = 2000


def register(b) -> None:
    """Add the `events` suite to bench.py's suites (``b`` is the bench module)."""

    @b.suite("events", "record events: create throughput with 0, 1 and 100 subscribers (SQLite); outbox on vs "
             "off and delivery latency between backends (PostgreSQL, when DATABASE_URL is set)",
             targets=(b.PIER,))  # pier's own CLI makes each server's superuser
    def suite_events(ctx) -> None:
        run_events(b, ctx)


def ensure_example() -> Path | None:
    if not os.access(EXAMPLE, os.X_OK):
        if os.environ.get("PIER_BIN_SKIP_BUILD") == "1":
            return None
        bl.log("building target/release/examples/events_bench")
        subprocess.run(["cargo", "build", "--release", "-p", "pier", "--example", "events_bench"],
                       cwd=bl.REPO_DIR, check=True)
    return EXAMPLE


def make_target(b, name: str, label: str, subscribers: int, env: dict) -> bl.Target:
    pier_bin = Path(os.environ.get("PIER_BIN") or bl.REPO_DIR / "target/release/pier")

    def argv(port: int, data_dir: Path) -> list[str]:
        return [str(EXAMPLE), "serve", str(subscribers), "--http", f"{bl.HOST}:{port}", "--dir", str(data_dir)]

    def cli(args, data_dir: Path) -> list[str]:
        return [str(pier_bin), *args, "--dir", str(data_dir)]

    # Request logs off: the figure is the events' cost, not the log's.
    full_env = {"PIER_LOG__REQUESTS": "false", "PIER_BIN": None, "PIER_BIN_SKIP_BUILD": None, **env}
    return bl.Target(name, label, argv, "/readyz", full_env, EXAMPLE, cli)


def database_urls(base: str, names: list[str], stamp: str) -> dict[str, str]:
    """A new database per name in ``base``'s cluster (``psql`` and CREATE DATABASE rights
    needed), named with the run's stamp so that no existing database is touched."""
    out = {}
    suffix = "".join(c for c in stamp.lower() if c.isalnum())
    for n in names:
        db = f"{n}_{suffix}"
        subprocess.run(["psql", base, "-q", "-c", f"CREATE DATABASE {db}"], check=True,
                       capture_output=True, text=True)
        u = urllib.parse.urlsplit(base)
        out[n] = urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + db, u.query, u.fragment))
    return out


def drop_databases(base: str, urls: dict[str, str]) -> None:
    """Drops the databases ``database_urls`` made (and only those)."""
    for url in urls.values():
        db = urllib.parse.urlsplit(url).path.lstrip("/")
        subprocess.run(["psql", base, "-q", "-c", f"DROP DATABASE IF EXISTS {db}"], capture_output=True, text=True)


# Every variable that could point pier at a database other than the one a variant names.
def database_env(url: str | None) -> dict[str, str | None]:
    env: dict[str, str | None] = {k: None for k in ("DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER",
                                                    "DB_PASSWORD")}
    env.update({k: None for k in os.environ if k.startswith("PIER_DATABASE__")})
    if url:
        env["DATABASE_URL"] = url
    return env


def final_line(log_path: Path) -> dict:
    """The JSON line `events_bench serve` prints when it stops."""
    try:
        for line in reversed(log_path.read_text(errors="replace").splitlines()):
            if line.startswith('{"subscribers"'):
                return json.loads(line)
    except (OSError, ValueError):
        pass
    return {}


def measure(b, ctx, targets: list[bl.Target], tag: str) -> dict[str, dict]:
    """The create load against every target, interleaved: name -> wrk summary (+ received)."""
    cfg = ctx.cfg
    servers: dict[str, bl.Server] = {}
    out: dict[str, dict] = {}
    try:
        for t in targets:
            srv, _ = bl.start_server(
                t, cpu=cfg.server_cpu, log_path=ctx.logs_dir / f"events-{tag}-{t.name}.log",
                ready_timeout=cfg.ready_timeout, before_start=lambda s, t=t: b.records_prepare(t, s),
            )
            servers[t.name] = srv
            b.records_create_collection(srv)
        bl.log(f"events ({tag}): create load against {', '.join(servers)}, {cfg.runs} x {cfg.seconds}s interleaved")
        res = bl.measure_throughput(
            servers, path=b.RECORDS_PATH, cpu=cfg.client_cpu, runs=cfg.runs, seconds=cfg.seconds,
            warmup_seconds=cfg.warmup_seconds, script=b.LUA_DIR / "post.lua", threads=cfg.threads,
            connections=cfg.connections, timeout_s=b.RECORDS_WRK_TIMEOUT_S,
        )
        for n, r in res.items():
            out[n] = bl.summarize_wrk(r)
            if out[n]["errors_total"]:
                ctx.warn(f"{n}: {out[n]['errors_total']} wrk errors during the events create load")
    finally:
        for n, srv in servers.items():
            srv.stop(grace=20.0)
            if n in out:
                out[n]["subscribers_final"] = final_line(srv.log_path)
    return out


def probe_latency(b, ctx, url: str) -> dict:
    """Backend A (`events_bench serve 0`) on ``url``, then the probe as another backend."""
    cfg = ctx.cfg
    t = make_target(b, "pg-probe-a", "backend A", 0, database_env(url))
    srv, _ = bl.start_server(t, cpu=cfg.server_cpu, log_path=ctx.logs_dir / "events-probe-a.log",
                             ready_timeout=cfg.ready_timeout, before_start=lambda s: b.records_prepare(t, s))
    try:
        b.records_create_collection(srv)
        env = t.environ()
        p = subprocess.run(["taskset", "-c", str(cfg.client_cpu), str(EXAMPLE), "probe",
                            f"http://{bl.HOST}:{srv.port}", str(PROBE_COUNT)],
                           capture_output=True, text=True, timeout=600, env=env, cwd=ctx.logs_dir)
        if p.returncode != 0:
            ctx.warn(f"the events probe failed: {p.stderr.strip()[-400:]}")
            return {}
        return json.loads(p.stdout.strip().splitlines()[-1])
    finally:
        srv.stop(grace=20.0)


def run_events(b, ctx) -> None:
    entry: dict = {"subscribers": {}, "postgres": None}
    ctx.results["events"] = entry
    if ensure_example() is None:
        ctx.notes.append("events: skipped (no events_bench example and PIER_BIN_SKIP_BUILD=1)")
        return
    rows: list[list[str]] = []
    sqlite = [make_target(b, f"sub{n}", f"{n} subscribers", n, database_env(None)) for n in SUBSCRIBERS]
    res = measure(b, ctx, sqlite, "sqlite")
    entry["subscribers"] = res
    base = res.get("sub0", {}).get("requests_per_sec_median")
    for n in SUBSCRIBERS:
        r = res.get(f"sub{n}")
        if not r:
            continue
        ratio = r["requests_per_sec_median"] / base if base else None
        fin = r.get("subscribers_final", {})
        verdict = "" if n == 0 else ("ok: within 3%" if ratio and ratio >= 0.97 else "OVER BUDGET (> 3%)")
        rows.append([f"SQLite create, {n} subscribers", b.fmt_rps(r), f"{ratio:.3f}" if ratio else "-",
                     f"received {fin.get('received', '?')}, lagged {fin.get('lagged', '?')}" if n else "", verdict])
    url = os.environ.get("DATABASE_URL") or os.environ.get("PIER_DATABASE__URL")
    if not url:
        ctx.notes.append("events: the PostgreSQL part was skipped (no DATABASE_URL; run under scripts/pg-throwaway)")
    else:
        urls = database_urls(url, ["pier_events_on", "pier_events_off", "pier_events_probe"], ctx.stamp)
        try:
            pg = [make_target(b, "outbox-on", "outbox on", 0, database_env(urls["pier_events_on"])),
                  make_target(b, "outbox-off", "outbox off", 0,
                              {**database_env(urls["pier_events_off"]), "PIER_EVENTS__OUTBOX": "false"})]
            pres = measure(b, ctx, pg, "postgres")
            latency = probe_latency(b, ctx, urls["pier_events_probe"])
        finally:
            drop_databases(url, urls)
        on, off = pres.get("outbox-on"), pres.get("outbox-off")
        entry["postgres"] = {"outbox_on": on, "outbox_off": off, "latency_us": latency}
        if on and off:
            ratio = on["requests_per_sec_median"] / off["requests_per_sec_median"]
            entry["postgres"]["on_off_ratio"] = ratio
            rows.append(["PostgreSQL create, outbox off", b.fmt_rps(off), "1.000", "", ""])
            rows.append(["PostgreSQL create, outbox on", b.fmt_rps(on), f"{ratio:.3f}", "",
                         "ok: within 10%" if ratio >= 0.90 else "OVER BUDGET (> 10%)"])
        if latency:
            rows.append(["commit -> delivery on another backend, p50 ms",
                         f"{latency['after_ack_p50_us'] / 1000:.2f} .. {latency['after_send_p50_us'] / 1000:.2f}",
                         "", f"{latency['count']} writes, one at a time", ""])
            rows.append(["commit -> delivery on another backend, p99 ms",
                         f"{latency['after_ack_p99_us'] / 1000:.2f} .. {latency['after_send_p99_us'] / 1000:.2f}",
                         "", "(from the write's answer .. from its request)", ""])
    ctx.tables.append((
        "record events (targets: subscribers cost <= 3% of creates; the outbox <= 10% on PostgreSQL)",
        ["measure", "req/s (median) or ms", "ratio", "", "verdict"], rows,
    ))
