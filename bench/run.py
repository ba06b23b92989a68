#!/usr/bin/python3
"""cio versus its peers: the issue-6 benchmark harness.

    bench/run.sh [--quick] [options]        (installs the peers, builds, runs this)
    /usr/bin/python3 bench/run.py [options]  (this alone: nothing is installed)

Runs every workload (W1-W7; W7 is the W5 echo over TLS) for cio and each peer, alternating them (A B C A
B C ...), --runs times each, and writes bench/results/RESULTS.md (machine,
software versions, method, the exact commands, one table per workload with
median, min-max and each peer's ratio to cio, the targets and whether cio
meets them, a profile for each target missed) plus one PNG chart per workload
(gnuplot) and results.json (the raw figures; --render-only re-renders from it).

Every program, cio's and the peers', prints one line in the same format:
    <name>: <number> <unit>[, [<label> ]<number> <unit>]...
e.g. "spawn: 87.3 ns/task, peak RSS 12.3 MiB", which is parsed into
{"ns/task": 87.3, "peak RSS MiB": 12.3}.

Pinning: servers and every single-threaded program run on CPU 0 (taskset -c
0), load generators on CPU 1. Go runs twice: GOMAXPROCS=1 pinned to CPU 0
("go"), and with Go's default GOMAXPROCS, unpinned ("go-default", reported
separately: it may use both CPUs, and in W5 it shares CPU 1 with the load
generator).

Only the standard library is used (no pip packages).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PEERS = BENCH / "peers"
PY = "/usr/bin/python3"  # Debian's python, the one python3-uvloop installs into

SERVER_CPU = "0"
LOADGEN_CPU = "1"

# ---- the programs other branches provide -----------------------------------------
# The harness calls these by name and skips a workload (saying so) when one is
# missing. Their command lines are templates: adjust here if a program's CLI
# differs. {bin} is the binary, {port} the TCP port, {conns} the connection
# count, {seconds} the measuring time, {size} the message size.
CIO_ECHO_SERVER = ("examples/echo_server", "{bin} 127.0.0.1 {port}")  # streams
CIO_SOCK_ECHO_SERVER = ("bench/bench_sock_echo", "{bin} 127.0.0.1 {port}")  # sock_* calls
EPOLL_ECHO_SERVER = ("bench/bench_epoll_echo", "{bin} 127.0.0.1 {port}")
# host port connections seconds size warm-up (the harness warms up itself)
ECHO_LOAD = ("bench/bench_echo_load", "{bin} 127.0.0.1 {port} {conns} {seconds} {size} 0")

ECHO_SIZE = 64
ECHO_CONNS = [1, 50, 1000]
# Not "peers" for W5's best-peer figures: cio itself, the hand-written limit,
# and go-default, which is not pinned and shares the load generator's CPU
# (reported separately, not a like-for-like figure).
UNCOMPARED_ECHO = ("cio", "epoll (limit)", "go-default")


# ---- small helpers -------------------------------------------------------------------

def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    """Run cmd (a list), return its stdout (stripped) or "" on failure."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def parse_item(item):
    """'peak RSS 12.3 MiB' -> ('peak RSS', 12.3, 'MiB'): the first token that
    is a number splits the label from the unit (so 'p50 21.3 us' and
    '12.3 ms beyond 1 s' both parse). None if there is no number."""
    toks = item.split()
    for i, t in enumerate(toks):
        try:
            v = float(t)
        except ValueError:
            continue
        return " ".join(toks[:i]), v, " ".join(toks[i + 1:])
    return None


def parse_line(text, name):
    """Find '<name>: ...' in text and parse its items into {key: value}."""
    for line in reversed(text.splitlines()):
        if not line.startswith(name + ":"):
            continue
        out = {}
        for item in line[len(name) + 1:].split(","):
            m = parse_item(item)
            if m:
                out[f"{m[0]} {m[2]}".strip()] = m[1]
        return out
    return None


def parse_echo_load(text):
    """The load generator's result: req/s, p50/p99 latency in us, requests."""
    for line in reversed(text.splitlines()):
        if "req/s" not in line:
            continue
        body = line.split(":", 1)[1] if ":" in line.split("req/s")[0] else line
        out = {}
        for item in body.split(","):
            m = parse_item(item)
            if not m:
                continue
            label, v, unit = m[0].lower(), m[1], m[2]
            key = f"{label} {unit}".strip()
            if key == "req/s":
                out["req/s"] = v
            elif label in ("p50", "p99", "p99.9", "avg", "mean"):
                scale = {"ns": 1e-3, "us": 1.0, "µs": 1.0, "ms": 1e3, "s": 1e6}.get(unit, 1.0)
                out[f"{label} us"] = v * scale
            elif unit.startswith("request") or label.startswith("request"):
                out["requests"] = v
        return out if "req/s" in out else None
    return None


def num_arg(v):
    """5.0 -> '5' (a program may parse its seconds with atoi), 0.5 -> '0.5'."""
    return str(int(v)) if float(v).is_integer() else str(v)


def fmt(v, digits=None):
    if v is None:
        return "-"
    if digits is None:
        a = abs(v)
        digits = 0 if a >= 1000 else 1 if a >= 10 else 2 if a >= 1 else 3
    s = f"{v:,.{digits}f}"
    return s


def stats(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def cmd_str(argv, env=None, cpu=None):
    parts = []
    if env:
        parts += [f"{k}={v}" for k, v in env.items()]
    if cpu is not None:
        parts += ["taskset", "-c", cpu]
    parts += [str(a) for a in argv]
    return " ".join(shlex.quote(p) if p and not re.match(r"^[\w./=:,+-]+$", p) else p for p in parts)


def rel(p):
    try:
        return str(Path(p).relative_to(ROOT))
    except ValueError:
        return str(p)


# ---- building the peers ----------------------------------------------------------------

class Build:
    def __init__(self, build_dir):
        self.dir = Path(build_dir)
        self.peers = self.dir / "peers"
        self.notes = {}  # peer -> why it is unavailable

    def path(self, sub):
        return self.dir / sub

    def build_peers(self, skip_build=False):
        self.peers.mkdir(parents=True, exist_ok=True)
        if skip_build:
            return
        env = dict(os.environ, GOPROXY="off", GOFLAGS="-mod=mod",
                   GOCACHE=str(self.peers / "gocache"), CGO_ENABLED="0")
        self._run("go", ["go", "build", "-o", str(self.peers / "peer-go"), "."],
                  cwd=PEERS / "go", env=env, tool="go")
        cargo = shutil.which("cargo")
        self._run("tokio", [cargo or "cargo", "build", "--release", "--offline", "-j2",
                            "--target-dir", str(self.peers / "tokio-target")],
                  cwd=PEERS / "tokio", tool="cargo")
        if (self.peers / "tokio-target/release/peer-tokio").exists():
            shutil.copy2(self.peers / "tokio-target/release/peer-tokio", self.peers / "peer-tokio")
        uv = sh(["pkg-config", "--cflags", "--libs", "libuv"]).split()
        self._run("libuv", ["cc", "-O2", "-Wall", "-o", str(self.peers / "peer-libuv"),
                            str(PEERS / "libuv/bench.c")] + uv, tool="cc",
                  need=bool(uv), why="libuv1-dev is not installed (pkg-config libuv)")
        # The bare C coroutine loop (W1, W3): x86-64 assembly in its switch.
        self._run("bare", ["cc", "-O2", "-Wall", "-o", str(self.peers / "peer-bare"),
                           str(PEERS / "bare/bare.c")], tool="cc",
                  need=platform.machine() in ("x86_64", "AMD64"),
                  why=f"x86-64 only (this machine: {platform.machine()})")
        if sh([PY, "-c", "import uvloop; print(uvloop.__version__)"]) == "":
            self.notes["uvloop"] = "python3-uvloop is not installed"

    def _run(self, peer, argv, cwd=None, env=None, tool=None, need=True, why=None):
        if not need:
            self.notes[peer] = why
            return
        if tool and not shutil.which(tool):
            self.notes[peer] = f"{tool} not found"
            return
        log(f"building {peer}: {cmd_str(argv)}")
        r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            self.notes[peer] = f"build failed: {(r.stderr or r.stdout).strip()[-400:]}"
            log(f"  {peer}: {self.notes[peer]}")


# ---- workloads ---------------------------------------------------------------------------

class Metric:
    def __init__(self, key, title, better="lower", digits=None):
        self.key, self.title, self.better, self.digits = key, title, better, digits


class Workload:
    """One figure family: a program name run by every peer that has it."""

    def __init__(self, wid, prog, title, n, metrics, cio_bin=None, peers=None, extra=None):
        self.id, self.prog, self.title, self.n = wid, prog, title, n
        self.metrics = metrics
        self.cio_bin = cio_bin or f"bench/bench_{prog}"
        self.peers = peers or ["cio", "asyncio", "uvloop", "go", "go-default", "tokio"]
        self.extra = extra or []  # extra (peer label, argv-builder) rows


COMPUTE = [
    Workload("W1", "spawn", "spawn 1,000,000 tasks that return at once, then join them all",
             1_000_000, [Metric("ns/task", "ns per task"), Metric("peak RSS MiB", "peak RSS (MiB)")],
             peers=["cio", "asyncio", "uvloop", "go", "go-default", "tokio", "bare"]),
    Workload("W2", "pingpong", "two tasks pass a token back and forth 1,000,000 times",
             1_000_000, [Metric("ns/roundtrip", "ns per round trip")]),
    Workload("W3", "sleep_many", "100,000 tasks start together and each sleeps 1 s",
             100_000, [Metric("ms beyond 1 s", "ms beyond 1 s"), Metric("B/task", "bytes per task"),
                       Metric("peak RSS MiB", "peak RSS (MiB)")],
             peers=["cio", "asyncio", "uvloop", "go", "go-default", "tokio", "libuv", "bare"]),
    Workload("W4", "yield", "one task yields 1,000,000 times",
             1_000_000, [Metric("ns/yield", "ns per yield")]),
    Workload("W6a", "timers", "1,000,000 timers scheduled, then cancelled",
             1_000_000, [Metric("ns/op", "ns per timer (schedule + cancel)")],
             peers=["cio", "asyncio", "uvloop", "go", "go-default", "tokio", "libuv"]),
    Workload("W6b", "queue_pingpong", "two tasks pass a token 1,000,000 times through queues",
             1_000_000, [Metric("ns/roundtrip", "ns per round trip")]),
    Workload("W6c", "lock_contended", "a lock contended by 100 tasks, 1,000,000 acquisitions",
             1_000_000, [Metric("ns/op", "ns per acquisition")]),
]
W3_BIG = 1_000_000  # cio alone, "runs at all"

WORKLOAD_NOTES = {
    "W1": "cio, asyncio, uvloop and Tokio create every task first and then await each in "
          "turn (for asyncio this is faster than a TaskGroup or gather); Go starts "
          "goroutines and waits on a sync.WaitGroup. libuv has no tasks. bare: a minimal "
          "hand-written C coroutine loop (bench/peers/bare: 256 KiB mmap'd stacks without "
          "guard pages, reused; an x86-64 switch; malloc'd records; no futures, cancellation "
          "or task list).",
    "W2": "cio and asyncio: each side awaits a fresh future the other completes. Go: two "
          "unbuffered channels. Tokio: a fresh oneshot channel per round trip (the fastest of "
          "oneshot, bounded mpsc and Notify here). libuv has no tasks.",
    "W3": "Wall time from the first spawn to the last join, minus 1 s. Bytes per task: (peak "
          "RSS - RSS just before spawning) / tasks, the same way for every program. libuv: "
          "one uv_timer_t per 'task'. cio's default stack: 256 KiB reserved, committed on "
          "touch, with a guard page. bare: the same C loop as in W1 (its stacks the same "
          "size, committed on touch, no guard page; a binary timer heap; sleep's deadline from "
          "a clock read at the call, as cio, asyncio and Tokio).",
    "W4": "asyncio: await asyncio.sleep(0); Go: runtime.Gosched(); Tokio: "
          "tokio::task::yield_now(). libuv has no tasks.",
    "W6a": "Delays 1..60 s from the same LCG in every program; all timers are scheduled, "
           "then all cancelled. cio: cio_call_later + cio_handle_cancel; asyncio/uvloop: "
           "loop.call_later + TimerHandle.cancel; Go: time.AfterFunc + Timer.Stop; Tokio: a "
           "boxed Sleep polled once (registered) then dropped; libuv: uv_timer_start + "
           "uv_timer_stop.",
    "W6b": "asyncio.Queue, Go buffered channels, Tokio bounded mpsc (capacity 1024).",
    "W6c": "100 tasks; each takes the lock, yields once while holding it (so the others "
           "queue up) and releases it. asyncio.Lock, sync.Mutex + runtime.Gosched, "
           "tokio::sync::Mutex + yield_now.",
}


def peer_command(build, peer, prog, n):
    """(argv, env, cpu) to run prog with n iterations as `peer`, or a string
    saying why not."""
    if peer == "cio":
        return None  # handled by the caller (needs the workload's binary)
    if peer in ("asyncio", "uvloop"):
        if peer == "uvloop" and "uvloop" in build.notes:
            return build.notes["uvloop"]
        argv = [PY, rel(PEERS / "python/bench.py")] + (["--uvloop"] if peer == "uvloop" else [])
        return argv + [prog, str(n)], None, SERVER_CPU
    if peer in ("go", "go-default"):
        if "go" in build.notes:
            return build.notes["go"]
        argv = [rel(build.peers / "peer-go"), prog, str(n)]
        if peer == "go":
            return argv, {"GOMAXPROCS": "1"}, SERVER_CPU
        return argv, None, None
    if peer == "tokio":
        if "tokio" in build.notes:
            return build.notes["tokio"]
        return [rel(build.peers / "peer-tokio"), prog, str(n)], None, SERVER_CPU
    if peer in ("libuv", "bare"):
        if peer in build.notes:
            return build.notes[peer]
        return [rel(build.peers / f"peer-{peer}"), prog, str(n)], None, SERVER_CPU
    return f"unknown peer {peer}"


def run_cmd(argv, env=None, cpu=None, timeout=900):
    full = (["taskset", "-c", cpu] if cpu is not None else []) + [str(a) for a in argv]
    e = dict(os.environ)
    e.pop("GOMAXPROCS", None)
    if env:
        e.update(env)
    t0 = time.monotonic()
    try:
        r = subprocess.run(full, cwd=ROOT, env=e, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s", time.monotonic() - t0
    if r.returncode != 0:
        err = (r.stderr.strip() or r.stdout.strip())[-300:]
        return None, f"exit {r.returncode}: {err}", time.monotonic() - t0
    return r.stdout, None, time.monotonic() - t0


def run_compute(args, build, results, commands):
    for w in COMPUTE:
        if args.only and w.id not in args.only and w.id[:2] not in args.only:
            continue
        n = max(1, int(w.n * args.scale))
        rows = []  # (label, argv, env, cpu) or (label, reason)
        for peer in w.peers:
            if args.peers and peer not in args.peers:
                continue
            if peer == "cio":
                b = build.path(w.cio_bin)
                if not b.exists():
                    rows.append((peer, f"{rel(b)} is not built (not merged yet?)"))
                    continue
                rows.append((peer, [rel(b), str(n)], None, SERVER_CPU))
                continue
            c = peer_command(build, peer, w.prog, n)
            rows.append((peer, c) if isinstance(c, str) else (peer,) + c)
        if w.id == "W3" and (not args.peers or "cio" in args.peers):
            b = build.path(w.cio_bin)
            big = max(1, int(W3_BIG * args.scale))
            if b.exists():
                rows.insert(1, (f"cio ({big:,} tasks)", [rel(b), str(big)], None, SERVER_CPU))
        res = results.setdefault(w.id, {"title": w.title, "n": n, "prog": w.prog, "rows": {}})
        for row in rows:
            res["rows"].setdefault(row[0], {"runs": [], "skip": None, "errors": []})
            if len(row) == 2:
                res["rows"][row[0]]["skip"] = row[1]
                log(f"{w.id} {row[0]}: skipped ({row[1]})")
        runnable = [r for r in rows if len(r) == 4]
        for label, argv, env, cpu in runnable:
            commands.append((w.id, label, cmd_str(argv, env, cpu)))
        for rnd in range(args.runs):
            for label, argv, env, cpu in runnable:
                out, err, secs = run_cmd(argv, env, cpu)
                row = res["rows"][label]
                fig = parse_line(out, w.prog) if out is not None else None
                if fig is None:
                    err = err or f"no '{w.prog}:' line in the output"
                    row["errors"].append(err)
                    log(f"{w.id} {label} run {rnd + 1}: FAILED {err}")
                    continue
                row["runs"].append(fig)
                shown = ", ".join(f"{fmt(fig.get(m.key))} {m.key}" for m in w.metrics)
                log(f"{w.id} {label} run {rnd + 1}/{args.runs}: {shown}  ({secs:.1f} s)")


# ---- W5: TCP echo ------------------------------------------------------------------------

def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick  # utime + stime, all threads


def wait_port(port, proc, timeout=15.0):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def echo_round_trip(s, msg):
    """Send msg on s and read it back: None, or what went wrong."""
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        chunk = s.recv(len(msg) - len(got))
        if not chunk:
            return "connection closed"
        got += chunk
    return None if got == msg else "echoed bytes differ"


def echo_check(port):
    """Two connections, three 64-byte messages each, echoed back exactly."""
    try:
        socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
        for i in range(3):
            for k, s in enumerate(socks):
                err = echo_round_trip(s, bytes([(i * 7 + k + j) % 251 for j in range(ECHO_SIZE)]))
                if err:
                    return err
        for s in socks:
            s.close()
        return None
    except OSError as e:
        return str(e)


def echo_servers(build):
    """(label, argv template list, env, cpu) or (label, reason)."""
    out = []
    b = build.path(CIO_ECHO_SERVER[0])
    out.append(("cio", CIO_ECHO_SERVER[1].replace("{bin}", rel(b)), None, SERVER_CPU) if b.exists()
               else ("cio", f"{rel(b)} is not built"))
    if b.exists():
        # The same server on the io_uring back end (readiness by poll
        # requests, receives as kernel operations).
        out.append(("cio io_uring", CIO_ECHO_SERVER[1].replace("{bin}", rel(b)),
                    {"CIO_BACKEND": "uring"}, SERVER_CPU))
    b = build.path(CIO_SOCK_ECHO_SERVER[0])
    out.append(("cio sock_*", CIO_SOCK_ECHO_SERVER[1].replace("{bin}", rel(b)), None, SERVER_CPU)
               if b.exists() else ("cio sock_*", f"{rel(b)} is not built"))
    b = build.path(EPOLL_ECHO_SERVER[0])
    out.append(("epoll (limit)", EPOLL_ECHO_SERVER[1].replace("{bin}", rel(b)), None, SERVER_CPU)
               if b.exists() else ("epoll (limit)", f"{rel(b)} is not built (the io branch is not merged yet?)"))
    srv = rel(PEERS / "python/echo_server.py")
    for loop in ("asyncio", "uvloop"):
        for api in ("streams", "protocol"):
            label = f"{loop} {api}"
            if loop == "uvloop" and "uvloop" in build.notes:
                out.append((label, build.notes["uvloop"]))
                continue
            flag = " --uvloop" if loop == "uvloop" else ""
            out.append((label, f"{PY} {srv} {{port}}{flag} --api {api}", None, SERVER_CPU))
    if "go" in build.notes:
        out += [("go", build.notes["go"]), ("go-default", build.notes["go"])]
    else:
        go = rel(build.peers / "peer-go")
        out.append(("go", f"{go} echo {{port}}", {"GOMAXPROCS": "1"}, SERVER_CPU))
        out.append(("go-default", f"{go} echo {{port}}", None, None))
    for peer, binary in (("tokio", "peer-tokio"), ("libuv", "peer-libuv")):
        if peer in build.notes:
            out.append((peer, build.notes[peer]))
        else:
            out.append((peer, f"{rel(build.peers / binary)} echo {{port}}", None, SERVER_CPU))
    return out


class PortCounter:
    def __init__(self, base):
        self.next = base

    def take(self):
        while True:
            p = self.next
            self.next += 1
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                    return p
                except OSError:
                    continue


def run_echo(args, build, results, commands):
    if args.only and "W5" not in args.only:
        return
    res = results.setdefault("W5", {"title": "TCP echo on loopback, 64-byte request/response "
                                             "ping-pong", "rows": {}, "conns": ECHO_CONNS})
    load_bin = Path(args.echo_load) if args.echo_load else build.path(ECHO_LOAD[0])
    load_tpl = args.echo_load_args or ECHO_LOAD[1]
    servers = echo_servers(build)
    if args.peers:
        servers = [s for s in servers if s[0].split()[0] in args.peers or s[0] in args.peers]
    if not load_bin.exists():
        res["skip"] = (f"{rel(load_bin)} is not built (the io branch is not merged yet?): "
                       "W5 was not run")
        log(f"W5: skipped ({res['skip']})")
        return
    runnable = [s for s in servers if len(s) == 4]
    for s in servers:
        if len(s) == 2:
            res["rows"].setdefault(s[0], {})["skip"] = s[1]
            log(f"W5 {s[0]}: skipped ({s[1]})")
    ports = PortCounter(args.port_base)
    for label, tpl, env, cpu in runnable:
        commands.append(("W5", label + " (server)", cmd_str(shlex.split(tpl.replace("{port}", "PORT")), env, cpu)))
    commands.append(("W5", "load generator (warm-up)", cmd_str(shlex.split(load_tpl.format(
        bin=rel(load_bin), port="PORT", conns="CONNS", seconds=num_arg(args.echo_warmup), size=ECHO_SIZE)),
        None, LOADGEN_CPU)))
    commands.append(("W5", "load generator (measured)", cmd_str(shlex.split(load_tpl.format(
        bin=rel(load_bin), port="PORT", conns="CONNS", seconds=num_arg(args.echo_seconds), size=ECHO_SIZE)),
        None, LOADGEN_CPU)))
    checked = set()
    for conns in ECHO_CONNS:
        for rnd in range(args.runs):
            for label, tpl, env, cpu in runnable:
                row = res["rows"].setdefault(label, {})
                cell = row.setdefault(str(conns), {"runs": [], "errors": []})
                port = ports.take()
                argv = shlex.split(tpl.replace("{port}", str(port)))
                e = dict(os.environ)
                e.pop("GOMAXPROCS", None)
                if env:
                    e.update(env)
                full = (["taskset", "-c", cpu] if cpu is not None else []) + argv
                errlog = open(build.peers / "server-stderr.log", "w")
                proc = subprocess.Popen(full, cwd=ROOT, env=e, stdout=subprocess.DEVNULL,
                                        stderr=errlog)
                try:
                    err = None
                    if not wait_port(port, proc):
                        errlog.flush()
                        said = (build.peers / "server-stderr.log").read_text().strip()[-200:]
                        err = "server did not start listening" + (f": {said}" if said else "")
                    elif label not in checked:
                        err = echo_check(port)
                        checked.add(label)
                    if err is None:
                        try:
                            fig, err = measure_echo(args, load_bin, load_tpl, port, conns, proc)
                        except OSError as ex:  # the server died: /proc/PID is gone
                            err = f"server died ({ex})"
                    if err:
                        cell["errors"].append(err)
                        log(f"W5 {label} {conns} conns run {rnd + 1}: FAILED {err}")
                        continue
                    cell["runs"].append(fig)
                    log(f"W5 {label} {conns} conns run {rnd + 1}/{args.runs}: "
                        f"{fmt(fig['req/s'])} req/s, p50 {fmt(fig.get('p50 us'))} us, "
                        f"p99 {fmt(fig.get('p99 us'))} us, server {fmt(fig['cpu us/req'])} us CPU/req")
                finally:
                    proc.terminate()
                    try:
                        proc.wait(5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                    errlog.close()


def run_http(args, build, results, commands):
    """W6h (issue 11): bench/http_bench.py (wrk against examples/http_server and
    nginx; examples/crawl against the seed's aiohttp program), its table kept
    as printed."""
    if args.only and "W6h" not in args.only:
        return
    res = results.setdefault("W6h", {"title": "HTTP: hello with keep-alive (wrk), and the "
                                              "seed's crawler (issue 11)"})
    need = [build.path("examples/http_server"), build.path("examples/crawl")]
    missing = [rel(p) for p in need if not p.exists()]
    tools = [t for t in ("wrk", "nginx") if not shutil.which(t) and not Path("/usr/sbin", t).exists()]
    if missing or tools:
        res["skip"] = "not built or not installed: " + ", ".join(missing + tools)
        log(f"W6h: skipped ({res['skip']})")
        return
    argv = [PY, str(BENCH / "http_bench.py"), "--seconds", str(max(1, round(args.echo_seconds))),
            "--build", str(build.dir)]
    if args.quick:
        argv += ["--pages", "100"]
    commands.append(("W6h", "HTTP servers and crawlers", cmd_str([rel(Path(argv[1]))] + argv[2:])))
    out, err, _ = run_cmd(argv, None, None, timeout=900)
    if err:
        res["skip"] = f"bench/http_bench.py failed: {err}"
        log(f"W6h: FAILED {err}")
        return
    res["text"] = out.strip()
    log("W6h:\n" + res["text"])


def measure_echo(args, load_bin, load_tpl, port, conns, server):
    def load(seconds):
        argv = shlex.split(load_tpl.format(bin=str(load_bin), port=port, conns=conns,
                                           seconds=num_arg(seconds), size=ECHO_SIZE))
        return run_cmd(argv, None, LOADGEN_CPU, timeout=seconds * 4 + 60)

    out, err, _ = load(args.echo_warmup)  # warm-up: the server's caches, pools, JITs
    if err:
        return None, f"warm-up: {err}"
    cpu0 = proc_cpu_seconds(server.pid)
    out, err, _ = load(args.echo_seconds)
    cpu1 = proc_cpu_seconds(server.pid)
    if err:
        return None, err
    fig = parse_echo_load(out)
    if fig is None:
        return None, f"no 'req/s' line in the load generator's output: {out.strip()[-200:]}"
    requests = fig.get("requests") or fig["req/s"] * args.echo_seconds
    if requests <= 0:
        return None, "no request completed"
    fig["cpu us/req"] = (cpu1 - cpu0) * 1e6 / requests
    fig["server cpu %"] = (cpu1 - cpu0) / args.echo_seconds * 100
    return fig, None


# ---- W7: TLS echo ------------------------------------------------------------------------
# The W5 ping-pong over TLS 1.3 on established connections: cio (examples/echo_server
# --tls), asyncio start_server(ssl=), Go crypto/tls (GOMAXPROCS=1). The load generator
# is a cio TLS client (bench/tls_echo_load.c); it makes its connections (handshakes)
# first, then runs the closed loop. The certificate (P-256, for localhost) is made
# with the openssl command.

TLS_ECHO_LOAD = ("bench/bench_tls_echo_load", "{bin} {ca} {port} {conns} {seconds} {size} 0 0")
TLS_ECHO_CONNS = [1, 50]


def tls_certs(build):
    """(ca, cert, key) paths, made once under the peers' directory, or a reason string."""
    d = build.peers / "tls"
    d.mkdir(parents=True, exist_ok=True)
    ca, cert, key = d / "ca.pem", d / "cert.pem", d / "key.pem"
    if cert.exists() and key.exists() and ca.exists():
        return ca, cert, key
    if not shutil.which("openssl"):
        return "the openssl command is not installed"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    steps = [["openssl", "req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(ca),
              "-days", "30", "-subj", "/CN=cio bench CA"],
             ["openssl", "req", *ec, "-keyout", str(key), "-out", str(d / "srv.csr"),
              "-subj", "/CN=localhost"],
             ["openssl", "x509", "-req", "-in", str(d / "srv.csr"), "-CA", str(ca),
              "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(cert), "-days", "30",
              "-extfile", str(d / "ext.cnf")]]
    for argv in steps:
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            return f"openssl failed: {r.stderr.strip()[-200:]}"
    return ca, cert, key


def tls_echo_check(port, ca):
    """One TLS connection (verifying the server), three 64-byte messages echoed exactly."""
    import ssl
    try:
        ctx = ssl.create_default_context(cafile=str(ca))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                for i in range(3):
                    err = echo_round_trip(s, bytes([(i * 7 + j) % 251 for j in range(ECHO_SIZE)]))
                    if err:
                        return err
        return None
    except (OSError, ssl.SSLError) as e:
        return str(e)


def tls_echo_servers(build, cert, key):
    out = []
    b = build.path(CIO_ECHO_SERVER[0])
    out.append(("cio", f"{rel(b)} --tls {cert} {key} 127.0.0.1 {{port}}", None, SERVER_CPU)
               if b.exists() else ("cio", f"{rel(b)} is not built"))
    srv = rel(PEERS / "python/echo_server.py")
    out.append(("asyncio streams", f"{PY} {srv} {{port}} --api streams --tls {cert} {key}", None,
                SERVER_CPU))
    if "go" in build.notes:
        out.append(("go", build.notes["go"]))
    else:
        go = rel(build.peers / "peer-go")
        out.append(("go", f"{go} echo {{port}} {cert} {key}", {"GOMAXPROCS": "1"}, SERVER_CPU))
    return out


def run_tls_echo(args, build, results, commands):
    if args.only and "W7" not in args.only:
        return
    res = results.setdefault("W7", {"title": "TLS echo on loopback, 64-byte request/response "
                                             "ping-pong over TLS 1.3", "rows": {},
                                    "conns": TLS_ECHO_CONNS})
    load_bin = build.path(TLS_ECHO_LOAD[0])
    certs = tls_certs(build)
    if isinstance(certs, str) or not load_bin.exists():
        res["skip"] = certs if isinstance(certs, str) else f"{rel(load_bin)} is not built (CIO_TLS off?)"
        log(f"W7: skipped ({res['skip']})")
        return
    ca, cert, key = certs
    load_tpl = TLS_ECHO_LOAD[1].replace("{ca}", str(ca))
    servers = tls_echo_servers(build, cert, key)
    if args.peers:
        servers = [s for s in servers if s[0].split()[0] in args.peers or s[0] in args.peers]
    runnable = [s for s in servers if len(s) == 4]
    for s in servers:
        if len(s) == 2:
            res["rows"].setdefault(s[0], {})["skip"] = s[1]
            log(f"W7 {s[0]}: skipped ({s[1]})")
    for label, tpl, env, cpu in runnable:
        commands.append(("W7", label + " (server)", cmd_str(shlex.split(tpl.replace("{port}", "PORT")), env, cpu)))
    commands.append(("W7", "load generator (warm-up, then measured)", cmd_str(shlex.split(load_tpl.format(
        bin=rel(load_bin), port="PORT", conns="CONNS", seconds="SECONDS", size=ECHO_SIZE)), None, LOADGEN_CPU)))
    ports = PortCounter(args.port_base + 500)
    checked = set()
    for conns in TLS_ECHO_CONNS:
        for rnd in range(args.runs):
            for label, tpl, env, cpu in runnable:
                cell = res["rows"].setdefault(label, {}).setdefault(str(conns), {"runs": [], "errors": []})
                port = ports.take()
                e = dict(os.environ)
                e.pop("GOMAXPROCS", None)
                if env:
                    e.update(env)
                full = (["taskset", "-c", cpu] if cpu is not None else []) + \
                    shlex.split(tpl.replace("{port}", str(port)))
                proc = subprocess.Popen(full, cwd=ROOT, env=e, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
                try:
                    err = None
                    if not wait_port(port, proc):
                        err = "server did not start listening"
                    elif label not in checked:
                        err = tls_echo_check(port, ca)
                        checked.add(label)
                    if err is None:
                        try:
                            fig, err = measure_echo(args, load_bin, load_tpl, port, conns, proc)
                        except OSError as ex:
                            err = f"server died ({ex})"
                    if err:
                        cell["errors"].append(err)
                        log(f"W7 {label} {conns} conns run {rnd + 1}: FAILED {err}")
                        continue
                    cell["runs"].append(fig)
                    log(f"W7 {label} {conns} conns run {rnd + 1}/{args.runs}: "
                        f"{fmt(fig['req/s'])} req/s, server {fmt(fig['cpu us/req'])} us CPU/req")
                finally:
                    proc.terminate()
                    try:
                        proc.wait(5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()


# ---- the machine ---------------------------------------------------------------------------

def machine_info(build):
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    tokio = ""
    lock = PEERS / "tokio/Cargo.lock"
    if lock.exists():
        m = re.search(r'name = "tokio"\nversion = "([^"]+)"', lock.read_text())
        tokio = m.group(1) if m else ""
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "memory": mem,
        "os": sh(["sh", "-c", ". /etc/os-release && echo \"$PRETTY_NAME\""]),
        "cio": sh(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
        "cc": sh(["cc", "--version"]).splitlines()[0] if sh(["cc", "--version"]) else "",
        "cio build": sh(["sh", "-c", f"grep -m1 CMAKE_BUILD_TYPE: {build.dir}/CMakeCache.txt | cut -d= -f2"]),
        "python": sh([PY, "-c", "import sys; print(sys.version.split()[0])"]),
        "uvloop": sh([PY, "-c", "import uvloop; print(uvloop.__version__)"]),
        "go": sh(["go", "version"]),
        "rustc": sh(["rustc", "--version"]),
        "tokio": tokio,
        "libuv": sh(["pkg-config", "--modversion", "libuv"]),
        "load average at start": " ".join(open("/proc/loadavg").read().split()[:3]),
    }
    return info


# ---- rendering -------------------------------------------------------------------------------

TARGETS = {  # workload -> [(metric key, kind, value, text)]
    # kind "max": at most value; "beat": below every peer; "ratio": at most
    # factor x each listed peer's median (value: [(peer, factor)], issue 14).
    "W1": [("ns/task", "ratio", [("bare", 1.5)], "within 1.5× of the bare C loop")],
    "W2": [("ns/roundtrip", "max", 150, "≤ 150 ns per round trip")],
    "W3": [("ms beyond 1 s", "ratio", [("bare", 1.0), ("tokio", 1.0)],
            "≤ the bare C loop's and ≤ Tokio's, at 100,000 tasks"),
           ("B/task", "max", 4300, "≤ 4.3 KB (4,300 B) per task, guard pages on"),
           ("runs", "big", None, "1,000,000 tasks run at all")],
    "W4": [("ns/yield", "max", 50, "≤ 50 ns per yield")],
    "W6a": [("ns/op", "beat", None, "faster than every peer")],
    "W6b": [("ns/roundtrip", "beat", None, "faster than every peer")],
    "W6c": [("ns/op", "beat", None, "faster than every peer")],
}


def row_stats(row, key):
    return stats([r.get(key) for r in row.get("runs", [])])


def check_targets(results):
    """[(workload, target text, cio figure text, met: True/False/None)]"""
    out = []
    for wid, targets in TARGETS.items():
        res = results.get(wid)
        if not res:
            continue
        cio = res["rows"].get("cio", {})
        for key, kind, value, text in targets:
            if kind == "big":
                big = [k for k in res["rows"] if k.startswith("cio (")]
                if not big:
                    out.append((wid, text, "not run", None))
                    continue
                row = res["rows"][big[0]]
                ok = bool(row.get("runs")) and not row.get("errors")
                shown = (f"{big[0]}: {fmt(row_stats(row, 'ms beyond 1 s')['median'])} ms beyond 1 s, "
                         f"{fmt(row_stats(row, 'B/task')['median'])} B/task") if row.get("runs") else \
                    f"{big[0]}: failed: {(row.get('errors') or [row.get('skip')])[0]}"
                out.append((wid, text, shown, ok))
                continue
            s = row_stats(cio, key)
            if s is None:
                out.append((wid, text, "not measured: " + (cio.get("skip") or "failed"), None))
                continue
            if kind == "max":
                out.append((wid, text, f"{fmt(s['median'])} {key}", s["median"] <= value))
            elif kind == "ratio":
                shown, ok = [f"{fmt(s['median'])} {key}"], True
                for peer, factor in value:
                    ps = row_stats(res["rows"].get(peer, {}), key)
                    if ps is None or not ps["median"]:
                        shown.append(f"{peer} not measured")
                        ok = None if ok is not False else False
                        continue
                    r = s["median"] / ps["median"]
                    shown.append(f"{peer} {fmt(ps['median'])} ({r:.2f}×)")
                    if r > factor:
                        ok = False
                out.append((wid, text, "; ".join(shown), ok))
            else:
                peers = {k: row_stats(r, key) for k, r in res["rows"].items()
                         if k != "cio" and not k.startswith("cio (")}
                peers = {k: v for k, v in peers.items() if v}
                if not peers:
                    out.append((wid, text, f"{fmt(s['median'])} {key} (no peer measured)", None))
                    continue
                best = min(peers, key=lambda k: peers[k]["median"])
                out.append((wid, text, f"{fmt(s['median'])} {key}; best peer {best} "
                                       f"{fmt(peers[best]['median'])}", s["median"] < peers[best]["median"]))
    w5 = results.get("W5")
    if w5 and not w5.get("skip"):
        for conns in ECHO_CONNS:
            c = str(conns)
            cio = w5["rows"].get("cio", {}).get(c)
            cs = stats([r["cpu us/req"] for r in cio["runs"]]) if cio and cio.get("runs") else None
            text = (f"server CPU per request ≤ the most efficient pinned peer's, req/s ≥ its, "
                    f"at {conns} conn(s)")
            peers = {}
            for k, row in w5["rows"].items():
                if k in UNCOMPARED_ECHO or k.startswith("cio ") or not row.get(c, {}).get("runs"):
                    continue
                peers[k] = (stats([r["cpu us/req"] for r in row[c]["runs"]]),
                            stats([r["req/s"] for r in row[c]["runs"]]))
            if not cs or not peers:
                out.append(("W5", text, "not measured", None))
                continue
            best = min(peers, key=lambda k: peers[k][0]["median"])
            crs = stats([r["req/s"] for r in cio["runs"]])
            ok = cs["median"] <= peers[best][0]["median"] and crs["median"] >= peers[best][1]["median"]
            out.append(("W5", text, f"cio {fmt(cs['median'])} µs, {fmt(crs['median'])} req/s; "
                                    f"{best} {fmt(peers[best][0]['median'])} µs, "
                                    f"{fmt(peers[best][1]['median'])} req/s", ok))
        # streams vs the same server on the raw socket calls (issue 9: within 10%)
        for conns in ECHO_CONNS:
            c = str(conns)
            a = w5["rows"].get("cio", {}).get(c)
            b = w5["rows"].get("cio sock_*", {}).get(c)
            text = f"streams echo server CPU per request within 10% of the sock_* one, at {conns} conn(s)"
            if not (a and a.get("runs") and b and b.get("runs")):
                out.append(("W5", text, "not measured", None))
                continue
            sa = stats([r["cpu us/req"] for r in a["runs"]])["median"]
            sb = stats([r["cpu us/req"] for r in b["runs"]])["median"]
            out.append(("W5", text, f"streams {fmt(sa)} µs, sock_* {fmt(sb)} µs ({sa / sb:.2f}×)",
                        sa <= 1.10 * sb))
    return out


def mm(s):
    if not s:
        return "-"
    return f"{fmt(s['min'])}–{fmt(s['max'])}"


def ratio(s, base):
    if not s or not base or not base["median"]:
        return "-"
    return f"{s['median'] / base['median']:.2f}×"


def render_compute_table(w, res):
    lines = []
    metrics = [m for m in w.metrics]
    head = ["peer"]
    for m in metrics:
        head += [f"{m.title} median", "min–max", "× cio"]
    head += ["runs"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    cio = res["rows"].get("cio", {})
    for label, row in res["rows"].items():
        if row.get("skip"):
            lines.append(f"| {label} | " + " | ".join(["-"] * (len(head) - 2)) +
                         f" | skipped: {row['skip']} |")
            continue
        cells = [label]
        for m in metrics:
            s = row_stats(row, m.key)
            cells += [fmt(s["median"], m.digits) if s else "-", mm(s),
                      "1.00×" if label == "cio" and s else ratio(s, row_stats(cio, m.key))]
        nrun = len(row.get("runs", []))
        errs = row.get("errors", [])
        cells.append(f"{nrun}" + (f" ({len(errs)} failed: {errs[0][:120]})" if errs else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_echo_table(res):
    lines = []
    if res.get("skip"):
        return [f"**Not run:** {res['skip']}"]
    for conns in res.get("conns", ECHO_CONNS):
        c = str(conns)
        lines += ["", f"**{conns} connection{'s' if conns > 1 else ''}**", ""]
        head = ["server", "req/s median", "min–max", "p50 µs", "p99 µs", "server CPU µs/req",
                "min–max", "× cio (CPU)", "× epoll (CPU)", "× best peer (CPU)", "× best peer (req/s)",
                "runs"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        cell_stats = {}
        for label, row in res["rows"].items():
            if row.get(c, {}).get("runs"):
                runs = row[c]["runs"]
                cell_stats[label] = {k: stats([r.get(k) for r in runs])
                                     for k in ("req/s", "p50 us", "p99 us", "cpu us/req")}
        peers = {k: v for k, v in cell_stats.items()
                 if k not in UNCOMPARED_ECHO and not k.startswith("cio ")}
        best_cpu = min(peers, key=lambda k: peers[k]["cpu us/req"]["median"]) if peers else None
        best_rps = max(peers, key=lambda k: peers[k]["req/s"]["median"]) if peers else None
        for label, row in res["rows"].items():
            if row.get("skip"):
                lines.append(f"| {label} | " + " | ".join(["-"] * (len(head) - 2)) +
                             f" | skipped: {row['skip']} |")
                continue
            s = cell_stats.get(label)
            errs = row.get(c, {}).get("errors", [])
            if not s:
                lines.append(f"| {label} | " + " | ".join(["-"] * (len(head) - 2)) +
                             f" | failed: {errs[0][:120] if errs else '?'} |")
                continue
            cio = cell_stats.get("cio")
            ep = cell_stats.get("epoll (limit)")
            cells = [label, fmt(s["req/s"]["median"]), mm(s["req/s"]),
                     fmt(s["p50 us"]["median"]) if s["p50 us"] else "-",
                     fmt(s["p99 us"]["median"]) if s["p99 us"] else "-",
                     fmt(s["cpu us/req"]["median"], 2), mm(s["cpu us/req"]),
                     ratio(s["cpu us/req"], cio["cpu us/req"]) if cio else "-",
                     ratio(s["cpu us/req"], ep["cpu us/req"]) if ep else "-",
                     ratio(s["cpu us/req"], peers[best_cpu]["cpu us/req"]) if best_cpu else "-",
                     ratio(s["req/s"], peers[best_rps]["req/s"]) if best_rps else "-",
                     str(len(row[c]["runs"])) + (f" ({len(errs)} failed)" if errs else "")]
            lines.append("| " + " | ".join(cells) + " |")
        if best_cpu:
            lines += ["", f"Most efficient pinned peer: {best_cpu} (CPU per request); "
                          f"highest req/s among peers: {best_rps}."]
    return lines


def gnuplot_available():
    return shutil.which("gnuplot") is not None


def plot_bars(png, panels, title):
    """panels: [(ylabel, [(label, median, min, max)], log)]: one bar chart per
    panel, stacked vertically, medians as bars, min-max as error bars."""
    data_dir = png.parent / "data"
    data_dir.mkdir(exist_ok=True)
    script = [f"set terminal pngcairo size 900,{330 * len(panels) + 40} font 'sans,10'",
              f"set output '{png}'", "set style fill solid 0.7 border -1",
              "set boxwidth 0.6", "set grid ytics", "set xtics rotate by -25 nomirror",
              "set key off", "set yrange [0:*]"]
    if len(panels) > 1:
        script.append(f"set multiplot layout {len(panels)},1 title '{title}'")
    else:
        script.append(f"set title '{title}'")
    for i, (ylabel, bars, logscale) in enumerate(panels):
        dat = data_dir / f"{png.stem}_{i}.dat"
        with open(dat, "w") as f:
            for k, (label, med, lo, hi) in enumerate(bars):
                color = 0xD9822B if label.startswith("cio") else 0x999999 if label.startswith("epoll") \
                    else 0x4A7EBB
                f.write(f"{k} \"{label}\" {med} {lo} {hi} {color}\n")
        script.append(f"set ylabel '{ylabel}'")
        script.append("set logscale y; set yrange [*:*]" if logscale else "unset logscale y; set yrange [0:*]")
        script.append(f"set xrange [-0.6:{len(bars) - 0.4}]")
        script.append(f"plot '{dat}' using 1:3:6:xtic(2) with boxes lc rgb variable, "
                      f"'' using 1:3:4:5 with yerrorbars lc rgb '#222222' pt 7 ps 0.4, "
                      f"'' using 1:5:($3 >= 100 ? sprintf('%.0f', $3) : sprintf('%.3g', $3)) "
                      f"with labels offset 0,0.8 font ',8'")
    if len(panels) > 1:
        script.append("unset multiplot")
    r = subprocess.run(["gnuplot"], input="\n".join(script), text=True, capture_output=True)
    if r.returncode != 0:
        log(f"gnuplot failed for {png.name}: {r.stderr.strip()[-300:]}")
        return False
    return True


def render_charts(results, out_dir):
    made = {}
    if not gnuplot_available():
        log("gnuplot not found: no charts")
        return made
    groups = {"W1": ["W1"], "W2": ["W2"], "W3": ["W3"], "W4": ["W4"], "W6": ["W6a", "W6b", "W6c"]}
    for name, wids in groups.items():
        panels = []
        for wid in wids:
            res = results.get(wid)
            w = next((x for x in COMPUTE if x.id == wid), None)
            if not res or not w:
                continue
            metrics = w.metrics[:2] if wid == "W3" else w.metrics[:1]
            for m in metrics:
                bars = []
                for label, row in res["rows"].items():
                    s = row_stats(row, m.key)
                    if s:
                        bars.append((label, s["median"], s["min"], s["max"]))
                if bars:
                    vals = [b[1] for b in bars if b[1] > 0]
                    logscale = bool(vals) and min(vals) > 0 and max(vals) / min(vals) > 30
                    panels.append((f"{wid}: {m.title}" + (" (log)" if logscale else ""), bars, logscale))
        if panels:
            png = out_dir / f"{name}.png"
            title = {"W6": "W6: timers, queue ping-pong, contended lock"}.get(
                name, f"{name}: {results[wids[0]]['title']}")
            if plot_bars(png, panels, title.replace("'", "")):
                made[name] = png.name
    w5 = results.get("W5")
    if w5 and not w5.get("skip"):
        panels = []
        for key, ylabel in (("cpu us/req", "server CPU µs per request"), ("req/s", "requests/s")):
            for conns in w5.get("conns", ECHO_CONNS):
                bars = []
                for label, row in w5["rows"].items():
                    runs = row.get(str(conns), {}).get("runs") if not row.get("skip") else None
                    if runs:
                        s = stats([r[key] for r in runs])
                        bars.append((label, s["median"], s["min"], s["max"]))
                if bars:
                    panels.append((f"{ylabel}, {conns} conn(s)", bars, False))
        if panels and plot_bars(out_dir / "W5.png", panels, "W5: TCP echo, 64-byte ping-pong"):
            made["W5"] = "W5.png"
    return made


def read_analysis():
    """bench/ANALYSIS.md: '## W1' sections with the human analysis of a
    shortfall (where the time goes, the change that would close the gap)."""
    p = BENCH / "ANALYSIS.md"
    out = {}
    if not p.exists():
        return out
    cur = None
    for line in p.read_text().splitlines():
        m = re.match(r"^## (W\d\w?)\b", line)
        if m:
            cur = m.group(1)
            out[cur] = []
        elif cur:
            out[cur].append(line)
    return {k: "\n".join(v).strip() for k, v in out.items()}


def render(results, meta, out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = render_charts(results, out_dir)
    info = meta["machine"]
    L = []
    L.append("# cio versus its peers: benchmark results")
    L.append("")
    if meta.get("quick"):
        L.append("> **Quick mode** (fewer, shorter runs at reduced sizes): for trying the harness, "
                 "not for quoting.")
        L.append("")
    L.append(f"Produced by `{meta['command']}` on {meta['date']} "
             f"({meta['runs']} run{'s' if meta['runs'] > 1 else ''} of each program, alternating; "
             f"sizes × {meta['scale']}).")
    L.append("")
    if meta.get("merged"):
        m = meta["merged"]
        L.append(f"Workloads {', '.join(m['workloads'])} are kept from the earlier run "
                 f"`{m['command']}` of {m['date']} (cio {m['cio']}); the others were run again "
                 f"as above (cio {info.get('cio', '')}).")
        L.append("")
    L.append("## Machine and software")
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    for k in ("cpu", "cores", "kernel", "memory", "os", "load average at start", "cio", "cio build",
              "cc", "python", "uvloop", "go", "rustc", "tokio", "libuv"):
        L.append(f"| {k} | {info.get(k, '')} |")
    L.append("")
    L.append("## Method")
    L.append("")
    L.append(f"- Every workload runs each program {meta['runs']} times, alternating the programs "
             "(A B C … A B C …); tables give the median and the min–max of the runs, and each "
             "figure divided by cio's (`× cio`: above 1 means the peer takes more time, memory "
             "or CPU than cio; for req/s, above 1 means the peer serves more).")
    L.append("- Servers and single-threaded programs are pinned to CPU 0 (`taskset -c 0`), the "
             "load generator to CPU 1. `go` runs with GOMAXPROCS=1 on CPU 0; `go-default` runs "
             "with Go's default GOMAXPROCS unpinned (it may use both CPUs; in W5 it shares CPU 1 "
             "with the load generator), reported separately.")
    L.append("- Every program prints one line in the same format and measures itself the same "
             "way: monotonic clock around the work, peak RSS from getrusage (VmHWM for Tokio, "
             "the same kernel figure), bytes per task = (peak RSS − RSS before spawning) / tasks.")
    L.append("- W5: a fresh server per measurement; the C load generator first runs a "
             f"{meta['echo_warmup']} s warm-up, then the server's CPU time (utime + stime of all "
             f"its threads, /proc/PID/stat) is read around a {meta['echo_seconds']} s measured "
             "run; server CPU µs/request = that CPU time / requests completed. At 50+ "
             "connections the load generator saturates its core, so CPU per request is the "
             "figure to compare. Each server is first checked to echo bytes back unchanged.")
    L.append("- The peers are plain, idiomatic programs (bench/peers/); per-workload notes "
             "below say which primitive each uses.")
    L.append("")
    targets = check_targets(results)
    if targets:
        L.append("## Targets (issues 6 and 14)")
        L.append("")
        L.append("| workload | target | cio | met |")
        L.append("|---|---|---|---|")
        for wid, text, shown, ok in targets:
            L.append(f"| {wid} | {text} | {shown} | "
                     f"{'yes' if ok else 'no' if ok is False else 'not measured'} |")
        L.append("")
    for w in COMPUTE:
        res = results.get(w.id)
        if not res:
            continue
        L.append(f"## {w.id}: {res['title']}")
        L.append("")
        L.append(f"Size: {res['n']:,} (program `{res['prog']}`). {WORKLOAD_NOTES.get(w.id, '')}")
        L.append("")
        L += render_compute_table(w, res)
        L.append("")
        chart = charts.get(w.id) or (charts.get("W6") if w.id == "W6c" else None)
        if chart:
            L.append(f"![{w.id}]({chart})")
            L.append("")
    if "W5" in results:
        L.append(f"## W5: {results['W5']['title']}")
        L.append("")
        L.append("Servers: cio (streams: examples/echo_server, cio_start_server, cio_stream_read, "
                 "write + drain), cio sock_* (the same server on the raw socket calls: "
                 "bench/sock_echo.c), the hand-written single-threaded epoll "
                 "server in C (the limit), asyncio and uvloop each with streams and with a "
                 "Protocol, Go (a goroutine per connection), Tokio current_thread (a task per "
                 "connection), libuv with its own callbacks (uv_try_write, then uv_write).")
        L += render_echo_table(results["W5"])
        L.append("")
        if charts.get("W5"):
            L.append(f"![W5]({charts['W5']})")
            L.append("")
    if "W6h" in results:
        w = results["W6h"]
        L.append(f"## W6h: {w['title']}")
        L.append("")
        if "skip" in w:
            L.append(f"Not run: {w['skip']}.")
        else:
            L.append("One run of bench/http_bench.py (its own method is in its docstring; "
                     "analysis in bench/results/W6-http.md):")
            L.append("")
            L.append("```")
            L.append(w["text"])
            L.append("```")
    if "W7" in results:
        L.append(f"## W7: {results['W7']['title']}")
        L.append("")
        L.append("Servers: cio (examples/echo_server --tls: streams over OpenSSL 3), asyncio "
                 "start_server(ssl=) (Python's ssl module, OpenSSL too), Go crypto/tls "
                 "(GOMAXPROCS=1). Load: bench/tls_echo_load (a cio TLS client) makes its "
                 "connections first (their handshakes fall inside the CPU window: a few ms), "
                 "then runs the closed loop. The figure to compare is server CPU per request.")
        L += render_echo_table(results["W7"])
        L.append("")
    missed = [t for t in targets if t[3] is False]
    L.append("## Where cio falls short")
    L.append("")
    if not missed:
        L.append("No measured target is missed." if targets else "No target was measured.")
    analysis = read_analysis()
    profiles = meta.get("profiles", {})
    seen = set()
    for wid, text, shown, ok in missed:
        key = wid[:2] if wid.startswith("W6") else wid
        L.append(f"### {wid}: {text}")
        L.append("")
        L.append(f"Measured: {shown}.")
        L.append("")
        if wid in profiles:
            L.append(f"Profile of cio's program (`{profiles[wid]['command']}`, perf cpu-clock, "
                     "self time, top entries):")
            L.append("")
            L.append("```")
            L.append(profiles[wid]["report"])
            L.append("```")
            L.append("")
        for k in (wid, key):
            if k in analysis and k not in seen:
                seen.add(k)
                L.append(analysis[k])
                L.append("")
    L.append("## Commands")
    L.append("")
    L.append("Run from the repository root (PORT, CONNS: chosen per run; W5 connection counts "
             f"{', '.join(map(str, ECHO_CONNS))}).")
    L.append("")
    L.append("```")
    for wid, label, cmd in meta["commands"]:
        L.append(f"# {wid} {label}")
        L.append(cmd)
    L.append("```")
    L.append("")
    (out_dir / "RESULTS.md").write_text("\n".join(L))
    log(f"wrote {rel(out_dir / 'RESULTS.md')} and {len(charts)} chart(s)")


# ---- profiles for missed targets ---------------------------------------------------------------

def perf_usable():
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "record", "-e", "cpu-clock", "-o", "/dev/null", "true"],
                       capture_output=True, text=True)
    return r.returncode == 0


def profile_missed(args, build, results, meta):
    if args.no_profile or not perf_usable():
        return
    wanted = {}
    for wid, text, shown, ok in check_targets(results):
        if ok is False and wid != "W5":
            w = next((x for x in COMPUTE if x.id == wid), None)
            if w and build.path(w.cio_bin).exists():
                wanted[wid] = w
    for wid, w in wanted.items():
        n = results[wid]["n"]
        data = build.dir / f"perf-{wid}.data"
        argv = ["perf", "record", "-e", "cpu-clock", "-F", "2000", "-g", "-o", str(data),
                "--", "taskset", "-c", SERVER_CPU, str(build.path(w.cio_bin)), str(n)]
        log(f"profiling {wid}: {cmd_str(argv)}")
        r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            continue
        rep = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--stdio",
                              "-g", "none", "--percent-limit", "1.5", "--sort", "dso,symbol"],
                             capture_output=True, text=True).stdout
        lines = [re.sub(r"(\s+-)+\s*$", "", ln.rstrip()) for ln in rep.splitlines()
                 if ln.strip() and not ln.startswith("#")]
        meta.setdefault("profiles", {})[wid] = {
            "command": cmd_str([rel(build.path(w.cio_bin)), str(n)], None, SERVER_CPU),
            "report": "\n".join(lines[:25])}


# ---- main ----------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="1 run each, sizes x 0.1, W5 1 s after a 1 s warm-up")
    ap.add_argument("--runs", type=int, help="runs of each program (default 3; quick 1)")
    ap.add_argument("--scale", type=float, help="multiply every size by this (default 1; quick 0.1)")
    ap.add_argument("--only", help="comma-separated workloads, e.g. W1,W3,W5 (W6 = W6a,W6b,W6c; W6h = HTTP)")
    ap.add_argument("--peers", help="comma-separated peers, e.g. cio,go,tokio")
    ap.add_argument("--merge", action="store_true",
                    help="with --only: keep the other workloads' figures from the existing "
                         "results.json (RESULTS.md then says which ran when)")
    ap.add_argument("--echo-seconds", type=float, help="W5 measured time (default 5; quick 1)")
    ap.add_argument("--echo-warmup", type=float, help="W5 warm-up time (default 2; quick 1)")
    ap.add_argument("--echo-load", help="load generator binary (default build/bench/bench_echo_load)")
    ap.add_argument("--echo-load-args", help=f"its command template (default: {ECHO_LOAD[1]!r})")
    ap.add_argument("--port-base", type=int, default=19100)
    ap.add_argument("--build-dir", default=str(ROOT / "build"))
    ap.add_argument("--out", default=str(BENCH / "results"))
    ap.add_argument("--no-build", action="store_true", help="do not (re)build the peers")
    ap.add_argument("--no-profile", action="store_true", help="no perf profile for missed targets")
    ap.add_argument("--render-only", action="store_true",
                    help="re-render RESULTS.md and the charts from results.json")
    args = ap.parse_args()
    out_dir = Path(args.out)
    if args.render_only:
        saved = json.loads((out_dir / "results.json").read_text())
        render(saved["results"], saved["meta"], out_dir)
        return 0
    args.runs = args.runs or (1 if args.quick else 3)
    args.scale = args.scale or (0.1 if args.quick else 1.0)
    args.echo_seconds = args.echo_seconds or (1.0 if args.quick else 5.0)
    args.echo_warmup = args.echo_warmup or (1.0 if args.quick else 2.0)
    args.only = set(x.strip() for x in args.only.split(",")) if args.only else None
    if args.only and "W6" in args.only:
        args.only |= {"W6a", "W6b", "W6c"}
    args.peers = set(x.strip() for x in args.peers.split(",")) if args.peers else None
    if not shutil.which("taskset"):
        sys.exit("taskset (util-linux) is needed for pinning")

    build = Build(args.build_dir)
    build.build_peers(args.no_build)
    command = os.environ.get("CIO_BENCH_COMMAND") or "bench/run.py " + " ".join(sys.argv[1:])
    meta = {"command": command.strip(), "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "quick": args.quick, "runs": args.runs, "scale": args.scale,
            "echo_seconds": args.echo_seconds, "echo_warmup": args.echo_warmup,
            "machine": machine_info(build), "commands": []}
    results = {}
    commands = []
    t0 = time.monotonic()
    run_compute(args, build, results, commands)
    run_echo(args, build, results, commands)
    run_http(args, build, results, commands)
    run_tls_echo(args, build, results, commands)
    meta["commands"] = commands
    profile_missed(args, build, results, meta)
    old_json = out_dir / "results.json"
    if args.merge and old_json.exists():
        old = json.loads(old_json.read_text())
        kept = sorted(k for k in old["results"] if k not in results)
        for k in kept:
            results[k] = old["results"][k]
            prof = old["meta"].get("profiles", {}).get(k)
            if prof:
                meta.setdefault("profiles", {})[k] = prof
        meta["commands"] += [c for c in old["meta"].get("commands", []) if c[0] in kept]
        meta["merged"] = {"workloads": kept, "date": old["meta"]["date"],
                          "cio": old["meta"]["machine"].get("cio", ""),
                          "command": old["meta"].get("command", "")}
    meta["elapsed s"] = round(time.monotonic() - t0)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps({"results": results, "meta": meta}, indent=1))
    render(results, meta, out_dir)
    log(f"done in {meta['elapsed s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
