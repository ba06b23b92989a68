# Seed 000: asyncio.wait with FIRST_COMPLETED returns the fastest task in
# `done` and the others in `pending`; a timeout-free ALL_COMPLETED wait then
# collects the rest.
import asyncio
import vloop


async def job(name, delay):
    await asyncio.sleep(delay)
    return f"{name} after {delay} s"


async def main():
    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(job(name, delay), name=name)
             for name, delay in (("slow", 3), ("fast", 1), ("medium", 2))]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    print(f"t={loop.time():.0f} done: {[t.result() for t in tasks if t in done]}")
    print(f"t={loop.time():.0f} pending: {[t.get_name() for t in tasks if t in pending]}")
    done, pending = await asyncio.wait(pending)
    print(f"t={loop.time():.0f} done: {[t.result() for t in tasks if t in done]}")
    print(f"t={loop.time():.0f} pending: {[t.get_name() for t in tasks if t in pending]}")


vloop.run(main)
