# The asyncio twin of examples/file_lines.c (needs aiofiles: python3-aiofiles,
# run it with Debian's /usr/bin/python3). Every write and every line read is
# a trip to a worker thread: about a minute for the 1,000,000 lines that the
# C program counts in a twentieth of a second (100,000 lines: 6.3 s here).
# Usage: file_lines.py [path]   (default: a 64 MB file of 1,000,000 lines)
import asyncio, os, sys, time
import aiofiles

async def ticker(box):
    while True:
        await asyncio.sleep(0.001)
        box[0] += 1

async def write_lines(path, n):
    async with aiofiles.open(path, 'w') as f:
        line = 'x' * 63 + '\n'
        for _ in range(n):
            await f.write(line)

async def count_lines(path):
    lines = 0
    async with aiofiles.open(path, 'rb') as f:
        async for line in f:
            lines += 1
    print(f"{path}: {lines} lines")

async def main(path):
    tmp = None
    if path is None:
        path = tmp = f"/tmp/cio_file_lines.{os.getpid()}"
        await write_lines(tmp, 1000000)
    box = [0]
    t = asyncio.create_task(ticker(box))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await count_lines(path)
    dt = loop.time() - t0
    t.cancel()
    print(f"{dt:.3f} s on asyncio; the ticker ran {box[0]} times meanwhile")
    if tmp:
        os.unlink(tmp)

asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
