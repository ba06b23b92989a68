"""Which cancel message a task sees when two requests arrive before it resumes
(CPython 3.13), the reference for cancel_messages_as_asyncio in
tests/test_hardening.c. Run: PYENV_VERSION=3.13.0 python3 tests/py/cancel_messages.py
Prints:
  suspended on a sleep: first
  not started: second
  ready (after a yield): second
  awaited future cancelled by another party: x
"""
import asyncio


async def sleeps():
    await asyncio.sleep(10)


async def yields_then_sleeps():
    await asyncio.sleep(0)
    await asyncio.sleep(10)


async def awaits(fut):
    await fut


async def outcome(label, t):
    try:
        await t
    except asyncio.CancelledError as e:
        print(f"{label}: {e.args[0]}")


async def main():
    t = asyncio.create_task(sleeps())
    await asyncio.sleep(0)
    t.cancel("first")
    t.cancel("second")
    await outcome("suspended on a sleep", t)

    t = asyncio.create_task(sleeps())
    t.cancel("first")
    t.cancel("second")
    await outcome("not started", t)

    t = asyncio.create_task(yields_then_sleeps())
    await asyncio.sleep(0)
    t.cancel("first")
    t.cancel("second")
    await outcome("ready (after a yield)", t)

    fut = asyncio.get_running_loop().create_future()
    t = asyncio.create_task(awaits(fut))
    await asyncio.sleep(0)
    fut.cancel("x")
    t.cancel("y")
    await outcome("awaited future cancelled by another party", t)


asyncio.run(main())
