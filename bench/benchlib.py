"""Reusable pieces of pier's benchmark harness (Python 3 standard library only).

What is here, so later benchmarks (record reads/creates/lists, gateway vs
nginx/Caddy, PostgreSQL) can reuse it:

* ``Target``: how to launch one server (argv from port and data dir, extra env,
  readiness path).
* ``Server`` / ``start_server``: launch a target pinned to a CPU core with
  ``taskset``, on 127.0.0.1 with a free port and a fresh temporary data dir,
  output sent to a log file; wait until the readiness path answers 200 and
  time it; read VmRSS/VmHWM; stop it. Every started server is tracked and
  stopped on exit (atexit, SIGINT/SIGTERM), and its pid is written to a pid
  file that ``bench/run`` also cleans up from if Python dies hard.
* ``run_wrk`` / ``parse_wrk``: run wrk pinned to a core and parse req/s,
  latency distribution (``--latency``), errors.
* ``http_json`` / ``parallel_json_requests``: JSON requests for setting up
  data (one, or many from a thread pool with keep-alive connections).
* ``measure_throughput``: the same wrk command against several running
  servers, interleaved round by round so drift on a noisy machine hits all of
  them alike.
* ``Sampler``: call a function every N seconds while a load runs (e.g. the
  size of a file), keeping the samples.
* ``median``, ``spread_pct``, ``ratio_cells``, ``print_table``: summarising.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
OUT_DIR = Path(os.environ.get("BENCH_OUT") or BENCH_DIR / "out")
PIDFILE = OUT_DIR / ".running-pids"
HOST = "127.0.0.1"  # load is only ever sent here


def log(msg: str) -> None:
    """Progress message (stderr, so stdout stays the report)."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def env_int(name: str, default: int, lo: int, hi: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        val = int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not an integer") from None
    if not lo <= val <= hi:
        raise SystemExit(f"{name}={val} is out of range [{lo}, {hi}]")
    return val


# --------------------------------------------------------------------------
# CPU pinning
# --------------------------------------------------------------------------


def pin_self(cpu: int | None) -> None:
    """Pin this (harness) process to ``cpu`` so its polling stays off the server core."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def taskset_prefix(cpu: int | None) -> list[str]:
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


# --------------------------------------------------------------------------
# Ports and plain HTTP probing
# --------------------------------------------------------------------------


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    """Status code of ``GET path`` on 127.0.0.1:port, or None if nothing answers.

    A raw socket keeps one probe cheap (a refused connect returns at once),
    which matters when polling every millisecond.
    """
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            buf = b""
            while b"\r\n" not in buf and len(buf) < 4096:
                chunk = s.recv(1024)
                if not chunk:
                    break
                buf += chunk
    except OSError:
        return None
    m = re.match(rb"HTTP/\d(?:\.\d)? (\d{3})", buf)
    return int(m.group(1)) if m else None


def tcp_open(port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port (readiness
    of servers without a health endpoint: nginx, Caddy)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """``GET path`` with http.client; returns (status, body)."""
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_json(
    port: int,
    method: str,
    path: str,
    body: object = None,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, object]:
    """One JSON request to 127.0.0.1:port; returns (status, decoded JSON body,
    or the raw text when it is not JSON)."""
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        return _json_exchange(conn, method, path, body, headers)
    finally:
        conn.close()


def _json_exchange(conn, method: str, path: str, body: object, headers: Mapping[str, str] | None):
    import json

    hdrs = {"Accept": "application/json", **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    raw = resp.read()
    try:
        return resp.status, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, raw.decode(errors="replace")


def parallel_json_requests(
    port: int,
    method: str,
    path: str,
    bodies: Sequence[object],
    *,
    workers: int = 16,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> list[tuple[int, object]]:
    """Send one JSON request per body from ``workers`` threads, each on its own
    keep-alive connection (reconnecting if the server closes it); returns
    (status, body) per request, in the order of ``bodies``. For seeding data,
    not for measuring."""
    import http.client
    import threading

    results: list[tuple[int, object] | None] = [None] * len(bodies)
    next_i = iter(range(len(bodies)))
    lock = threading.Lock()
    failure: list[BaseException] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        try:
            while not failure:
                with lock:
                    i = next(next_i, None)
                if i is None:
                    return
                for attempt in (1, 2):
                    try:
                        results[i] = _json_exchange(conn, method, path, bodies[i], headers)
                        break
                    except (http.client.HTTPException, ConnectionError) as e:
                        conn.close()  # reconnects on the next request
                        if attempt == 2:
                            raise RuntimeError(f"{method} {path} failed twice: {e}") from e
        except BaseException as e:  # noqa: BLE001 - reported to the caller below
            failure.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, min(workers, len(bodies))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failure:
        raise failure[0]
    return results  # type: ignore[return-value]


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------


@dataclass
class Target:
    """One server configuration to benchmark.

    ``argv(port, data_dir)`` builds the command line; ``env`` is applied on
    top of the harness environment (a value of None removes the variable),
    then ``env_for(data_dir)`` (variables that name the data dir).
    ``ready_path`` None: ready once the port accepts connections (servers
    without a health endpoint).
    """

    name: str  # key used in results, e.g. "pier", "pier-nolog", "pocketbase"
    label: str  # human-readable column header
    argv: Callable[[int, Path], list[str]]
    ready_path: str | None
    env: Mapping[str, str | None] = field(default_factory=dict)
    binary: Path | None = None  # for version reporting / availability checks
    # argv of one of its CLI commands run against a data dir (e.g. creating a
    # superuser before ``serve``): cli(["superuser", "upsert", ...], data_dir)
    cli: Callable[[Sequence[str], Path], list[str]] | None = None
    env_for: Callable[[Path], Mapping[str, str]] | None = None

    def environ(self, data_dir: Path | None = None) -> dict[str, str]:
        """The harness environment with ``env`` (and ``env_for(data_dir)``) applied."""
        env = dict(os.environ)
        for k, v in self.env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        if self.env_for is not None and data_dir is not None:
            env.update(self.env_for(data_dir))
        return env


class ServerExited(RuntimeError):
    pass


_LIVE: dict[int, "Server"] = {}


def _write_pidfile() -> None:
    try:
        if _LIVE:
            PIDFILE.parent.mkdir(parents=True, exist_ok=True)
            PIDFILE.write_text(
                "".join(
                    f"{pid}\t{s.exe}\t{s.data_dir if s._own_dir else ''}\n"
                    for pid, s in _LIVE.items()
                )
            )
        elif PIDFILE.exists():
            PIDFILE.unlink()
    except OSError:
        pass


class Server:
    """A running server process: pinned, fresh data dir, output to a log file."""

    def __init__(
        self,
        target: Target,
        *,
        cpu: int | None,
        log_path: Path,
        port: int | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.target = target
        self.cpu = cpu
        self.log_path = log_path
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix=f"bench-{target.name}-"))
        self.proc: subprocess.Popen | None = None
        self.t_spawn = 0.0
        self.exe = ""

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> "Server":
        argv = self.target.argv(self.port, self.data_dir)
        self.exe = argv[0]
        env = self.target.environ(self.data_dir)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")
        try:
            logf.write(f"### {' '.join(argv)}\n".encode())
            logf.flush()
            self.t_spawn = time.perf_counter()
            # taskset execs the server, so proc.pid is the server's own pid.
            self.proc = subprocess.Popen(
                taskset_prefix(self.cpu) + argv,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches the harness, which stops us in order
            )
        finally:
            logf.close()
        _LIVE[self.proc.pid] = self
        _write_pidfile()
        return self

    def wait_ready(self, timeout: float = 30.0, interval: float = 0.001) -> float:
        """Poll ``ready_path`` until 200 (or, without one, until the port
        accepts connections); return seconds from spawn to then."""
        assert self.proc is not None
        deadline = self.t_spawn + timeout
        path = self.target.ready_path
        what = f"{path} answered 200" if path else f"port {self.port} accepted a connection"
        while True:
            if path:
                status = http_status(self.port, path, timeout=1.0)
                ok = status == 200
            else:
                ok = tcp_open(self.port)
                status = None
            now = time.perf_counter()
            if ok:
                return now - self.t_spawn
            if self.proc.poll() is not None:
                raise ServerExited(
                    f"{self.target.name} exited with code {self.proc.returncode} "
                    f"before {what}; log tail:\n{self.log_tail()}"
                )
            if now > deadline:
                raise TimeoutError(
                    f"{self.target.name}: not ready within {timeout:.0f}s (waiting until {what}; "
                    f"last status {status}); log tail:\n{self.log_tail()}"
                )
            time.sleep(interval)

    def stop(self, grace: float = 5.0) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=grace)
            except ProcessLookupError:
                pass
        if proc is not None:
            _LIVE.pop(proc.pid, None)
            _write_pidfile()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- observation -------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def status_kib(self, field_name: str) -> int:
        """A ``kB`` field of /proc/PID/status, e.g. VmRSS or VmHWM."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
        raise KeyError(field_name)

    def rss_kib(self) -> int:
        return self.status_kib("VmRSS")

    def tree_rss_kib(self) -> int:
        """VmRSS summed over the server and its child processes (nginx: master
        and worker; the same as ``rss_kib`` for a single process). Shared pages
        count once per process, so this overstates a multi-process server a little."""
        total = 0
        for pid in process_tree(self.pid):
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
                            break
            except OSError:
                pass  # exited meanwhile
        return total

    def hwm_kib(self) -> int:
        return self.status_kib("VmHWM")

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 8192))
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def start_server(
    target: Target,
    *,
    cpu: int | None,
    log_path: Path,
    ready_timeout: float = 30.0,
    attempts: int = 3,
    before_start: Callable[[Server], None] | None = None,
) -> tuple[Server, float]:
    """Start ``target`` and wait until ready; returns (server, seconds to ready).

    ``before_start(server)`` runs once the fresh data dir exists and before
    the process is spawned (e.g. to create a superuser with the server's own
    CLI); if it raises, the data dir is removed and the error propagates.

    Retries with a new port if the process dies early (a free port can be
    taken between picking it and the server binding it).
    """
    last: Exception | None = None
    for _ in range(attempts):
        srv = Server(target, cpu=cpu, log_path=log_path)
        if before_start is not None:
            try:
                before_start(srv)
            except BaseException:
                srv.stop()
                raise
        srv.start()
        try:
            return srv, srv.wait_ready(timeout=ready_timeout)
        except ServerExited as e:
            srv.stop()
            last = e
        except BaseException:
            srv.stop()
            raise
    assert last is not None
    raise last


def stop_all() -> None:
    for srv in list(_LIVE.values()):
        try:
            srv.stop(grace=3.0)
        except Exception as e:  # keep going: stop everything we can
            log(f"stopping {srv.target.name} (pid {srv.proc.pid if srv.proc else '?'}): {e}")


def install_cleanup() -> None:
    """Stop every started server at exit; turn SIGINT/SIGTERM/SIGHUP into
    KeyboardInterrupt (once: later ones are ignored so cleanup can finish)."""
    atexit.register(stop_all)
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def _on_signal(signum, _frame):
        for s in sigs:
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    for s in sigs:
        signal.signal(s, _on_signal)


# --------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------

_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME_RE = r"([\d.]+)(us|ms|s|m|h)"


def _ms(value: str, unit: str) -> float:
    return round(float(value) * _TIME_UNITS[unit], 6)


@dataclass
class WrkResult:
    argv: list[str]
    requests_per_sec: float
    requests: int
    duration_s: float
    latency_ms: dict[str, float]  # avg, stdev, max, p50, p75, p90, p99
    non_2xx_3xx: int
    socket_errors: dict[str, int]  # connect, read, write, timeout
    raw: str
    server_cpu_pct: float | None = None  # server process CPU use during the run
    core_other_pct: float | None = None  # server core's use by anything else
    client_core_pct: float | None = None  # how busy wrk's core was (wrk, the harness, an upstream there)

    @property
    def errors(self) -> int:
        return self.non_2xx_3xx + sum(self.socket_errors.values())

    def to_json(self) -> dict:
        return {
            "argv": self.argv,
            "requests_per_sec": self.requests_per_sec,
            "requests": self.requests,
            "duration_s": self.duration_s,
            "latency_ms": self.latency_ms,
            "non_2xx_3xx": self.non_2xx_3xx,
            "socket_errors": self.socket_errors,
            "server_cpu_pct": self.server_cpu_pct,
            "core_other_pct": self.core_other_pct,
            "client_core_pct": self.client_core_pct,
        }


def parse_wrk(text: str, argv: Sequence[str] = ()) -> WrkResult:
    """Parse wrk 4.x output (run with ``--latency``)."""
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        raise ValueError(f"no Requests/sec in wrk output:\n{text}")
    rps = float(m.group(1))
    lat: dict[str, float] = {}
    m = re.search(r"Latency\s+" + _TIME_RE + r"\s+" + _TIME_RE + r"\s+" + _TIME_RE, text)
    if m:
        lat["avg"] = _ms(m.group(1), m.group(2))
        lat["stdev"] = _ms(m.group(3), m.group(4))
        lat["max"] = _ms(m.group(5), m.group(6))
    for pct, val, unit in re.findall(r"^\s+(\d+(?:\.\d+)?)%\s+" + _TIME_RE + r"\s*$", text, re.M):
        lat[f"p{pct}"] = _ms(val, unit)
    m = re.search(r"(\d+) requests in " + _TIME_RE, text)
    requests = int(m.group(1)) if m else 0
    duration = _ms(m.group(2), m.group(3)) / 1e3 if m else 0.0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    non2xx = int(m.group(1)) if m else 0
    sock = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        sock = dict(zip(sock, map(int, m.groups())))
    return WrkResult(list(argv), rps, requests, duration, lat, non2xx, sock, text)


def wrk_argv(
    url: str,
    *,
    threads: int = 1,
    connections: int = 32,
    seconds: int = 10,
    script: Path | None = None,
    script_args: Sequence[str] = (),
    timeout_s: int | None = None,
) -> list[str]:
    """The wrk command line (without the taskset prefix).

    ``timeout_s`` sets wrk's ``--timeout`` (its default is 2 s: a slower
    response is dropped and counted as a timeout error)."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if timeout_s is not None:
        argv.append(f"--timeout={timeout_s}s")
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    if script_args:
        argv += ["--", *script_args]
    return argv


def run_wrk(url: str, *, cpu: int | None, **kw) -> WrkResult:
    """Run wrk (pinned to ``cpu``) against a 127.0.0.1 URL and parse its output."""
    if not url.startswith(f"http://{HOST}:"):
        raise ValueError(f"refusing to load anything but {HOST}: {url}")
    argv = wrk_argv(url, **kw)
    seconds = kw.get("seconds", 10)
    proc = subprocess.run(
        taskset_prefix(cpu) + argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=seconds + 30 + (kw.get("timeout_s") or 0),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
    return parse_wrk(proc.stdout, argv)


def cpu_busy_ticks(cpu: int) -> int:
    """Busy clock ticks of one CPU so far (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return sum(v[:8]) - v[3] - v[4]  # user..steal minus idle, iowait
    raise KeyError(f"cpu{cpu}")


def proc_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # fields 14 and 15


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from the parent pids in /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def tree_ticks(pids: Sequence[int]) -> dict[int, int]:
    """utime + stime per process, for those still alive."""
    out = {}
    for p in pids:
        try:
            out[p] = proc_ticks(p)
        except (OSError, ValueError, IndexError):
            pass
    return out


class CoreWatch:
    """How busy a core was with anything but the given process (and its child
    processes, e.g. nginx's worker) over an interval.

    Measured around each wrk run: on a shared machine (another build, a
    cron job) this tells whether the server had its core to itself.
    Kernel networking work done on that core outside the process's own
    syscalls counts as "other" too, so a few percent is normal.
    """

    HZ = os.sysconf("SC_CLK_TCK")

    def __init__(self, cpu: int | None, pid: int) -> None:
        self.cpu, self.pid = cpu, pid

    def __enter__(self) -> "CoreWatch":
        self.t0 = time.perf_counter()
        if self.cpu is not None:
            self.pids = process_tree(self.pid)
            self.c0, self.p0 = cpu_busy_ticks(self.cpu), tree_ticks(self.pids)
        return self

    def __exit__(self, *exc) -> None:
        self.elapsed = time.perf_counter() - self.t0
        if self.cpu is None:
            self.server_pct = self.other_pct = None
            return
        core = cpu_busy_ticks(self.cpu) - self.c0
        p1 = tree_ticks(self.pids)
        server = sum(p1[p] - self.p0[p] for p in p1 if p in self.p0)
        wall = self.elapsed * self.HZ
        self.server_pct = 100 * server / wall
        self.other_pct = max(0.0, 100 * (core - server) / wall)


def measure_throughput(
    servers: Mapping[str, Server],
    *,
    path: str,
    cpu: int | None,
    runs: int,
    seconds: int,
    warmup_seconds: int = 2,
    script: Path | None = None,
    script_args: Sequence[str] | Mapping[str, Sequence[str]] = (),
    threads: int = 1,
    connections: int = 32,
    timeout_s: int | None = None,
) -> dict[str, list[WrkResult]]:
    """The same wrk command against each server, ``runs`` rounds, interleaved.

    Each server gets one discarded warm-up run first. Round r starts at a
    different server (rotation) so no target always goes first.
    ``script_args`` may be a mapping server name -> args, for data that
    differs per server (e.g. a file of the record ids that server generated).
    """
    names = list(servers)

    def kw(name: str) -> dict:
        args = script_args.get(name, ()) if isinstance(script_args, Mapping) else script_args
        return dict(threads=threads, connections=connections, script=script, script_args=args,
                    timeout_s=timeout_s)

    if warmup_seconds > 0:
        for name in names:
            log(f"  warm-up {name} ({warmup_seconds}s)")
            run_wrk(servers[name].url(path), cpu=cpu, seconds=warmup_seconds, **kw(name))
    results: dict[str, list[WrkResult]] = {n: [] for n in names}
    for r in range(runs):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            srv = servers[name]
            c0 = cpu_busy_ticks(cpu) if cpu is not None else None
            with CoreWatch(srv.cpu, srv.pid) as cw:
                res = run_wrk(srv.url(path), cpu=cpu, seconds=seconds, **kw(name))
            res.server_cpu_pct, res.core_other_pct = cw.server_pct, cw.other_pct
            if c0 is not None:
                res.client_core_pct = min(100.0, 100 * (cpu_busy_ticks(cpu) - c0) / (cw.elapsed * CoreWatch.HZ))
            flag = f"  ERRORS: {res.errors}" if res.errors else ""
            core = (
                f"  server {cw.server_pct:3.0f}% CPU, core{srv.cpu} other {cw.other_pct:3.0f}%"
                if cw.server_pct is not None
                else ""
            )
            log(
                f"  run {r + 1}/{runs} {name:<12} {res.requests_per_sec:>10.0f} req/s"
                f"  p99 {res.latency_ms.get('p99', float('nan')):7.2f} ms{core}{flag}"
            )
            results[name].append(res)
    return results


class Sampler:
    """Calls ``fn()`` every ``interval`` seconds from a background thread while
    something else runs (e.g. wrk), and keeps ``(seconds since start, fn())``
    pairs in ``samples``: one at the start, one per tick, one at the end.

        with Sampler(lambda: os.stat(path).st_size, 0.5) as s:
            run_wrk(...)
        s.samples

    A call that takes longer than the interval skips the ticks it overran (no
    burst of catch-up calls). ``fn`` should not raise (return None instead).
    """

    def __init__(self, fn: Callable[[], object], interval: float = 0.5) -> None:
        import threading

        self.fn, self.interval = fn, interval
        self.samples: list[tuple[float, object]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _take(self) -> None:
        self.samples.append((round(time.perf_counter() - self.t0, 3), self.fn()))

    def _loop(self) -> None:
        k = 0
        while True:
            self._take()
            k = max(k + 1, int((time.perf_counter() - self.t0) / self.interval) + 1)
            if self._stop.wait(max(0.0, self.t0 + k * self.interval - time.perf_counter())):
                return

    def __enter__(self) -> "Sampler":
        self.t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._take()


def summarize_wrk(results: Sequence[WrkResult]) -> dict:
    """Medians (and all values) of a list of wrk runs."""
    rps = [r.requests_per_sec for r in results]
    out = {
        "requests_per_sec_median": median(rps),
        "requests_per_sec_spread_pct": spread_pct(rps),
        "requests_per_sec_all": rps,
        "errors_total": sum(r.errors for r in results),
        "core_other_pct_max": max(
            (r.core_other_pct for r in results if r.core_other_pct is not None), default=None
        ),
        "runs": [r.to_json() for r in results],
    }
    cpu = [r.server_cpu_pct for r in results if r.server_cpu_pct is not None]
    out["server_cpu_pct_median"] = median(cpu) if cpu else None
    cpu = [r.client_core_pct for r in results if r.client_core_pct is not None]
    out["client_core_pct_median"] = median(cpu) if cpu else None
    for p in ("p50", "p90", "p99"):
        vals = [r.latency_ms[p] for r in results if p in r.latency_ms]
        out[f"latency_{p}_ms_median"] = median(vals) if vals else None
        out[f"latency_{p}_ms_all"] = vals
    return out


# --------------------------------------------------------------------------
# Statistics and tables
# --------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    vals = list(values)
    if not vals:
        raise ValueError("median of no values")
    return statistics.median(vals)


def spread_pct(values: Sequence[float]) -> float:
    """Half the range as a percentage of the median: a rough '±' for a handful of runs."""
    if len(values) < 2:
        return 0.0
    m = median(values)
    return 0.0 if m == 0 else (max(values) - min(values)) / 2 / m * 100


def ratio_cells(a: float | None, b: float | None, better: str) -> tuple[str, str]:
    """(a/b formatted, verdict for a) where ``better`` is 'higher' or 'lower'."""
    if a is None or b is None or b == 0 or a == 0:
        return "-", ""
    r = a / b
    good = r >= 1 if better == "higher" else r <= 1
    factor = r if r >= 1 else 1 / r
    if abs(r - 1) < 0.005:
        return f"{r:.2f}", "same"
    return f"{r:.2f}", f"{factor:.2f}x {'better' if good else 'worse'}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> str:
    """Print a plain-text table (first column left-aligned, others right); returns it."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(str(cell)))

    def fmt(row: Sequence[str]) -> str:
        cells = [
            str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])
            for i, c in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    lines = []
    if title:
        lines.append(title)
    lines.append(fmt(headers))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(fmt(r) for r in rows)
    text = "\n".join(lines)
    print(text, flush=True)
    return text
