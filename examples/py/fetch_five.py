# Seed 003: gather of five fetch(i) that each sleep 1 s.
import asyncio
import vloop


async def fetch(i):
    await asyncio.sleep(1)
    return i * 2


async def main():
    results = await asyncio.gather(
        fetch(1), fetch(2), fetch(3), fetch(4), fetch(5)
    )
    print(results)        # [2, 4, 6, 8, 10]


vloop.run(main)
