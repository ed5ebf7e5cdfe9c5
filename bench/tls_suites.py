"""The `tls` suite: TLS termination, pier's gateway (rustls) vs nginx (OpenSSL).

Registered by bench.py (``tls_suites.register(bench)``); see bench/README.md,
"TLS suite". Both servers serve the gateway suites' folder over HTTPS with the
same ECDSA P-256 certificate, pinned to the server CPU; the load generators
(wrk, h2load, openssl s_time) run on the client CPU. Three loads:

* ``https``: wrk over HTTPS, keep-alive, the 1 KiB file;
* ``h2``: h2load over HTTP/2 (ALPN h2), the 1 KiB file;
* ``handshake``: wrk with ``Connection: close`` (one TLS connection per
  request), and ``openssl s_time -new`` (full handshakes only, no request).

``BENCH_TLS_TESTSSL=1`` also runs testssl.sh against pier's listener once the
loads are done and saves its output to ``bench/out/testssl-pier.txt``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import benchlib as bl

TLS_PIER, TLS_NGINX = "pier-tls", "nginx-tls"
TLS_TARGETS = (TLS_PIER, TLS_NGINX)
H2_STREAMS = 10  # h2load -m
S_TIME_PROCS = 8  # parallel `openssl s_time -new` clients
TLS_GOALS = {"https": 1.0, "h2": 1.0}  # pier/nginx req/s


# --------------------------------------------------------------------------
# Tools, certificate, configs
# --------------------------------------------------------------------------


def ensure_tool(cmd: str, package: str) -> str:
    """``cmd`` from PATH, installing the Debian ``package`` when missing (as bench/run installs wrk)."""
    found = shutil.which(cmd)
    if found:
        return found
    bl.log(f"installing {package} (Debian package) for `{cmd}`")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run([*sudo, "apt-get", "install", "-y", package], env=env, stdout=subprocess.DEVNULL).returncode:
        subprocess.run([*sudo, "apt-get", "update"], env=env, stdout=subprocess.DEVNULL)
        subprocess.run([*sudo, "apt-get", "install", "-y", package], env=env, stdout=subprocess.DEVNULL, check=True)
    found = shutil.which(cmd)
    if not found:
        raise RuntimeError(f"`{cmd}` still missing after installing {package}")
    return found


def make_certificate(dir_: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for localhost and 127.0.0.1 (30 days)."""
    dir_.mkdir(parents=True, exist_ok=True)
    cert, key = dir_ / "cert.pem", dir_ / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "30", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return cert, key


def nginx_tls_conf(b, port: int, data_dir: Path, public_dir: Path, cert: Path, key: Path) -> str:
    head, tmp = b._nginx_common(data_dir)
    # nginx 1.22 (Debian 12) predates the `http2 on;` directive: `listen ... ssl http2`.
    return f"""{head}http {{
    types {{ text/html html; text/javascript js; }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
{tmp}    server {{
        listen {bl.HOST}:{port} ssl http2;
        root {public_dir};
        location / {{ }}
    }}
}}
"""


# --------------------------------------------------------------------------
# Probing over TLS
# --------------------------------------------------------------------------


def _client_ctx(cafile: Path, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    c = ssl.create_default_context(cafile=str(cafile))
    c.set_alpn_protocols(["http/1.1"])
    if max_version is not None:
        c.maximum_version = max_version
    return c


def https_get(port: int, path: str, cafile: Path, session=None, max_version=None, timeout: float = 5.0,
              ctx: ssl.SSLContext | None = None):
    """GET over TLS (certificate verified against ``cafile``, name 127.0.0.1):
    (status, body, ssl info, session)."""
    ctx = ctx or _client_ctx(cafile, max_version)
    with socket.create_connection((bl.HOST, port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=bl.HOST, session=session) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            info = {"version": s.version(), "cipher": s.cipher()[0], "session_reused": s.session_reused}
            sess = s.session
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.1 (\d{3})", head)
    if b"chunked" in head.lower():
        body = _dechunk(body)
    return (int(m.group(1)) if m else None), body, info, sess


def _dechunk(b: bytes) -> bytes:
    out = b""
    while b:
        size_line, _, rest = b.partition(b"\r\n")
        n = int(size_line.split(b";")[0], 16)
        if n == 0:
            break
        out, b = out + rest[:n], rest[n + 2:]
    return out


def alpn_of(port: int) -> str | None:
    c = ssl.create_default_context()
    c.check_hostname, c.verify_mode = False, ssl.CERT_NONE
    c.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((bl.HOST, port), timeout=5) as raw, c.wrap_socket(raw) as s:
        return s.selected_alpn_protocol()


def resumption(port: int, path: str, cafile: Path) -> dict:
    """Whether a second connection resumes the first one's session, per TLS version."""
    out = {}
    for name, ver in (("tls1.3", ssl.TLSVersion.TLSv1_3), ("tls1.2", ssl.TLSVersion.TLSv1_2)):
        try:
            c = _client_ctx(cafile, ver)  # a session is only reusable with its own context
            _, _, _, sess = https_get(port, path, cafile, ctx=c)
            _, _, info, _ = https_get(port, path, cafile, session=sess, ctx=c)
            out[name] = info["session_reused"]
        except (OSError, ValueError) as e:
            out[name] = f"error: {e}"
    return out


def tls_setup(srv: bl.Server, path: str, want: bytes, cafile: Path) -> dict:
    st, body, info, _ = https_get(srv.port, path, cafile)
    mism = [] if st == 200 and body == want else [f"GET {path}: {st}, {len(body)} bytes (expected 200, {len(want)})"]
    info = {"status": st, "body_bytes": len(body), **info, "alpn_offered_h2_h1": alpn_of(srv.port),
            "resumes": resumption(srv.port, path, cafile), "mismatches": mism}
    cmd = ["openssl", "s_client", "-connect", f"{bl.HOST}:{srv.port}", "-servername", "localhost", "-brief"]
    p = subprocess.run(cmd, input="", capture_output=True, text=True, timeout=10)
    info["s_client"] = [ln for ln in (p.stderr + p.stdout).splitlines() if ":" in ln][:12]
    return info


# --------------------------------------------------------------------------
# Load generators
# --------------------------------------------------------------------------


def lo_counters() -> tuple[int, int]:
    """(bytes, packets) received on the loopback interface so far (each one sent on lo is received once)."""
    with open("/proc/net/dev") as f:
        for line in f:
            if line.strip().startswith("lo:"):
                v = line.split(":", 1)[1].split()
                return int(v[0]), int(v[1])
    return 0, 0


def _check_local(url: str) -> None:
    if not url.startswith(f"https://{bl.HOST}:"):
        raise ValueError(f"refusing to load anything but {bl.HOST}: {url}")


def run_wrk_https(url: str, cfg, seconds: int, close: bool) -> tuple[bl.WrkResult, list[str]]:
    _check_local(url)
    argv = bl.wrk_argv(url, threads=cfg.threads, connections=cfg.connections, seconds=seconds)
    if close:
        argv[-1:-1] = ["-H", "Connection: close"]
    p = subprocess.run(bl.taskset_prefix(cfg.client_cpu) + argv, capture_output=True, text=True,
                       timeout=seconds + 30, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stderr}{p.stdout}")
    return bl.parse_wrk(p.stdout, argv), argv


def run_h2load(url: str, cfg, seconds: int) -> tuple[dict, list[str]]:
    _check_local(url)
    argv = ["h2load", "-t1", f"-c{cfg.connections}", f"-m{H2_STREAMS}", f"-D{seconds}", url]
    p = subprocess.run(bl.taskset_prefix(cfg.client_cpu) + argv, capture_output=True, text=True,
                       timeout=seconds + 60, stdin=subprocess.DEVNULL)
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", p.stdout)
    r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", p.stdout)
    st = re.search(r"status codes: (\d+) 2xx", p.stdout)
    proto = re.search(r"Application protocol: (\S+)", p.stdout)
    if p.returncode != 0 or not m or not r:
        raise RuntimeError(f"h2load failed ({p.returncode}): {p.stderr[-500:]}{p.stdout[-1500:]}")
    done, ok2xx = int(r.group(3)), int(st.group(1)) if st else 0
    lat = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", p.stdout)
    res = {"requests_per_sec": float(m.group(3)), "requests": done, "succeeded": int(r.group(4)),
           "errors": int(r.group(5)) + int(r.group(6)) + int(r.group(7)) + (done - ok2xx),
           "protocol": proto.group(1) if proto else None,
           "latency_mean_ms": bl._ms(lat.group(5), lat.group(6)) if lat else None, "raw": p.stdout[-2500:]}
    return res, argv


def run_s_time(port: int, cfg, seconds: int) -> tuple[dict, list[str]]:
    """``S_TIME_PROCS`` parallel ``openssl s_time -new`` (a full handshake per
    connection, no request, no session reuse): connections per second in all."""
    argv = ["openssl", "s_time", "-connect", f"{bl.HOST}:{port}", "-new", "-time", str(seconds)]
    procs = [subprocess.Popen(bl.taskset_prefix(cfg.client_cpu) + argv, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
             for _ in range(S_TIME_PROCS)]
    total, outs = 0, []
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 30)
        outs.append(out)
        m = re.search(r"(\d+) connections in (\d+) real seconds", out)
        if not m:
            raise RuntimeError(f"openssl s_time: no result: {out[-500:]}")
        total += int(m.group(1))
    return {"requests_per_sec": total / seconds, "requests": total, "errors": 0, "raw": outs[0][-600:]}, argv


# --------------------------------------------------------------------------
# The suite
# --------------------------------------------------------------------------


def register(b) -> None:
    """Add the `tls` suite to bench.py's suites (``b`` is the bench module)."""

    @b.suite("tls", "TLS termination: HTTPS keep-alive, HTTP/2 (h2load) and new handshakes/s: pier gateway vs nginx",
             targets=(b.GW_PIER, b.NGINX))
    def suite_tls(ctx) -> None:
        run_tls(b, ctx)


def run_tls(b, ctx) -> None:
    cfg = ctx.cfg
    ensure_tool("h2load", "nghttp2-client")
    if b.NGINX in ctx.skipped and not os.environ.get("NGINX_BIN"):  # bench/run installs it for static/proxy only
        ctx.targets[b.NGINX].binary = Path(ensure_tool("nginx", "nginx"))
        del ctx.skipped[b.NGINX]
    tls_dir = ctx.logs_dir / "tls"
    cert, key = make_certificate(tls_dir)
    public = ctx.logs_dir / "public"
    for path, body in b.GW_FILES.items():
        f = public / path.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(body)
    path, want = b.GW_SMALL_PATH, b.GW_FILES[b.GW_SMALL_PATH]
    pier_bin = ctx.targets[b.GW_PIER].binary
    nginx_bin = ctx.targets[b.NGINX].binary

    def pier_argv(port: int, d: Path) -> list[str]:
        return [str(pier_bin), "gateway", "--http", f"{bl.HOST}:{port}", "--upstream", "http://127.0.0.1:9",
                "--public-dir", str(public), "--dir", str(d), "--tls", "files"]

    pier_env = {**ctx.targets[b.GW_PIER].env, "PIER_TLS__CERT_FILE": str(cert), "PIER_TLS__KEY_FILE": str(key),
                "PIER_TLS__REDIRECT_ADDR": "off", "PIER_LOG__REQUESTS": "false", "APP_ENV": "development"}
    targets = {
        TLS_PIER: bl.Target(TLS_PIER, "pier gateway", pier_argv, None, pier_env, pier_bin),
        TLS_NGINX: bl.Target(TLS_NGINX, "nginx", lambda port, d: [str(nginx_bin), "-p", str(d), "-c",
                                                                   str(d / "nginx.conf"), "-e", "stderr"],
                             None, {}, nginx_bin),
    }
    labels = {TLS_PIER: "pier gateway", TLS_NGINX: "nginx"}
    skipped = {TLS_PIER: ctx.skipped.get(b.GW_PIER), TLS_NGINX: ctx.skipped.get(b.NGINX)}
    entry: dict = {"certificate": "ECDSA P-256, self-signed, CN=localhost, SAN DNS:localhost IP:127.0.0.1",
                   "path": path, "bytes": len(want), "setup": {}, "loads": {},
                   "versions": {"h2load": b._cmd_out(["h2load", "--version"]),
                                "openssl": b._cmd_out(["openssl", "version"]),
                                "nginx": b._cmd_out([str(nginx_bin), "-v"])}}
    ctx.results["tls"] = entry
    servers: dict[str, bl.Server] = {}
    try:
        for n, t in targets.items():
            if skipped[n]:
                continue
            before = None
            if n == TLS_NGINX:
                before = lambda srv: b._write_config(srv, nginx_tls_conf(b, srv.port, srv.data_dir, public, cert, key),
                                                     "nginx.conf")
            try:
                srv, _ = bl.start_server(t, cpu=cfg.server_cpu, log_path=ctx.logs_dir / f"tls-{n}.log",
                                         ready_timeout=cfg.ready_timeout, before_start=before)
            except (bl.ServerExited, TimeoutError) as e:
                skipped[n] = f"did not start: {e}"
                ctx.warn(f"{labels[n]} (tls): {skipped[n]}")
                continue
            deadline = time.time() + cfg.ready_timeout
            while True:  # ready = an HTTPS request answers
                try:
                    info = tls_setup(srv, path, want, cert)
                    break
                except (OSError, ssl.SSLError) as e:
                    if time.time() > deadline:
                        raise RuntimeError(f"{labels[n]}: no HTTPS answer: {e}; log:\n{srv.log_tail()}") from None
                    time.sleep(0.05)
            if n == TLS_PIER and "listening on https://" not in srv.log_path.read_text(errors="replace"):
                ctx.warn("pier's log does not say `listening on https://`")
            entry["setup"][n] = info
            for m in info["mismatches"]:
                ctx.warn(f"{labels[n]} (tls): {m}: its numbers are not of the intended response")
            if info["alpn_offered_h2_h1"] != "h2":
                ctx.warn(f"{labels[n]} (tls): ALPN picked {info['alpn_offered_h2_h1']!r}, not h2")
            servers[n] = srv
            bl.log(f"tls: {labels[n]} on {srv.port}: {info['version']} {info['cipher']}, ALPN "
                   f"{info['alpn_offered_h2_h1']}, resumes {info['resumes']}")

        loads = [
            ("https", f"HTTPS GET {path} (1 KiB), keep-alive, wrk", lambda u, p, s: run_wrk_https(u, cfg, s, False)),
            ("h2", f"HTTP/2 GET {path}, h2load -c{cfg.connections} -m{H2_STREAMS}", lambda u, p, s: run_h2load(u, cfg, s)),
            ("handshake", "new TLS connection per request: wrk -H 'Connection: close'",
             lambda u, p, s: run_wrk_https(u, cfg, s, True)),
            ("s_time", f"full handshakes: {S_TIME_PROCS} x openssl s_time -new (no request)",
             lambda u, p, s: run_s_time(p, cfg, s)),
        ]
        names = list(servers)
        for key_, desc, fn in loads:
            bl.log(f"tls: {desc}")
            runs: dict[str, list[dict]] = {n: [] for n in names}
            if cfg.warmup_seconds:
                for n in names:
                    fn(f"https://{bl.HOST}:{servers[n].port}{path}", servers[n].port, cfg.warmup_seconds)
            argv_shown = None
            for r in range(cfg.runs):
                k = r % len(names) if names else 0
                for n in names[k:] + names[:k]:
                    srv = servers[n]
                    c0, lo0 = bl.cpu_busy_ticks(cfg.client_cpu), lo_counters()
                    with bl.CoreWatch(srv.cpu, srv.pid) as cw:
                        res, argv_shown = fn(f"https://{bl.HOST}:{srv.port}{path}", srv.port, cfg.seconds)
                    lo = [x1 - x0 for x1, x0 in zip(lo_counters(), lo0)]
                    client = min(100.0, 100 * (bl.cpu_busy_ticks(cfg.client_cpu) - c0) / (cw.elapsed * bl.CoreWatch.HZ))
                    if isinstance(res, bl.WrkResult):
                        d = {"requests_per_sec": res.requests_per_sec, "requests": res.requests,
                             "errors": res.errors, "latency_ms": res.latency_ms}
                    else:
                        d = {k2: v for k2, v in res.items() if k2 != "raw"}
                        d["raw_tail"] = res.get("raw")
                    d.update(server_cpu_pct=cw.server_pct, core_other_pct=cw.other_pct, client_core_pct=client,
                             server_cpu_us_per_request=cw.server_pct / 100 * 1e6 / d["requests_per_sec"]
                             if d["requests_per_sec"] else None,
                             lo_bytes_per_request=lo[0] / d["requests"] if d["requests"] else None,
                             lo_packets_per_request=lo[1] / d["requests"] if d["requests"] else None)
                    runs[n].append(d)
                    bl.log(f"  run {r + 1}/{cfg.runs} {n:<10} {d['requests_per_sec']:>10.0f}/s  server "
                           f"{cw.server_pct:3.0f}% CPU, core{srv.cpu} other {cw.other_pct:3.0f}%, client core "
                           f"{client:3.0f}%{'  ERRORS: ' + str(d['errors']) if d['errors'] else ''}")
                    if cw.other_pct > 15:
                        ctx.warn(f"{labels[n]} tls {key_}: CPU {cfg.server_cpu} {cw.other_pct:.0f}% busy with "
                                 "something else: noisy run")
            e = {"description": desc, "command": argv_shown}
            for n in names:
                rs = runs[n]
                med = lambda k2: bl.median([x[k2] for x in rs if x.get(k2) is not None]) if any(
                    x.get(k2) is not None for x in rs) else None
                e[n] = {"runs": rs, "requests_per_sec_median": med("requests_per_sec"),
                        "requests_per_sec_spread_pct": bl.spread_pct([x["requests_per_sec"] for x in rs]),
                        "errors_total": sum(x["errors"] for x in rs),
                        "server_cpu_pct_median": med("server_cpu_pct"), "client_core_pct_median": med("client_core_pct"),
                        "server_cpu_us_per_request_median": med("server_cpu_us_per_request"),
                        "lo_bytes_per_request_median": med("lo_bytes_per_request"),
                        "lo_packets_per_request_median": med("lo_packets_per_request"),
                        "latency_p50_ms_median": bl.median([x["latency_ms"]["p50"] for x in rs])
                        if rs and "latency_ms" in rs[0] and "p50" in rs[0]["latency_ms"] else None,
                        "latency_p99_ms_median": bl.median([x["latency_ms"]["p99"] for x in rs])
                        if rs and "latency_ms" in rs[0] and "p99" in rs[0]["latency_ms"] else None,
                        "rss_after_kib": servers[n].tree_rss_kib()}
            entry["loads"][key_] = e

        if os.environ.get("BENCH_TLS_TESTSSL") in ("1", "true", "yes") and TLS_PIER in servers:
            run_testssl(ctx, servers[TLS_PIER])
    finally:
        for srv in servers.values():
            srv.stop()
    report(b, ctx, entry, labels, skipped)


def run_testssl(ctx, srv: bl.Server) -> None:
    exe = shutil.which("testssl") or shutil.which("testssl.sh") or ensure_tool("testssl", "testssl.sh")
    out = bl.OUT_DIR / "testssl-pier.txt"
    argv = [exe, "--quiet", "--color", "0", "--warnings", "batch", "--sneaky", f"{bl.HOST}:{srv.port}"]
    bl.log(f"tls: {' '.join(argv)} (a few minutes) -> {out}")
    p = subprocess.run(bl.taskset_prefix(ctx.cfg.client_cpu) + argv, capture_output=True, text=True,
                       timeout=1800, stdin=subprocess.DEVNULL)
    out.write_text(f"### {' '.join(argv)}\n### exit {p.returncode}\n{p.stdout}{p.stderr}")
    flagged = [ln.strip() for ln in p.stdout.splitlines()
               if re.search(r"VULNERABLE|NOT ok|not ok", ln) and "not vulnerable" not in ln.lower()]
    ctx.results["tls"]["testssl"] = {"command": argv, "exit": p.returncode, "output": str(out), "flagged": flagged}
    for ln in flagged:
        ctx.notes.append(f"tls: testssl.sh flags on pier: {ln}")


def report(b, ctx, entry: dict, labels: dict, skipped: dict) -> None:
    cfg = ctx.cfg
    res = entry["loads"]

    def g(load: str, n: str, key: str):
        d = res.get(load, {}).get(n)
        return None if not isinstance(d, dict) else d.get(key)

    def cell(load: str, n: str) -> str:
        d = res.get(load, {}).get(n)
        if not isinstance(d, dict) or "requests_per_sec_median" not in d:
            return "skipped" if skipped.get(n) else "-"
        return f"{d['requests_per_sec_median']:,.0f} ±{d['requests_per_sec_spread_pct']:.1f}%" + (
            " !" if d["errors_total"] else "")

    def ratio(a, c) -> str:
        return "-" if not a or not c else f"{a / c:.2f}"

    rows = []
    titles = {"https": f"(1) HTTPS keep-alive, 1 KiB, req/s (wrk -c{cfg.connections})",
              "h2": f"(2) HTTP/2, 1 KiB, req/s (h2load -c{cfg.connections} -m{H2_STREAMS})",
              "handshake": "(3) new TLS connections/s (wrk, Connection: close)",
              "s_time": f"(3b) full handshakes/s ({S_TIME_PROCS} x openssl s_time -new)"}
    for load, title in titles.items():
        a, c = g(load, TLS_PIER, "requests_per_sec_median"), g(load, TLS_NGINX, "requests_per_sec_median")
        goal = TLS_GOALS.get(load)
        tgt = "" if goal is None else (f">= {goal:g}x: {'met' if a / c >= goal else 'NOT met'}" if a and c
                                       else f">= {goal:g}x")
        if goal is None:
            tgt = "beside nginx's"
        rows.append([title, cell(load, TLS_PIER), cell(load, TLS_NGINX), ratio(a, c), tgt])
        subs = [("    server CPU %", "server_cpu_pct_median", 0, False),
                ("    server CPU us per request (or connection)", "server_cpu_us_per_request_median", 1, True),
                (f"    client core (CPU {cfg.client_cpu}) busy %", "client_core_pct_median", 0, False),
                ("    loopback bytes per request", "lo_bytes_per_request_median", 0, True),
                ("    loopback packets per request", "lo_packets_per_request_median", 2, True)]
        if load in ("https", "handshake"):
            subs[:0] = [("    p50 latency ms", "latency_p50_ms_median", 3, True),
                        ("    p99 latency ms", "latency_p99_ms_median", 3, True)]
        if load == "https":
            subs.append(("    RSS after, MiB", "rss_after_kib", 1, True))
        for label, key, digits, show in subs:
            v = {n: g(load, n, key) for n in (TLS_PIER, TLS_NGINX)}
            if key == "rss_after_kib":
                v = {n: x / 1024 if x else None for n, x in v.items()}
            rows.append([label, *[b.fmt_num(v[n], digits) if v[n] is not None else "-" for n in (TLS_PIER, TLS_NGINX)],
                         ratio(v[TLS_PIER], v[TLS_NGINX]) if show else "", ""])
    for n_key, label in (("tls1.3", "TLS 1.3"), ("tls1.2", "TLS 1.2")):
        vals = [str(entry["setup"].get(n, {}).get("resumes", {}).get(n_key, "-")) for n in (TLS_PIER, TLS_NGINX)]
        rows.append([f"resumes a session ({label}, Python client)", *vals, "", ""])
    vals = [f"{entry['setup'][n]['version']} {entry['setup'][n]['cipher']}" if n in entry["setup"] else "-"
            for n in (TLS_PIER, TLS_NGINX)]
    rows.append(["negotiated (Python client)", *vals, "", ""])
    ctx.tables.append((
        f"TLS termination: pier gateway (rustls) vs nginx (OpenSSL), ECDSA P-256 certificate, 1 KiB file "
        f"({cfg.seconds}s runs, median of {cfg.runs}; servers on CPU {cfg.server_cpu}, load generators on CPU "
        f"{cfg.client_cpu}; nginx: ssl_session_cache off, ssl_session_tickets off)",
        ["measure", labels[TLS_PIER], labels[TLS_NGINX], "pier/nginx", "target for pier"], rows))
    busy = [f"{labels[n]} {ld}" for ld in res for n in (TLS_PIER, TLS_NGINX)
            if (x := g(ld, n, "client_core_pct_median")) is not None and x >= 90]
    if busy:
        ctx.notes.append(f"tls: the load generator's core was >= 90% busy for {', '.join(busy)}: those figures may "
                         "be the client's limit (compare the server's CPU %)")
    for n, why in skipped.items():
        if why:
            ctx.notes.append(f"tls: {labels[n]} not measured: {why}")
