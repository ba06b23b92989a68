# Seed 004: fire-and-forget tasks kept in a set (a strong reference) and
# removed from it by a done callback.
import asyncio
import vloop

background_tasks = set()


def fire_and_forget(coro):
    task = asyncio.create_task(coro)
    background_tasks.add(task)
    task.add_done_callback(background_tasks.discard)


async def work(i):
    await asyncio.sleep(i)
    print(f"background task {i} done")


async def main():
    for i in (1, 2, 3):
        fire_and_forget(work(i))
    print(f"background tasks: {len(background_tasks)}")
    # Wait for a snapshot of the set: the done callbacks that discard the
    # tasks were added first, so they have run when wait() returns.
    await asyncio.wait(list(background_tasks))
    print(f"background tasks: {len(background_tasks)}")


vloop.run(main)
