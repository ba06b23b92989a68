# asyncio peers of bench/proc_spawn.c and bench/proc_communicate.c.
#   proc.py spawn N          spawn + wait N `true` children, 100 at a time
#   proc.py communicate MiB  communicate MiB through cat, best of 3 rounds
import asyncio
import sys
import time


async def spawn(n):
    t0 = time.perf_counter()
    done = 0
    while done < n:
        k = min(100, n - done)
        procs = [await asyncio.create_subprocess_exec('true') for _ in range(k)]
        for p in procs:
            assert await p.wait() == 0
        done += k
    print(f"proc_spawn: {(time.perf_counter() - t0) * 1e3 / n:.3f} ms/child")


async def communicate(mib):
    data = b'x' * (mib << 20)
    best = 0
    for _ in range(3):
        p = await asyncio.create_subprocess_exec(
            'cat', stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        t0 = time.perf_counter()
        out, _ = await p.communicate(data)
        assert len(out) == len(data)
        best = max(best, len(data) / (time.perf_counter() - t0) / 1e9)
    print(f"proc_communicate: {best:.3f} GB/s")


what, n = sys.argv[1], int(float(sys.argv[2]))
asyncio.run(spawn(n) if what == 'spawn' else communicate(n))
