"""Reference traces for tests/test_group.c, produced by CPython's asyncio.

Each scenario here has a twin in tests/test_group.c that must produce the
same trace: the same events in the same order at the same (virtual) times.
Run with CPython 3.13:

    PYENV_VERSION=3.13.0 python3 tests/py/group_traces.py [name...]

A ticker task ("k0 k1 ...", one entry per loop iteration) makes the number
of loop iterations between two events visible, so the traces pin down the
hop structure, not only the order.
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'examples', 'py'))
from vloop import VirtualLoop  # noqa: E402

out = []


def trace(s):
    out.append(s)


def now():
    return f"{asyncio.get_running_loop().time():g}"


async def ticker(n):
    for i in range(n):
        trace(f"k{i}")
        await asyncio.sleep(0)


async def child(name, delay):
    trace(f"{name}+")
    await asyncio.sleep(delay)
    trace(f"{name}-@{now()}")
    return name


async def sleeper(name, delay, cleanup=0):
    try:
        await asyncio.sleep(delay)
        trace(f"{name}-@{now()}")
    except asyncio.CancelledError:
        trace(f"{name}!@{now()}")
        if cleanup:
            await asyncio.sleep(cleanup)
            trace(f"{name}.@{now()}")
        raise


async def fail_after(name, delay):
    await asyncio.sleep(delay)
    trace(f"{name}x@{now()}")
    raise ValueError(name)


def eg_codes(eg):
    return ",".join(str(e) for e in eg.exceptions)


# ---- TaskGroup -----------------------------------------------------------------

async def tg_basic():
    async with asyncio.TaskGroup() as tg:
        tg.create_task(child("a", 1))
        tg.create_task(child("b", 2))
        trace("body")
    trace(f"joined@{now()}")


async def tg_hops():
    tk = asyncio.create_task(ticker(6))

    async def quick():
        trace("q")

    async def two_yields():
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        trace("y")

    async with asyncio.TaskGroup() as tg:
        tg.create_task(quick())
        tg.create_task(two_yields())
        trace("body")
    trace("joined")
    await tk


async def tg_child_fails():
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(fail_after("a", 1))
            tg.create_task(sleeper("b", 5))
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                trace(f"body!@{now()}")
                raise
    except* ValueError as eg:
        trace(f"eg[{eg_codes(eg)}]@{now()} cancelling={asyncio.current_task().cancelling()}")
    await asyncio.sleep(1)
    trace(f"after@{now()}")


async def tg_two_fail():
    tk = asyncio.create_task(ticker(4))
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(fail_after("a", 1))
            tg.create_task(fail_after("b", 1))
            tg.create_task(sleeper("c", 5))
    except* ValueError as eg:
        trace(f"eg[{eg_codes(eg)}]@{now()}")
    await tk


async def tg_outer_cancel():
    async def parent():
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(sleeper("a", 5, cleanup=0.5))
                tg.create_task(sleeper("b", 5))
                trace("body")
        except asyncio.CancelledError:
            trace(f"parent!@{now()} cancelling={asyncio.current_task().cancelling()}")
            raise
    p = asyncio.create_task(parent())
    await asyncio.sleep(1)
    p.cancel()
    try:
        await p
    except asyncio.CancelledError:
        trace(f"p-cancelled@{now()}")


async def tg_outer_cancel_child_failing():
    me = asyncio.current_task()

    async def failing():
        await asyncio.sleep(1)
        me.cancel()
        trace(f"ax@{now()}")
        raise ValueError("a")

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(failing())
            tg.create_task(sleeper("b", 5))
    except* ValueError as eg:
        trace(f"eg[{eg_codes(eg)}]@{now()} cancelling={me.cancelling()}")
    try:
        await asyncio.sleep(1)
        trace("not-cancelled")
    except asyncio.CancelledError:
        trace(f"recancelled@{now()}")


async def tg_outer_cancel_in_body_while_failing():
    # A child fails and, one iteration later in the same instant, a task
    # outside the group cancels the parent while its body waits.
    me = asyncio.current_task()
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(fail_after("a", 1))

            async def canceller():
                await asyncio.sleep(1)
                trace("cancel")
                me.cancel()
            c = asyncio.create_task(canceller())
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                trace(f"body!@{now()} cancelling={me.cancelling()}")
                raise
    except BaseExceptionGroup as eg:
        trace(f"eg[{eg_codes(eg)}]@{now()} cancelling={me.cancelling()}")
    except asyncio.CancelledError:
        trace(f"cancelled@{now()} cancelling={me.cancelling()}")
    try:
        await asyncio.sleep(1)
        trace("not-cancelled")
    except asyncio.CancelledError:
        trace(f"recancelled@{now()}")


async def tg_nested():
    try:
        async with asyncio.TaskGroup() as outer:
            outer.create_task(fail_after("o", 1))

            async def inner_body():
                async with asyncio.TaskGroup() as inner:
                    inner.create_task(fail_after("i", 1))
                    inner.create_task(sleeper("s", 5))
            outer.create_task(inner_body())
            await asyncio.sleep(10)
    except* ValueError as eg:
        flat = []
        for e in eg.exceptions:
            if isinstance(e, BaseExceptionGroup):
                flat.append("[" + eg_codes(e) + "]")
            else:
                flat.append(str(e))
        trace(f"eg[{','.join(flat)}]@{now()}")


async def tg_body_error():
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(sleeper("a", 5, cleanup=0.5))
            await asyncio.sleep(1)
            raise ValueError("body")
    except* ValueError as eg:
        trace(f"eg[{eg_codes(eg)}]@{now()}")


# ---- timeouts -------------------------------------------------------------------

async def to_basic():
    try:
        async with asyncio.timeout(1) as cm:
            trace(f"when={cm.when():g}")
            await asyncio.sleep(2)
    except TimeoutError:
        trace(f"timeout@{now()} expired={cm.expired()}")


async def to_nested():
    try:
        async with asyncio.timeout(3):
            try:
                async with asyncio.timeout(1):
                    await asyncio.sleep(10)
            except TimeoutError:
                trace(f"inner@{now()}")
            await asyncio.sleep(10)
    except TimeoutError:
        trace(f"outer@{now()}")


async def to_group_to():
    # A timeout scope inside a TaskGroup inside a timeout scope.
    tk = None
    try:
        async with asyncio.timeout(3):
            async with asyncio.TaskGroup() as tg:
                tg.create_task(sleeper("c", 10, cleanup=0.5))
                try:
                    async with asyncio.timeout(1):
                        await asyncio.sleep(10)
                except TimeoutError:
                    trace(f"inner@{now()}")
                await asyncio.sleep(10)
    except TimeoutError:
        trace(f"outer@{now()}")


async def to_outer_cancel():
    me = asyncio.current_task()
    asyncio.get_running_loop().call_later(1, me.cancel)
    try:
        async with asyncio.timeout(1):
            await asyncio.sleep(2)
    except TimeoutError:
        trace("timeout")
    except asyncio.CancelledError:
        trace(f"cancelled@{now()} cancelling={me.cancelling()}")


async def to_reschedule():
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(1) as cm:
            cm.reschedule(loop.time() + 2)
            await asyncio.sleep(1.5)
            trace(f"alive@{now()}")
            cm.reschedule(None)
            await asyncio.sleep(1)
            trace(f"alive@{now()}")
            cm.reschedule(loop.time() - 1)
            await asyncio.sleep(10)
    except TimeoutError:
        trace(f"timeout@{now()}")


async def to_hops():
    tk = asyncio.create_task(ticker(5))
    try:
        async with asyncio.timeout(0):
            trace("body")
            await asyncio.sleep(10)
    except TimeoutError:
        trace("timeout")
    await tk


# ---- wait_for -------------------------------------------------------------------

async def wf_timeout():
    t = asyncio.create_task(sleeper("s", 10, cleanup=0.5))
    try:
        await asyncio.wait_for(t, 3)
    except TimeoutError:
        trace(f"timeout@{now()} cancelled={t.cancelled()}")


async def wf_swallow():
    async def swallow():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            trace(f"swallow@{now()}")
            await asyncio.sleep(0.5)
            return 42
    t = asyncio.create_task(swallow())
    r = await asyncio.wait_for(t, 3)
    trace(f"result={r}@{now()}")


async def wf_hops():
    tk = asyncio.create_task(ticker(8))

    async def quick():
        await asyncio.sleep(0)
        return 7
    t = asyncio.create_task(quick())
    r = await asyncio.wait_for(t, 5)
    trace(f"r={r}")
    t2 = asyncio.create_task(sleeper("z", 10))
    try:
        await asyncio.wait_for(t2, 0)
    except TimeoutError:
        trace("t0")
    await tk


async def wf_race():
    # The inner task's sleep and the deadline expire at the same instant,
    # the inner's timer first: the deadline still cancels the task before it
    # resumes, so wait_for times out and the sleep's result is dropped.
    async def inner():
        try:
            await asyncio.sleep(3)
        except asyncio.CancelledError:
            trace(f"inner!@{now()}")
            raise
        return 1
    t = asyncio.create_task(inner())
    await asyncio.sleep(0)
    try:
        r = await asyncio.wait_for(t, 3)
        trace(f"r={r}")
    except TimeoutError:
        trace(f"timeout@{now()}")


# ---- gather -----------------------------------------------------------------------

async def ga_first_error():
    ts = [asyncio.create_task(fail_after("a", 1)), asyncio.create_task(child("b", 2))]
    try:
        await asyncio.gather(*ts)
    except ValueError as e:
        trace(f"error={e}@{now()}")
    await asyncio.sleep(2)
    trace(f"b-done={ts[1].done()}")


async def ga_cancel_one_done(return_exceptions):
    me = asyncio.current_task()
    ts = [asyncio.create_task(child("a", 1)), asyncio.create_task(sleeper("b", 5, cleanup=0.5)),
          asyncio.create_task(sleeper("c", 5))]
    asyncio.get_running_loop().call_later(2, me.cancel)
    try:
        await asyncio.gather(*ts, return_exceptions=return_exceptions)
    except asyncio.CancelledError:
        trace(f"cancelled@{now()} a={ts[0].result()} b={ts[1].cancelled()} c={ts[2].cancelled()}")


async def ga_hops():
    tk = asyncio.create_task(ticker(6))

    async def val(v):
        return v
    r = await asyncio.gather(val(1), val(2))
    trace(f"r={r}")
    await tk


# ---- wait --------------------------------------------------------------------------

async def wa_modes():
    ts = [asyncio.create_task(child("a", 1)), asyncio.create_task(fail_after("b", 2)),
          asyncio.create_task(child("c", 3))]
    done, pending = await asyncio.wait(ts, return_when=asyncio.FIRST_COMPLETED)
    trace(f"first@{now()} {len(done)}/{len(pending)}")
    done, pending = await asyncio.wait(ts, return_when=asyncio.FIRST_EXCEPTION)
    trace(f"exc@{now()} {len(done)}/{len(pending)}")
    done, pending = await asyncio.wait(ts, timeout=0.5)
    trace(f"timeout@{now()} {len(done)}/{len(pending)}")
    done, pending = await asyncio.wait(ts)
    trace(f"all@{now()} {len(done)}/{len(pending)}")
    ts[1].exception()


async def wa_hops():
    tk = asyncio.create_task(ticker(6))
    f = asyncio.get_running_loop().create_future()
    f.set_result(1)
    await asyncio.wait([f])
    trace("w")
    await tk


# ---- shield ------------------------------------------------------------------------

async def sh_cancel():
    inner = asyncio.create_task(child("i", 3))

    async def waiter():
        try:
            await asyncio.shield(inner)
        except asyncio.CancelledError:
            trace(f"outer!@{now()}")
            raise
    w = asyncio.create_task(waiter())
    await asyncio.sleep(1)
    w.cancel()
    await asyncio.sleep(3)
    trace(f"inner={inner.result()}")


async def sh_hops():
    tk = asyncio.create_task(ticker(6))

    async def quick():
        await asyncio.sleep(0)
        return 5
    r = await asyncio.shield(asyncio.create_task(quick()))
    trace(f"r={r}")
    await tk


# ---- as_completed ----------------------------------------------------------------

async def ac_timeout():
    ts = [asyncio.create_task(child("a", 5)), asyncio.create_task(child("b", 1)),
          asyncio.create_task(child("c", 6))]
    it = asyncio.as_completed(ts, timeout=3)
    n = 0
    while True:
        try:
            t = await it.__anext__()
            trace(f"got={t.result()}@{now()}")
        except TimeoutError:
            trace(f"timeout@{now()}")
        except StopAsyncIteration:
            trace(f"stop@{now()}")
            break
    for t in ts:
        t.cancel()


async def ac_hops():
    tk = asyncio.create_task(ticker(6))

    async def quick():
        await asyncio.sleep(0)
        return 3
    async for t in asyncio.as_completed([asyncio.create_task(quick())]):
        trace(f"r={t.result()}")
    await tk



# ---- hops of the cancellation paths -----------------------------------------------
# A ticker that starts at t=1 (the instant something fires) shows how many
# loop iterations each step of the cancellation takes.

async def late_ticker(n, delay=1):
    await asyncio.sleep(delay)
    for i in range(n):
        trace(f"k{i}")
        await asyncio.sleep(0)


async def hop_tg_outer_cancel():
    me = asyncio.current_task()
    tk = asyncio.create_task(late_ticker(8))
    asyncio.get_running_loop().call_later(1, me.cancel)
    try:
        async with asyncio.TaskGroup() as tg:
            # One child: with several, asyncio cancels them in set order.
            tg.create_task(sleeper("a", 5, cleanup=0))
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                trace("body!")
                raise
    except asyncio.CancelledError:
        trace("cancelled")
    me.uncancel()
    await tk


async def hop_tg_child_fails():
    tk = asyncio.create_task(late_ticker(8))
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(fail_after("a", 1))
            tg.create_task(sleeper("b", 5))
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                trace("body!")
                raise
    except* ValueError:
        trace("eg")
    await tk


async def hop_to_expire():
    tk = asyncio.create_task(late_ticker(6))
    try:
        async with asyncio.timeout(1):
            await asyncio.sleep(10)
    except TimeoutError:
        trace("timeout")
    await tk


async def hop_wf_expire():
    tk = asyncio.create_task(late_ticker(8))
    t = asyncio.create_task(sleeper("s", 10))
    try:
        await asyncio.wait_for(t, 1)
    except TimeoutError:
        trace("timeout")
    await tk


async def hop_ga_cancel():
    me = asyncio.current_task()
    tk = asyncio.create_task(late_ticker(8))
    ts = [asyncio.create_task(sleeper("a", 5)), asyncio.create_task(sleeper("b", 5))]
    asyncio.get_running_loop().call_later(1, me.cancel)
    try:
        await asyncio.gather(*ts, return_exceptions=True)
    except asyncio.CancelledError:
        trace("cancelled")
    me.uncancel()
    await tk


async def hop_wa_timeout():
    tk = asyncio.create_task(late_ticker(6))
    t = asyncio.create_task(sleeper("s", 10))
    done, pending = await asyncio.wait([t], timeout=1)
    trace(f"w{len(done)}/{len(pending)}")
    t.cancel()
    await tk


async def hop_sh_cancel():
    me = asyncio.current_task()
    tk = asyncio.create_task(late_ticker(6))
    inner = asyncio.create_task(sleeper("i", 2))
    asyncio.get_running_loop().call_later(1, me.cancel)
    try:
        await asyncio.shield(inner)
    except asyncio.CancelledError:
        trace("outer!")
    me.uncancel()
    await inner
    await tk


async def hop_ac_timeout():
    tk = asyncio.create_task(late_ticker(6))
    t = asyncio.create_task(sleeper("s", 10))
    it = asyncio.as_completed([t], timeout=1)
    try:
        await it.__anext__()
    except TimeoutError:
        trace("timeout")
    t.cancel()
    await tk

# ---- issue 13: corners checked against CPython 3.13 --------------------------------

async def ga_cancel_msg():
    """Cancelling a caller waiting in gather delivers the cancel's message,
    with and without return_exceptions."""
    async def caller(kids, rex):
        try:
            return await asyncio.gather(*kids, return_exceptions=rex)
        except asyncio.CancelledError as e:
            trace(f"gather=ECANCELED:{e.args[0] if e.args else 'operation cancelled'}")
            raise
    for rex in (False, True):
        kids = [asyncio.ensure_future(sleeper("s", 10)) for _ in range(2)]
        c = asyncio.create_task(caller(kids, rex))
        await asyncio.sleep(0)
        c.cancel("my message")
        try:
            await c
        except asyncio.CancelledError as e:
            trace(f"caller=ECANCELED:{e.args[0] if e.args else 'operation cancelled'}")


async def to_when_past():
    """A negative delay or a past deadline stays in when()."""
    async def scope(cm, resched=None):
        try:
            async with cm:
                trace(f"when={cm.when():g}")
                if resched is not None:
                    cm.reschedule(resched)
                    trace(f"when={cm.when():g}")
                await asyncio.sleep(1)
            return "OK"
        except TimeoutError:
            return "ETIMEDOUT"
    trace(f"rc={await scope(asyncio.timeout(-11))}@{now()}")
    await asyncio.sleep(5)
    cm = asyncio.timeout(-11)
    trace(f"rc={await scope(cm, -2)}@{now()} when={cm.when():g}")
    trace(f"rc={await scope(asyncio.timeout_at(2.5))}@{now()}")


SCENARIOS = {name: fn for name, fn in globals().items()
             if callable(fn) and name.split('_')[0] in ('tg', 'to', 'wf', 'ga', 'wa', 'sh', 'ac', 'hop')
             and asyncio.iscoroutinefunction(fn) and fn.__code__.co_argcount == 0}
SCENARIOS['ga_cancel_one_done'] = lambda: ga_cancel_one_done(False)
SCENARIOS['ga_cancel_one_done_rex'] = lambda: ga_cancel_one_done(True)


def run(name):
    """The trace of one scenario."""
    out.clear()
    try:
        asyncio.run(SCENARIOS[name](), loop_factory=VirtualLoop)
    except BaseException as e:  # noqa: BLE001
        trace(f"<{type(e).__name__}>")
    return ' '.join(out)


if __name__ == '__main__':
    for name in sys.argv[1:] or SCENARIOS:
        print(f"{name}: {run(name)}")
