# Seed 000: `async for task in as_completed(tasks)` hands the tasks out in
# completion order, not creation order.
import asyncio
import vloop


async def job(name, delay):
    await asyncio.sleep(delay)
    return f"{name} ({delay} s)"


async def main():
    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(job(name, delay))
             for name, delay in (("A", 3), ("B", 1), ("C", 2))]
    async for task in asyncio.as_completed(tasks):
        result = await task
        print(f"t={loop.time():.0f} {result}")


vloop.run(main)
