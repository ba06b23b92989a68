#!/usr/bin/python3
"""W6 HTTP (issue 11), short runs:
 1. "hello" with keep-alive: wrk -t1 -c50 and -c1000 against examples/http_server,
    nginx with one worker (tools/nginx.sh, plain HTTP), a hand-written epoll
    responder (bench/epoll_http.c: the limit), and when available Go's net/http
    (GOMAXPROCS=1) and uvloop with an asyncio Protocol; the server pinned to
    CPU 0 and wrk to CPU 1; requests/s and the server's CPU time per request
    (utime+stime of the server's processes from /proc, around the run).
 2. The crawler: examples/crawl against the seed's aiohttp program
    (bench/peers/python/crawl_aiohttp.py, Debian's python3-aiohttp) fetching
    the same N pages from the local nginx over HTTPS: wall time and the
    client's CPU time (getrusage of the child).
Usage: /usr/bin/python3 bench/http_bench.py [--seconds 5] [--build build] [--pages 100,1000]
Needs wrk, nginx, libnginx-mod-http-echo, python3-aiohttp (apt-get install them).
The machine may be shared: treat the figures as noisy."""
import argparse
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / TICK


def tree(pid):
    pids = [pid]
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(int(p.name))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return pids


def wrk(port, conns, seconds, pids):
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{seconds}s",
           f"http://127.0.0.1:{port}/hello"]
    c0 = cpu_seconds(pids)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    c1 = cpu_seconds(pids)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    errs = re.search(r"Socket errors:.*|Non-2xx.*", out)
    return rps, (c1 - c0) / max(reqs, 1) * 1e6, " ".join(cmd), errs.group(0) if errs else ""


def run_child(cmd):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        raise SystemExit(f"{cmd[0]} failed: {p.stderr[-500:]}")
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--pages", default="100,1000")
    ap.add_argument("--conns", default="50,1000")
    a = ap.parse_args()
    build = Path(a.build)
    d = tempfile.mkdtemp(prefix="cio-http-bench-")
    nginx = ROOT / "tools" / "nginx.sh"
    try:
        env = dict(os.environ, CIO_NGINX_DELAY="0.2")
        subprocess.run(["sh", str(nginx), "start", d], check=True, env=env, stdout=subprocess.DEVNULL)
        https_port = int(Path(d, "port").read_text())
        http_port = int(Path(d, "http_port").read_text())
        master = int(Path(d, "nginx.pid").read_text())
        # nginx (and its one worker) on CPU 0, like the cio server.
        for pid in tree(master):
            subprocess.run(["taskset", "-pc", "0", str(pid)], stdout=subprocess.DEVNULL, check=True)
        servers = [("cio http_server", [str(build / "examples" / "http_server"), "--port", "0"], None)]
        servers.append(("nginx (1 worker)", None, None))
        if Path(build / "bench" / "bench_epoll_http").exists():
            servers.append(("epoll responder (limit)", [str(build / "bench" / "bench_epoll_http"),
                                                        "127.0.0.1", "0"], None))
        go_bin = build / "bench" / "peer-go-http"
        if shutil.which("go") and subprocess.run(
                ["go", "build", "-o", str(go_bin), "."], cwd=ROOT / "bench/peers/go_http",
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            servers.append(("Go net/http (1 proc)", [str(go_bin), "0"], {"GOMAXPROCS": "1"}))
        if subprocess.run(["/usr/bin/python3", "-c", "import uvloop"], stderr=subprocess.DEVNULL).returncode == 0:
            servers.append(("uvloop + Protocol", ["/usr/bin/python3",
                                                   str(ROOT / "bench/peers/python/http_uvloop.py"), "0"], None))
        print(f"W6 HTTP hello, keep-alive, wrk -t1 for {a.seconds} s (server on CPU 0, wrk on CPU 1)")
        print(f"{'server':<26}{'conns':>6}{'req/s':>12}{'server CPU µs/req':>20}  notes")
        for conns in [int(c) for c in a.conns.split(",")]:
            for name, argv, extra in servers:
                proc = None
                if argv is None:
                    port, pids = http_port, tree(master)
                else:
                    proc = subprocess.Popen(["taskset", "-c", "0"] + argv, stdout=subprocess.PIPE, text=True,
                                            env=dict(os.environ, **(extra or {})))
                    port, pids = int(proc.stdout.readline().rsplit(":", 1)[1]), [proc.pid]
                try:
                    wrk(port, conns, 1, pids)  # warm-up
                    rps, us, cmd, errs = wrk(port, conns, a.seconds, pids)
                    print(f"{name:<26}{conns:>6}{rps:>12,.0f}{us:>20.2f}  {errs}", flush=True)
                finally:
                    if proc:
                        proc.kill()
                        proc.wait()
        print(f"\ncrawler: N pages from the local nginx, each answered after 0.2 s; both clients")
        print("keep at most 100 connections (aiohttp's default limit); plain HTTP shows the")
        print("clients' own cost without OpenSSL's handshakes, which both pay alike over HTTPS")
        print(f"{'client':<28}{'scheme':>7}{'pages':>6}{'wall s':>9}{'client CPU s':>14}{'CPU ms/page':>13}")
        ca = str(Path(d, "ca.pem"))
        for scheme, port in (("https", https_port), ("http", http_port)):
            base = f"{scheme}://127.0.0.1:{port}/page/"
            for n in [int(x) for x in a.pages.split(",")]:
                for name, cmd in (("cio crawl", [str(build / "examples" / "crawl")]),
                                  ("aiohttp (seed's program)",
                                   ["/usr/bin/python3", str(ROOT / "bench/peers/python/crawl_aiohttp.py")])):
                    wall, cpu = run_child(cmd + ["--cacert", ca, "-n", str(n), base])
                    print(f"{name:<28}{scheme:>7}{n:>6}{wall:>9.2f}{cpu:>14.3f}{cpu / n * 1e3:>13.2f}",
                          flush=True)
    finally:
        subprocess.run(["sh", str(nginx), "stop", d])
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
