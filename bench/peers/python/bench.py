#!/usr/bin/python3
"""asyncio and uvloop peers of cio's benchmark programs.

    bench.py [--uvloop] WORKLOAD [N]

Each workload prints one line in the format cio's bench programs use
("<name>: <number> <unit>[, [<label> ] <number> <unit>]..."). The code is the
plain, idiomatic asyncio a Python programmer would write; --uvloop only swaps
the event loop (uvloop.install()), the program is the same.
"""
import asyncio
import resource
import sys
import time


def peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def mib(b):
    return b / (1024.0 * 1024.0)


async def noop():
    return None


async def spawn(n):
    """W1: spawn n tasks that return at once, then join them all. (Creating
    the tasks and awaiting each is faster than a TaskGroup or gather here, and
    is what cio's program does.)"""
    create_task = asyncio.create_task
    t0 = time.perf_counter_ns()
    tasks = [create_task(noop()) for _ in range(n)]
    for t in tasks:
        await t
    ns = (time.perf_counter_ns() - t0) / n
    print(f"spawn: {ns:.1f} ns/task, peak RSS {mib(peak_rss()):.1f} MiB")


async def pingpong(n):
    """W2: two tasks pass a token n times through futures."""
    loop = asyncio.get_running_loop()
    waits = [None, loop.create_future()]

    async def pong():
        for i in range(n):
            await waits[1]
            if i + 1 < n:
                waits[1] = loop.create_future()
            waits[0].set_result(None)

    ponger = asyncio.create_task(pong())
    t0 = time.perf_counter_ns()
    for _ in range(n):
        mine = loop.create_future()
        waits[0] = mine
        waits[1].set_result(None)
        await mine
    ns = (time.perf_counter_ns() - t0) / n
    await ponger
    print(f"pingpong: {ns:.1f} ns/roundtrip")


async def sleep_many(n):
    """W3: n tasks start together and each sleeps 1 s."""
    rss0 = current_rss()
    create_task, sleep = asyncio.create_task, asyncio.sleep
    t0 = time.perf_counter_ns()
    tasks = [create_task(sleep(1)) for _ in range(n)]
    for t in tasks:
        await t
    beyond = (time.perf_counter_ns() - t0) / 1e6 - 1000.0
    peak = peak_rss()
    print(f"sleep_many: {n} tasks, {beyond:.1f} ms beyond 1 s, "
          f"{(peak - rss0) / n:.0f} B/task, peak RSS {mib(peak):.1f} MiB")


async def yield_(n):
    """W4: one task yields n times."""
    sleep = asyncio.sleep
    t0 = time.perf_counter_ns()
    for _ in range(n):
        await sleep(0)
    ns = (time.perf_counter_ns() - t0) / n
    print(f"yield: {ns:.1f} ns/yield")


def never():
    sys.exit("timers: a cancelled timer ran")


async def timers(n):
    """W6a: n timers scheduled (call_later, delays 1..60 s from the shared
    LCG), then all cancelled."""
    loop = asyncio.get_running_loop()
    call_later = loop.call_later
    x = 12345
    t0 = time.perf_counter_ns()
    handles = []
    append = handles.append
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        append(call_later(1.0 + ((x >> 8) % 59000) / 1000.0, never))
    for h in handles:
        h.cancel()
    ns = (time.perf_counter_ns() - t0) / n
    print(f"timers: {ns:.1f} ns/op")


async def queue_pingpong(n):
    """W6b: two tasks pass a token n times through two asyncio.Queue."""
    q1, q2 = asyncio.Queue(), asyncio.Queue()

    async def pong():
        for _ in range(n):
            await q2.put(await q1.get())

    ponger = asyncio.create_task(pong())
    t0 = time.perf_counter_ns()
    for i in range(n):
        await q1.put(i)
        await q2.get()
    ns = (time.perf_counter_ns() - t0) / n
    await ponger
    print(f"queue_pingpong: {ns:.1f} ns/roundtrip")


TASKS_LOCK = 100


async def lock_contended(n):
    """W6c: 100 tasks share one asyncio.Lock; each acquires it, yields once
    while holding it (so the others queue up), releases; n acquisitions in all."""
    lock = asyncio.Lock()
    per = max(1, n // TASKS_LOCK)

    async def worker():
        for _ in range(per):
            async with lock:
                await asyncio.sleep(0)

    t0 = time.perf_counter_ns()
    async with asyncio.TaskGroup() as tg:
        for _ in range(TASKS_LOCK):
            tg.create_task(worker())
    ns = (time.perf_counter_ns() - t0) / (per * TASKS_LOCK)
    print(f"lock_contended: {ns:.1f} ns/op")


WORKLOADS = {
    "spawn": (spawn, 1_000_000),
    "pingpong": (pingpong, 1_000_000),
    "sleep_many": (sleep_many, 100_000),
    "yield": (yield_, 1_000_000),
    "timers": (timers, 1_000_000),
    "queue_pingpong": (queue_pingpong, 1_000_000),
    "lock_contended": (lock_contended, 1_000_000),
}


def main(argv):
    use_uvloop = "--uvloop" in argv
    args = [a for a in argv if a != "--uvloop"]
    if not args or args[0] not in WORKLOADS:
        sys.exit(f"usage: bench.py [--uvloop] {{{'|'.join(WORKLOADS)}}} [N]")
    fn, n = WORKLOADS[args[0]]
    if len(args) > 1:
        n = int(float(args[1]))
    if use_uvloop:
        import uvloop
        uvloop.install()
    asyncio.run(fn(n))


if __name__ == "__main__":
    main(sys.argv[1:])
