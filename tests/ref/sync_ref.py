"""Reference traces for tests/test_sync.c and tests/test_queue.c.

Each scenario is the asyncio original of a cio test; run with CPython 3.13
(PYENV_VERSION=3.13.0 python3 tests/ref/sync_ref.py) it prints one line per
scenario, "name: trace", and the C test asserts the same trace. Times are the
virtual loop time (vloop.py).
"""
import asyncio
import sys

import vloop

T = []


def tr(s):
    T.append(s)


def now():
    return asyncio.get_running_loop().time()


def at():
    return f'{now():.2f}'


create = asyncio.create_task
sleep = asyncio.sleep
Cancelled = asyncio.CancelledError

# ---- Lock -----------------------------------------------------------------


async def lock_fifo():
    lock = asyncio.Lock()

    async def w(i, hold):
        tr(f'w{i} try')
        await lock.acquire()
        tr(f'w{i} got@{at()}')
        await sleep(hold)
        lock.release()
        tr(f'w{i} rel')

    async def barger():
        await sleep(1.0)  # wakes in the same iteration as w0, after it
        tr(f'b try locked={int(lock.locked())}')
        await lock.acquire()
        tr(f'b got@{at()}')
        lock.release()

    ts = [create(w(0, 1.0)), create(barger()), create(w(1, 0)), create(w(2, 0))]
    for t in ts:
        await t
    tr(f'end locked={int(lock.locked())}')


async def lock_cancel_waiting():
    lock = asyncio.Lock()

    async def w(i, hold):
        try:
            await lock.acquire()
        except Cancelled:
            tr(f'w{i} cancelled@{at()}')
            raise
        tr(f'w{i} got@{at()}')
        await sleep(hold)
        lock.release()

    t0, t1, t2 = create(w(0, 1.0)), create(w(1, 0)), create(w(2, 0))
    await sleep(0.5)
    t1.cancel()
    for t in (t0, t1, t2):
        try:
            await t
        except Cancelled:
            pass
    tr(f'end locked={int(lock.locked())}')


async def lock_cancel_after_wake():
    lock = asyncio.Lock()

    async def holder():
        await lock.acquire()
        await sleep(1.0)
        lock.release()
        tr('w0 rel')

    async def w(i):
        try:
            await lock.acquire()
        except Cancelled:
            tr(f'w{i} cancelled locked={int(lock.locked())}')
            raise
        tr(f'w{i} got@{at()}')
        lock.release()

    t0, t1, t2 = create(holder()), create(w(1)), create(w(2))

    async def killer():
        await sleep(1.0)  # same iteration as the release, after it
        tr('kill w1')
        t1.cancel()

    k = create(killer())
    for t in (t0, t1, t2, k):
        try:
            await t
        except Cancelled:
            pass
    tr(f'end locked={int(lock.locked())}')

# ---- Event ----------------------------------------------------------------


async def event_set_wakes_all():
    ev = asyncio.Event()

    async def w(i):
        tr(f'w{i} wait')
        r = await ev.wait()
        tr(f'w{i} woke@{at()} set={int(ev.is_set())}')

    ts = [create(w(i)) for i in range(3)]
    await sleep(1.0)
    ev.set()
    ev.clear()  # woken waiters still return
    tr('set+clear')
    for t in ts:
        await t
    ev.set()
    await ev.wait()
    tr(f'again@{at()}')

# ---- Condition ------------------------------------------------------------


async def cond_notify():
    cond = asyncio.Condition()

    async def c(i):
        async with cond:
            tr(f'c{i} wait')
            await cond.wait()
            tr(f'c{i} woke@{at()}')

    ts = [create(c(i)) for i in range(4)]
    await sleep(1.0)
    async with cond:
        n = len([w for w in cond._waiters if not w.done()])
        cond.notify(1)
        tr('notify1')
    await sleep(1.0)
    async with cond:
        cond.notify(2)
        tr('notify2')
        await sleep(0.5)  # the woken ones wait for the lock
        tr('unlock')
    await sleep(1.0)
    async with cond:
        cond.notify_all()
        tr('notify_all')
    for t in ts:
        await t


async def cond_cancel_after_notify():
    cond = asyncio.Condition()

    async def c(i):
        async with cond:
            try:
                await cond.wait()
            except Cancelled:
                tr(f'c{i} cancelled locked={int(cond.locked())}')
                raise
            tr(f'c{i} woke@{at()}')

    t0, t1 = create(c(0)), create(c(1))
    await sleep(1.0)
    async with cond:
        cond.notify(1)
        t0.cancel()  # notified, then cancelled: it passes the notification on
        tr('notify+cancel c0')
    for t in (t0, t1):
        try:
            await t
        except Cancelled:
            pass
    tr(f'end locked={int(cond.locked())}')


async def cond_cancel_in_reacquire():
    cond = asyncio.Condition()

    async def c(i):
        async with cond:
            try:
                await cond.wait()
            except Cancelled:
                tr(f'c{i} cancelled@{at()} locked={int(cond.locked())}')
                raise
            tr(f'c{i} woke@{at()}')

    t0, t1 = create(c(0)), create(c(1))
    await sleep(1.0)
    async with cond:
        cond.notify(1)
        tr('notify')
        await sleep(0.5)  # c0 now waits for the lock
        t0.cancel()
        tr('cancel c0')
        await sleep(0.5)
        tr('unlock')
    for t in (t0, t1):
        try:
            await t
        except Cancelled:
            pass
    tr(f'end locked={int(cond.locked())}')


async def cond_wait_for():
    cond = asyncio.Condition()
    state = {'n': 0}

    async def waiter():
        async with cond:
            await cond.wait_for(lambda: state['n'] >= 3)
            tr(f'done n={state["n"]}@{at()}')

    t = create(waiter())
    for i in range(4):
        await sleep(0.1)
        async with cond:
            state['n'] += 1
            tr(f'n={state["n"]}')
            cond.notify_all()
    await t

# ---- Semaphore ------------------------------------------------------------


async def sem_fifo():
    sem = asyncio.Semaphore(2)

    async def w(i, hold):
        await sem.acquire()
        tr(f'w{i} got@{at()}')
        await sleep(hold)
        sem.release()

    async def barger():
        await sleep(1.0)
        tr(f'b locked={int(sem.locked())} value={sem._value}')
        await sem.acquire()
        tr(f'b got@{at()}')
        sem.release()

    ts = [create(w(0, 1.0)), create(w(1, 2.0)), create(barger()), create(w(2, 1.0)),
          create(w(3, 0))]
    for t in ts:
        await t
    tr(f'end value={sem._value}')


async def sem_cancel_after_wake():
    sem = asyncio.Semaphore(1)

    async def holder():
        await sem.acquire()
        await sleep(1.0)
        sem.release()
        tr(f'rel value={sem._value}')

    async def w(i):
        try:
            await sem.acquire()
        except Cancelled:
            tr(f'w{i} cancelled value={sem._value}')
            raise
        tr(f'w{i} got@{at()}')
        sem.release()

    t0, t1, t2 = create(holder()), create(w(1)), create(w(2))

    async def killer():
        await sleep(1.0)
        t1.cancel()
        tr('kill w1')

    k = create(killer())
    for t in (t0, t1, t2, k):
        try:
            await t
        except Cancelled:
            pass
    tr(f'end value={sem._value}')

# ---- Barrier --------------------------------------------------------------


async def barrier_cancel_mid_cycle():
    b = asyncio.Barrier(3)

    async def w(i):
        try:
            idx = await b.wait()
        except Cancelled:
            tr(f'w{i} cancelled n={b.n_waiting}')
            raise
        tr(f'w{i} idx={idx}@{at()}')

    t0 = create(w(0))
    await sleep(0.1)
    t1 = create(w(1))
    await sleep(0.1)
    tr(f'n={b.n_waiting}')
    t1.cancel()
    await sleep(0.1)
    tr(f'n={b.n_waiting} broken={int(b.broken)}')
    t2 = create(w(2))
    await sleep(0.1)
    t3 = create(w(3))
    for t in (t0, t1, t2, t3):
        try:
            await t
        except Cancelled:
            pass
    tr(f'n={b.n_waiting}')
    # a second cycle
    ts = [create(w(4 + i)) for i in range(3)]
    for t in ts:
        await t


async def barrier_abort_reset():
    b = asyncio.Barrier(3)

    async def w(i):
        try:
            idx = await b.wait()
        except asyncio.BrokenBarrierError:
            tr(f'w{i} broken@{at()}')
            return
        tr(f'w{i} idx={idx}@{at()}')

    ts = [create(w(0)), create(w(1))]
    await sleep(1.0)
    await b.abort()
    tr(f'aborted broken={int(b.broken)}')
    for t in ts:
        await t
    await w(2)
    await b.reset()
    tr(f'reset broken={int(b.broken)}')
    ts = [create(w(3)), create(w(4))]
    await sleep(1.0)
    await b.reset()  # waiters get BrokenBarrierError, barrier usable again
    tr('reset2')
    for t in ts:
        await t
    ts = [create(w(5 + i)) for i in range(3)]
    for t in ts:
        await t
    tr(f'n={b.n_waiting} broken={int(b.broken)}')


SCENARIOS = [lock_fifo, lock_cancel_waiting, lock_cancel_after_wake, event_set_wakes_all,
             cond_notify, cond_cancel_after_notify, cond_cancel_in_reacquire, cond_wait_for,
             sem_fifo, sem_cancel_after_wake, barrier_cancel_mid_cycle, barrier_abort_reset]

if __name__ == '__main__':
    for fn in SCENARIOS:
        if len(sys.argv) > 1 and fn.__name__ not in sys.argv[1:]:
            continue
        T.clear()
        _, t = vloop.run(fn())
        print(f'{fn.__name__}: {" ".join(T)} | {t:.2f}')
