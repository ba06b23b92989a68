# The asyncio side of bench/file_read.c: the same sequential 64 KiB and
# random 4 KiB (64 in flight) reads, with aiofiles (python3-aiofiles) or
# asyncio.to_thread + os.pread.
# Usage: file_read.py PATH aiofiles|to_thread
import asyncio, os, random, sys, time

SEQ, RND, INFLIGHT, READS = 65536, 4096, 64, 200000

async def main(path, how):
    size = os.path.getsize(path)
    left = [READS]
    if how == "aiofiles":
        import aiofiles
        t0 = time.monotonic(); total = 0
        async with aiofiles.open(path, "rb") as f:
            while chunk := await f.read(SEQ):
                total += len(chunk)
        seq = time.monotonic() - t0
        fds = [await aiofiles.open(path, "rb") for _ in range(INFLIGHT)]
        async def reader(f, rng):
            while left[0] > 0:
                left[0] -= 1
                await f.seek(rng.randrange(size // RND) * RND)
                await f.read(RND)
        t0 = time.monotonic()
        await asyncio.gather(*(reader(f, random.Random(i)) for i, f in enumerate(fds)))
        rnd = time.monotonic() - t0
        for f in fds:
            await f.close()
    else:
        fd = os.open(path, os.O_RDONLY)
        t0 = time.monotonic(); total = 0
        while chunk := await asyncio.to_thread(os.read, fd, SEQ):
            total += len(chunk)
        seq = time.monotonic() - t0
        async def reader(rng):
            while left[0] > 0:
                left[0] -= 1
                await asyncio.to_thread(os.pread, fd, RND, rng.randrange(size // RND) * RND)
        t0 = time.monotonic()
        await asyncio.gather(*(reader(random.Random(i)) for i in range(INFLIGHT)))
        rnd = time.monotonic() - t0
        os.close(fd)
    print(f"file_read: asyncio {how}, seq {total / 1e6 / seq:.0f} MB/s, rand {READS / rnd / 1e3:.1f} kIOPS")

asyncio.run(main(sys.argv[1], sys.argv[2]))
