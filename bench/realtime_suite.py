"""The `realtime` suite: SSE subscribers, pier beside PocketBase in one run.

Registered by bench.py (``realtime_suite.register(bench)``); see bench/README.md, "Realtime".
For each server (pinned to the server CPU; the load client, ``examples/bench_realtime``, to the
client CPU), on a collection whose list rule is ``public = true && t > 0`` (non-empty and needing
a query, so every event is checked against the database):

* 10,000 idle subscribers of ``rt/*``: the server's RSS growth and the load client's RSS;
* fan-out: one update delivered to each of 10,000 subscribers, five times: the time from the
  request to the last subscriber's event (median and worst of the five); again on ``rtplain``,
  whose rule ``public = true`` pier decides in memory;
* sustained: 1,000 subscribers while records are created at ``REALTIME_RATE`` per second for
  ``BENCH_SECONDS``: deliveries per second and the p99 latency of every delivery;
* a slow consumer: the sustained load again for 15 s, without and then with 10 more subscribers
  that never read (4 KiB receive buffers): the others' p99, the server's RSS growth, and how
  many pier cut off (PocketBase has no bound: it keeps what they do not read);
* pier only: rule queries per event with 1,000 subscribers signed in as the same user (its
  ``pier_realtime_rule_queries_total``; PocketBase runs one per subscriber by construction).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import benchlib as bl

EXAMPLE = bl.REPO_DIR / "target/release/examples/bench_realtime"
IDLE = int(os.environ.get("REALTIME_IDLE", "10000"))
FANOUT = int(os.environ.get("REALTIME_FANOUT", "10000"))
SUSTAINED = int(os.environ.get("REALTIME_SUSTAINED", "1000"))
RATE = float(os.environ.get("REALTIME_RATE", "100"))
STALLED = 10
STALLED_SECONDS = 15
# Non-empty, and needing a query (`>` is not decided in memory), so every event is checked
# against the database; `rtplain` has a rule pier decides in memory (`public = true`), for one
# more fan-out.
RULE = "public = true && t > 0"


def register(b) -> None:
    @b.suite("realtime", "realtime: 10,000 idle SSE subscribers (RSS), fan-out of one update to 10,000, "
             "sustained deliveries to 1,000, rule queries per event",
             targets=(b.PIER, b.POCKETBASE))
    def suite_realtime(ctx) -> None:
        run_realtime(b, ctx)


def ensure_example() -> Path:
    if not os.access(EXAMPLE, os.X_OK):
        bl.log("building target/release/examples/bench_realtime")
        subprocess.run(["cargo", "build", "--release", "-p", "pier", "--example", "bench_realtime"],
                       cwd=bl.REPO_DIR, check=True)
    return EXAMPLE


def client(cpu: int, *args, env: dict | None = None) -> dict:
    p = subprocess.run(bl.taskset_prefix(cpu) + [str(EXAMPLE), *map(str, args)],
                       capture_output=True, text=True, timeout=900, env={**os.environ, **(env or {})})
    if p.returncode != 0:
        raise RuntimeError(f"bench_realtime {args[0]} failed: {p.stderr[-500:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def prepare(b, srv) -> str:
    """The collection and a user: that user's token."""
    identity, password = b.RECORDS_SUPERUSER
    st, body = bl.http_json(srv.port, "POST", "/api/collections/_superusers/auth-with-password",
                            {"identity": identity, "password": password})
    if st != 200:
        raise RuntimeError(f"sign-in failed: {st} {body}")
    h = {"Authorization": body["token"]}
    st, c = bl.http_json(srv.port, "POST", "/api/collections", {
        "name": "rt", "type": "base", "listRule": RULE, "viewRule": RULE,
        "createRule": "", "updateRule": "",
        "fields": [{"name": "t", "type": "number"}, {"name": "public", "type": "bool"}]}, headers=h)
    if st != 200:
        raise RuntimeError(f"creating the collection failed: {st} {c}")
    st, c = bl.http_json(srv.port, "POST", "/api/collections", {
        "name": "rtplain", "type": "base", "listRule": "public = true", "viewRule": "public = true",
        "createRule": "", "updateRule": "",
        "fields": [{"name": "t", "type": "number"}, {"name": "public", "type": "bool"}]}, headers=h)
    if st != 200:
        raise RuntimeError(f"creating the collection failed: {st} {c}")
    st, c = bl.http_json(srv.port, "POST", "/api/collections", {
        "name": "rtusers", "type": "auth", "createRule": "", "fields": []}, headers=h)
    if st != 200:
        raise RuntimeError(f"creating the users failed: {st} {c}")
    pw = "BenchPass123"
    bl.http_json(srv.port, "POST", "/api/collections/rtusers/records",
                 {"email": "u@example.com", "password": pw, "passwordConfirm": pw})
    st, a = bl.http_json(srv.port, "POST", "/api/collections/rtusers/auth-with-password",
                         {"identity": "u@example.com", "password": pw})
    if st != 200:
        raise RuntimeError(f"user sign-in failed: {st} {a}")
    return a["token"]


def metric(srv, name: str) -> float | None:
    st, text = bl.http_get(srv.port, "/metrics")
    if st != 200:
        return None
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def rule_queries(srv) -> float | None:
    return metric(srv, "pier_realtime_rule_queries_total")


def measure_one(b, ctx, name: str) -> dict:
    cfg = ctx.cfg
    target = ctx.targets[name]
    srv, _ = bl.start_server(target, cpu=cfg.server_cpu, log_path=ctx.logs_dir / f"realtime-{name}.log",
                             ready_timeout=cfg.ready_timeout, before_start=lambda s: b.records_prepare(target, s))
    out: dict = {}
    try:
        token = prepare(b, srv)
        # Idle subscribers.
        before = srv.rss_kib()
        p = subprocess.Popen(bl.taskset_prefix(cfg.client_cpu) + [str(EXAMPLE), "idle", str(srv.port), str(IDLE), "rt"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = json.loads(p.stdout.readline())
        time.sleep(2)
        out["idle_clients"] = ready.get("ready")
        out["idle_server_rss_growth_mib"] = (srv.rss_kib() - before) / 1024
        with open(f"/proc/{p.pid}/status") as f:
            rss = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
        out["idle_client_rss_mib"] = rss / 1024
        out["idle_kib_per_subscriber"] = (srv.rss_kib() - before + rss) / max(1, IDLE)
        p.stdin.close()
        out["idle_alive_at_end"] = json.loads(p.stdout.readline()).get("alive")
        p.wait(timeout=60)
        time.sleep(1)
        # Fan-out.
        f = client(cfg.client_cpu, "fanout", srv.port, FANOUT, "rt", 5)
        out["fanout_last_ms_median"] = f["p50_ms"]
        out["fanout_last_ms_worst"] = max(f["last_ms"])
        out["fanout_all"] = f["last_ms"]
        time.sleep(1)
        f = client(cfg.client_cpu, "fanout", srv.port, FANOUT, "rtplain", 5)
        out["fanout_plain_last_ms_median"] = f["p50_ms"]
        out["fanout_plain_last_ms_worst"] = max(f["last_ms"])
        time.sleep(1)
        # Sustained.
        s = client(cfg.client_cpu, "sustained", srv.port, SUSTAINED, "rt", RATE, cfg.seconds)
        out["sustained"] = s
        # The same with 10 subscribers that never read: the others' p99, the server's RSS growth,
        # and (pier) how many were cut off. Long enough for their socket buffers to fill.
        slow_seconds = max(cfg.seconds, STALLED_SECONDS)
        base = client(cfg.client_cpu, "sustained", srv.port, SUSTAINED, "rt", RATE, slow_seconds)
        cut0 = metric(srv, "pier_realtime_slow_disconnects_total")
        before = srv.rss_kib()
        peak = [before]
        with bl.Sampler(lambda: peak.append(srv.rss_kib()), interval=0.2):
            slow = client(cfg.client_cpu, "sustained", srv.port, SUSTAINED, "rt", RATE, slow_seconds,
                          env={"STALLED": str(STALLED)})
        out["slow_baseline"] = base
        out["slow"] = slow
        out["slow_p99_ratio"] = slow["p99_ms"] / base["p99_ms"] if base.get("p99_ms") else None
        out["slow_rss_growth_mib"] = (max(peak) - before) / 1024
        cut1 = metric(srv, "pier_realtime_slow_disconnects_total")
        if cut0 is not None and cut1 is not None:
            out["slow_cut_off"] = cut1 - cut0
        # Rule queries per event, 1,000 subscribers as one user.
        if name == b.PIER:
            q0 = rule_queries(srv)
            events = int(RATE * 2)
            client(cfg.client_cpu, "sustained", srv.port, SUSTAINED, "rt", RATE, 2, token)
            q1 = rule_queries(srv)
            if q0 is not None and q1 is not None:
                out["rule_queries_per_event_same_user"] = (q1 - q0) / events
    finally:
        srv.stop(grace=10.0)
    return out


def run_realtime(b, ctx) -> None:
    ensure_example()
    res = {}
    ctx.results["realtime"] = res
    for n in ctx.available([b.PIER, b.POCKETBASE]):
        bl.log(f"realtime: {n}")
        try:
            res[n] = measure_one(b, ctx, n)
        except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as e:
            ctx.warn(f"realtime: {n} failed: {e}")
    pier, pb = res.get(b.PIER), res.get(b.POCKETBASE)

    def g(d, k, sub=None):
        if not d:
            return None
        v = d.get(k)
        return v.get(sub) if sub and isinstance(v, dict) else v
    rows = [
        (f"{IDLE} idle subscribers: server RSS growth, MiB", "idle_server_rss_growth_mib", None, "lower"),
        (f"{IDLE} idle subscribers: load client RSS, MiB", "idle_client_rss_mib", None, "lower"),
        (f"fan-out to {FANOUT}: last delivery, ms (median of 5)", "fanout_last_ms_median", None, "lower"),
        (f"fan-out to {FANOUT}: last delivery, ms (worst of 5)", "fanout_last_ms_worst", None, "lower"),
        (f"fan-out to {FANOUT}, rule `public = true`: last delivery, ms (median of 5)", "fanout_plain_last_ms_median", None, "lower"),
        (f"fan-out to {FANOUT}, rule `public = true`: last delivery, ms (worst of 5)", "fanout_plain_last_ms_worst", None, "lower"),
        (f"{SUSTAINED} subscribers, {RATE:g} creates/s: deliveries/s", "sustained", "per_second", "higher"),
        (f"{SUSTAINED} subscribers, {RATE:g} creates/s: p99 latency, ms", "sustained", "p99_ms", "lower"),
        (f"same with {STALLED} that never read: others' p99, ms", "slow", "p99_ms", "lower"),
        (f"same with {STALLED} that never read: others' p99 / without them", "slow_p99_ratio", None, "lower"),
        (f"same with {STALLED} that never read: server RSS growth, MiB", "slow_rss_growth_mib", None, "lower"),
    ]
    for label, key, sub, better in rows:
        ctx.main_rows.append(b.compare_row(label, g(pier, key, sub), g(pb, key, sub), better))
    for n, d in res.items():
        s = d.get("sustained", {})
        ctx.notes.append(f"realtime: {n}: {d.get('idle_clients')} idle clients ({d.get('idle_alive_at_end')} still open "
                         f"at the end), {d.get('idle_kib_per_subscriber', 0):.1f} KiB per subscriber with the client; "
                         f"sustained: {s.get('deliveries')} deliveries, {s.get('missing')} missing")
    if pier and "slow_cut_off" in pier:
        ctx.notes.append(f"realtime: pier cut off {pier['slow_cut_off']:.0f} of {STALLED} subscribers that never read")
    if pier and "rule_queries_per_event_same_user" in pier:
        ctx.notes.append(f"realtime: pier ran {pier['rule_queries_per_event_same_user']:.2f} rule queries per event "
                         f"for {SUSTAINED} subscribers signed in as one user (PocketBase: one per subscriber)")
