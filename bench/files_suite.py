"""The `files` suite: uploads, thumbnails and downloads, pier beside PocketBase in one run.

Registered by bench.py (``files_suite.register(bench)``); see bench/README.md, "Files". For
each server (pinned to the server CPU, the clients to the client CPU), on its local folder:

* a 100 MiB upload (curl, multipart), three times: throughput, and how much the server's
  peak RSS grew during it;
* the first ``?thumb=300x300`` of a 12-megapixel JPEG (made by ``examples/bench_images``), for
  five fresh records: the median time to the last byte;
* 32 clients asking at once for the first thumbnail of one more record: how many thumbnail
  files exist afterwards (1 means it was made once);
* the 300x300 thumbnail of a 1200x1200 WebP: its bytes and type (PocketBase answers PNG);
* wrk on a warm thumbnail and on a 100 KiB file: req/s.

Then the same uploads, first thumbnails and downloads with the files on S3: the tests' S3
server (``pier-s3-test-server``, s3s-fs, which checks signatures; built in release on first
use, pinned to the client CPU), one bucket for both; pier through ``PIER_FILES__S3__*``,
PocketBase through ``PATCH /api/settings`` ``{"s3": …}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import dataclasses

import benchlib as bl

EXAMPLE = bl.REPO_DIR / "target/release/examples/bench_images"
S3_SERVER = bl.REPO_DIR / "target/release/pier-s3-test-server"
UPLOAD_MIB = 100
UPLOAD_RUNS = 3
COLD_THUMBS = 5
CONCURRENT = 32


def register(b) -> None:
    @b.suite("files", "files: 100 MiB upload (throughput, RSS growth), first 300x300 thumbnail of a 12 MP JPEG, "
             "32 concurrent first requests, WebP thumbnail bytes, warm thumbnail and file downloads",
             targets=(b.PIER, b.POCKETBASE))
    def suite_files(ctx) -> None:
        run_files(b, ctx)


def images(ctx) -> Path | None:
    out = ctx.logs_dir / "files-images"
    if not (out / "photo.jpg").exists():
        if not os.access(EXAMPLE, os.X_OK):
            bl.log("building target/release/examples/bench_images")
            subprocess.run(["cargo", "build", "--release", "-p", "pier", "--example", "bench_images"],
                           cwd=bl.REPO_DIR, check=True)
        subprocess.run([str(EXAMPLE), str(out)], check=True)
    big = out / "upload.bin"
    if not big.exists():
        with open(big, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(UPLOAD_MIB):
                f.write(chunk)
    small = out / "small.bin"
    if not small.exists():
        small.write_bytes(os.urandom(100 * 1024))
    return out


def collection(b, srv) -> tuple[str, str]:
    """Superuser token and the `media` collection's id."""
    identity, password = b.RECORDS_SUPERUSER
    st, body = bl.http_json(srv.port, "POST", "/api/collections/_superusers/auth-with-password",
                            {"identity": identity, "password": password})
    if st != 200:
        raise RuntimeError(f"sign-in failed: {st} {body}")
    token = body["token"]
    st, c = bl.http_json(srv.port, "POST", "/api/collections", {
        "name": "media", "type": "base", "listRule": "", "viewRule": "", "createRule": "",
        "fields": [
            {"name": "img", "type": "file", "maxSelect": 1, "maxSize": 50 << 20, "thumbs": ["300x300"]},
            {"name": "blob", "type": "file", "maxSelect": 1, "maxSize": (UPLOAD_MIB + 10) << 20},
        ]}, headers={"Authorization": token})
    if st != 200:
        raise RuntimeError(f"creating the collection failed: {st} {c}")
    return token, c["id"]


def upload(srv, field: str, path: Path, cpu: int) -> tuple[dict, float]:
    """One multipart create with curl: (record, seconds)."""
    t0 = time.perf_counter()
    p = subprocess.run(bl.taskset_prefix(cpu) + [
        "curl", "-sS", "--fail-with-body", "-F", f"{field}=@{path}",
        f"http://{bl.HOST}:{srv.port}/api/collections/media/records"],
        capture_output=True, text=True, timeout=600)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"upload failed: {p.stdout[-300:]} {p.stderr[-300:]}")
    return json.loads(p.stdout), dt


def get(url: str) -> tuple[int, dict, bytes, float]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
        return r.status, dict(r.headers), body, time.perf_counter() - t0


def thumb_files(srv, cid: str, rid: str, name: str) -> int:
    d = srv.data_dir / "storage" / cid / rid / f"thumbs_{name}"
    if not d.is_dir():
        # PocketBase keeps its data folder under --dir too.
        d = srv.data_dir / "pb_data" / "storage" / cid / rid / f"thumbs_{name}"
    return len([f for f in d.glob("*") if not f.name.endswith(".attrs")]) if d.is_dir() else 0


def start_s3(ctx) -> tuple[subprocess.Popen, dict] | None:
    """The S3 server over a fresh folder: (process, its endpoint and keys)."""
    if not os.access(S3_SERVER, os.X_OK):
        bl.log("building target/release/pier-s3-test-server")
        subprocess.run(["cargo", "build", "--release", "-p", "pier-testkit", "--bin", "pier-s3-test-server"],
                       cwd=bl.REPO_DIR, check=True)
    root = ctx.logs_dir / "files-s3"
    out = open(ctx.logs_dir / "files-s3.log", "w")
    p = subprocess.Popen(bl.taskset_prefix(ctx.cfg.client_cpu) + [str(S3_SERVER), str(root)],
                         stdout=out, stderr=subprocess.STDOUT)
    for _ in range(200):
        time.sleep(0.05)
        lines = (ctx.logs_dir / "files-s3.log").read_text().splitlines()
        if len(lines) >= 2:
            endpoint = lines[0].removeprefix("listening on ")
            _, bucket, _, _, access, _, secret = lines[1].split()
            return p, {"endpoint": endpoint, "bucket": bucket, "access": access, "secret": secret}
    p.kill()
    return None


def use_s3(b, srv, name: str, s3: dict) -> None:
    """PocketBase: turn S3 on through its settings API (pier got it in its environment)."""
    if name != b.POCKETBASE:
        return
    identity, password = b.RECORDS_SUPERUSER
    _, body = bl.http_json(srv.port, "POST", "/api/collections/_superusers/auth-with-password",
                           {"identity": identity, "password": password})
    st, res = bl.http_json(srv.port, "PATCH", "/api/settings", {"s3": {
        "enabled": True, "bucket": s3["bucket"], "region": "us-east-1", "endpoint": s3["endpoint"],
        "accessKey": s3["access"], "secret": s3["secret"], "forcePathStyle": True}},
        headers={"Authorization": body["token"]})
    if st != 200:
        raise RuntimeError(f"PocketBase refused the S3 settings: {st} {res}")


def measure_one(b, ctx, name: str, imgs: Path, s3: dict | None = None) -> dict:
    cfg = ctx.cfg
    target = ctx.targets[name]
    tag = f"{name}-s3" if s3 else name
    if s3 and name == b.PIER:
        target = dataclasses.replace(target, env={**target.env, "PIER_FILES__S3__ENABLED": "true",
                                                  "PIER_FILES__S3__BUCKET": s3["bucket"],
                                                  "PIER_FILES__S3__ENDPOINT": s3["endpoint"],
                                                  "PIER_FILES__S3__ACCESS_KEY": s3["access"],
                                                  "PIER_FILES__S3__SECRET": s3["secret"],
                                                  "PIER_FILES__S3__FORCE_PATH_STYLE": "true"})
    srv, _ = bl.start_server(target, cpu=cfg.server_cpu, log_path=ctx.logs_dir / f"files-{tag}.log",
                             ready_timeout=cfg.ready_timeout, before_start=lambda s: b.records_prepare(target, s))
    out: dict = {}
    try:
        if s3:
            use_s3(b, srv, name, s3)
        _, cid = collection(b, srv)
        base = f"http://{bl.HOST}:{srv.port}/api/files/{cid}"
        # Uploads: throughput and peak RSS growth.
        speeds, growth = [], []
        for _ in range(UPLOAD_RUNS):
            before = srv.rss_kib()
            peak = [before]
            with bl.Sampler(lambda: peak.append(srv.rss_kib()), interval=0.02):
                _, dt = upload(srv, "blob", imgs / "upload.bin", cfg.client_cpu)
            speeds.append(UPLOAD_MIB / dt)
            growth.append((max(peak) - before) / 1024)
        out["upload_mib_s_median"] = bl.median(speeds)
        out["upload_rss_growth_mib_max"] = max(growth)
        out["upload_rss_growth_mib_all"] = growth
        # Cold thumbnails of a 12 MP JPEG.
        cold = []
        for _ in range(COLD_THUMBS):
            r, _ = upload(srv, "img", imgs / "photo.jpg", cfg.client_cpu)
            st, h, body, dt = get(f"{base}/{r['id']}/{r['img']}?thumb=300x300")
            if st != 200 or len(body) >= (imgs / "photo.jpg").stat().st_size:
                raise RuntimeError(f"{name}: no thumbnail ({st}, {len(body)} bytes)")
            cold.append(dt * 1e3)
        out["cold_thumb_ms_median"] = bl.median(cold)
        out["cold_thumb_ms_all"] = cold
        # 32 clients at once for one first thumbnail.
        r, _ = upload(srv, "img", imgs / "photo.jpg", cfg.client_cpu)
        url = f"{base}/{r['id']}/{r['img']}?thumb=300x300"
        results: list = []
        gate = threading.Barrier(CONCURRENT)

        def ask() -> None:
            gate.wait()
            results.append(get(url))
        threads = [threading.Thread(target=ask) for _ in range(CONCURRENT)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out["concurrent_thumb_s"] = time.perf_counter() - t0
        out["concurrent_thumb_ok"] = sum(1 for x in results if x[0] == 200)
        out["concurrent_thumb_distinct_bodies"] = len({x[2] for x in results})
        out["concurrent_thumb_files"] = None if s3 else thumb_files(srv, cid, r["id"], r["img"])
        warm_thumb = url
        # WebP thumbnail bytes and type.
        r, _ = upload(srv, "img", imgs / "photo.webp", cfg.client_cpu)
        st, h, body, _ = get(f"{base}/{r['id']}/{r['img']}?thumb=300x300")
        out["webp_thumb_bytes"] = len(body)
        out["webp_thumb_type"] = h.get("Content-Type") or h.get("content-type")
        # Warm downloads.
        r, _ = upload(srv, "blob", imgs / "small.bin", cfg.client_cpu)
        small = f"{base}/{r['id']}/{r['blob']}"
        for key, u in (("warm_thumb", warm_thumb), ("small_file", small)):
            runs = [bl.run_wrk(u, cpu=cfg.client_cpu, seconds=cfg.seconds, connections=32, threads=1)
                    for _ in range(cfg.runs)]
            out[key] = bl.summarize_wrk(runs)
    finally:
        srv.stop(grace=10.0)
    return out


def run_files(b, ctx) -> None:
    imgs = images(ctx)
    names = ctx.available([b.PIER, b.POCKETBASE])
    res = {}
    ctx.results["files"] = res
    for n in names:
        bl.log(f"files: {n}")
        try:
            res[n] = measure_one(b, ctx, n, imgs)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            ctx.warn(f"files: {n} failed: {e}")
    s3res: dict = {}
    ctx.results["files_s3"] = s3res
    started = start_s3(ctx)
    if started is None:
        ctx.warn("files: the S3 server did not start; the S3 half is left out")
    else:
        proc, s3 = started
        try:
            for n in names:
                bl.log(f"files: {n} on S3")
                try:
                    s3res[n] = measure_one(b, ctx, n, imgs, s3)
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    ctx.warn(f"files: {n} on S3 failed: {e}")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    pier, pb = res.get(b.PIER), res.get(b.POCKETBASE)

    def g(d, k, sub=None):
        if not d:
            return None
        v = d.get(k)
        return v.get(sub) if sub and isinstance(v, dict) else v
    rows = [
        ("100 MiB upload, MiB/s (median of 3)", "upload_mib_s_median", None, "higher"),
        ("100 MiB upload, peak RSS growth MiB (worst of 3)", "upload_rss_growth_mib_max", None, "lower"),
        ("first 300x300 thumb of a 12 MP JPEG, ms (median of 5)", "cold_thumb_ms_median", None, "lower"),
        ("32 clients, one first thumb: thumbnail files made", "concurrent_thumb_files", None, "lower"),
        ("300x300 thumb of a 1200x1200 WebP, bytes", "webp_thumb_bytes", None, "lower"),
        ("warm thumbnail download, req/s", "warm_thumb", "requests_per_sec_median", "higher"),
        ("100 KiB file download, req/s", "small_file", "requests_per_sec_median", "higher"),
    ]
    for label, key, sub, better in rows:
        ctx.main_rows.append(b.compare_row(label, g(pier, key, sub), g(pb, key, sub), better))
    pier, pb = s3res.get(b.PIER), s3res.get(b.POCKETBASE)
    for label, key, sub, better in rows:
        if key in ("concurrent_thumb_files", "webp_thumb_bytes"):
            continue
        ctx.main_rows.append(b.compare_row(f"S3: {label}", g(pier, key, sub), g(pb, key, sub), better))
    for n, d in res.items():
        ctx.notes.append(f"files: {n} WebP thumbnail type {d.get('webp_thumb_type')}, "
                         f"{d.get('concurrent_thumb_ok')}/{CONCURRENT} concurrent thumb requests answered 200, "
                         f"{d.get('concurrent_thumb_distinct_bodies')} distinct bodies")
