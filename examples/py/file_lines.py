# The asyncio twin of examples/file_lines.c (needs aiofiles: python3-aiofiles).
import asyncio, os, sys, time
import aiofiles

async def ticker(box):
    while True:
        await asyncio.sleep(0.001)
        box[0] += 1

async def main(path):
    box = [0]
    t = asyncio.create_task(ticker(box))
    t0 = time.monotonic()
    lines = 0
    async with aiofiles.open(path, 'rb') as f:
        while chunk := await f.read(65536):
            lines += chunk.count(b'\n')
    print(f"{path}: {lines} lines")
    print(f"{time.monotonic() - t0:.3f} s; the ticker ran {box[0]} times meanwhile")
    t.cancel()

asyncio.run(main(sys.argv[1]))
