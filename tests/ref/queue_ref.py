"""Reference traces for tests/test_queue.c (see sync_ref.py).

PYENV_VERSION=3.13.0 python3 tests/ref/queue_ref.py
"""
import asyncio
import sys

import vloop
from sync_ref import T, tr, at, create, sleep, Cancelled

QS = asyncio.QueueShutDown


async def queue_getters_fifo():
    q = asyncio.Queue()

    async def g(i):
        tr(f'g{i} wait')
        item = await q.get()
        tr(f'g{i} {item}@{at()}')

    ts = [create(g(i)) for i in range(3)]
    await sleep(1.0)
    for x in 'abc':
        q.put_nowait(x)
    tr(f'put3 qsize={q.qsize()}')
    for t in ts:
        await t
    tr(f'qsize={q.qsize()} unfinished={q._unfinished_tasks}')


async def queue_putters_fifo():
    q = asyncio.Queue(maxsize=1)
    q.put_nowait('a')

    async def p(i, x):
        tr(f'p{i} wait')
        await q.put(x)
        tr(f'p{i} done@{at()}')

    ts = [create(p(i, x)) for i, x in enumerate('bcd')]
    await sleep(1.0)
    for _ in range(4):
        item = await q.get()
        tr(f'got {item}@{at()} full={int(q.full())}')
        await sleep(0.1)
    for t in ts:
        await t


async def queue_cancel_promised_getter():
    q = asyncio.Queue()

    async def g(i):
        try:
            item = await q.get()
        except Cancelled:
            tr(f'g{i} cancelled qsize={q.qsize()}')
            raise
        tr(f'g{i} {item}@{at()}')

    t0, t1 = create(g(0)), create(g(1))
    await sleep(1.0)
    q.put_nowait('x')
    t0.cancel()
    tr('put+cancel g0')
    for t in (t0, t1):
        try:
            await t
        except Cancelled:
            pass
    tr(f'qsize={q.qsize()}')


async def queue_cancel_promised_putter():
    q = asyncio.Queue(maxsize=1)
    q.put_nowait('a')

    async def p(i, x):
        try:
            await q.put(x)
        except Cancelled:
            tr(f'p{i} cancelled qsize={q.qsize()}')
            raise
        tr(f'p{i} done@{at()}')

    t0, t1 = create(p(0, 'b')), create(p(1, 'c'))
    await sleep(1.0)
    tr(f'get {q.get_nowait()}')
    t0.cancel()
    for t in (t0, t1):
        try:
            await t
        except Cancelled:
            pass
    tr(f'qsize={q.qsize()} next={q.get_nowait()} unfinished={q._unfinished_tasks}')


async def queue_cancel_waiting():
    q = asyncio.Queue(maxsize=1)

    async def g():
        try:
            await q.get()
        except Cancelled:
            tr(f'g cancelled@{at()}')
            raise

    async def p(x):
        try:
            await q.put(x)
        except Cancelled:
            tr(f'p {x} cancelled@{at()}')
            raise
        tr(f'p {x} done@{at()}')

    t = create(g())
    await sleep(0.5)
    t.cancel()
    try:
        await t
    except Cancelled:
        pass
    q.put_nowait('a')
    u, v = create(p('b')), create(p('c'))
    await sleep(0.5)
    u.cancel()
    await sleep(0.5)
    tr(f'get {await q.get()} qsize={q.qsize()}')
    try:
        await u
    except Cancelled:
        pass
    await v
    tr(f'get {await q.get()} qsize={q.qsize()} unfinished={q._unfinished_tasks}')


async def queue_shutdown_waiters():
    q = asyncio.Queue(maxsize=2)
    q.put_nowait('a')
    q.put_nowait('b')

    async def p(x):
        try:
            await q.put(x)
            tr(f'p {x} done')
        except QS:
            tr(f'p {x} shutdown@{at()}')

    async def g(i):
        while True:
            try:
                item = await q.get()
            except QS:
                tr(f'g{i} shutdown@{at()}')
                return
            tr(f'g{i} {item}@{at()}')
            await sleep(0.1)

    ps = [create(p(x)) for x in 'cd']
    await sleep(1.0)
    q.shutdown()
    tr(f'shutdown qsize={q.qsize()}')
    try:
        q.put_nowait('e')
    except QS:
        tr('put_nowait shutdown')
    gs = [create(g(i)) for i in range(2)]
    for t in ps + gs:
        await t
    tr(f'qsize={q.qsize()} unfinished={q._unfinished_tasks}')


async def queue_shutdown_getters():
    q = asyncio.Queue()

    async def g(i):
        try:
            item = await q.get()
        except QS:
            tr(f'g{i} shutdown@{at()}')
            return
        tr(f'g{i} {item}@{at()}')

    gs = [create(g(i)) for i in range(3)]
    await sleep(1.0)
    q.put_nowait('x')  # promised to g0
    q.shutdown()
    tr('put+shutdown')
    for t in gs:
        await t


async def queue_shutdown_getters_immediate():
    q = asyncio.Queue()

    async def g(i):
        try:
            item = await q.get()
        except QS:
            tr(f'g{i} shutdown@{at()}')
            return
        tr(f'g{i} {item}@{at()}')

    gs = [create(g(i)) for i in range(3)]
    await sleep(1.0)
    q.put_nowait('x')  # promised to g0, then dropped
    q.shutdown(immediate=True)
    tr(f'put+shutdown unfinished={q._unfinished_tasks}')
    for t in gs:
        await t


async def queue_shutdown_immediate():
    q = asyncio.Queue()
    for x in 'abc':
        q.put_nowait(x)
    tr(f'get {q.get_nowait()}')

    async def j():
        await q.join()
        tr(f'joined@{at()} unfinished={q._unfinished_tasks}')

    async def g(i):
        await sleep(1.5)
        try:
            item = await q.get()
        except QS:
            tr(f'g{i} shutdown@{at()}')
            return
        tr(f'g{i} {item}')

    ts = [create(j()), create(g(0))]
    await sleep(1.0)
    q.shutdown(immediate=True)
    tr(f'shutdown qsize={q.qsize()} unfinished={q._unfinished_tasks}')
    await ts[1]
    tr(f'join waits={int(not ts[0].done())}')
    q.task_done()  # the item taken before
    await ts[0]
    try:
        q.task_done()
    except ValueError:
        tr('task_done too many')


async def queue_join_workers():
    q = asyncio.Queue()

    async def worker(i):
        while True:
            item = await q.get()
            await sleep(item)
            tr(f'w{i} done {item}@{at()}')
            q.task_done()

    ws = [create(worker(i)) for i in range(2)]
    for x in (0.3, 0.1, 0.2, 0.1):
        q.put_nowait(x)
    await q.join()
    tr(f'joined@{at()}')
    await q.join()
    tr('joined again')
    for w in ws:
        w.cancel()


async def queue_orders():
    lq = asyncio.LifoQueue()
    for x in range(5):
        lq.put_nowait(x)
    tr('lifo ' + ','.join(str(lq.get_nowait()) for _ in range(5)))
    pq = asyncio.PriorityQueue()
    seq = 0
    for prio, name in [(3, 'a'), (1, 'b'), (2, 'c'), (1, 'd'), (3, 'e'), (1, 'f'), (0, 'g')]:
        pq.put_nowait((prio, seq, name))  # seq: asyncio leaves ties to the user
        seq += 1
    tr('prio ' + ','.join(pq.get_nowait()[2] for _ in range(7)))


SCENARIOS = [queue_getters_fifo, queue_putters_fifo, queue_cancel_promised_getter,
             queue_cancel_promised_putter, queue_cancel_waiting, queue_shutdown_waiters,
             queue_shutdown_getters, queue_shutdown_getters_immediate, queue_shutdown_immediate, queue_join_workers, queue_orders]

if __name__ == '__main__':
    for fn in SCENARIOS:
        if len(sys.argv) > 1 and fn.__name__ not in sys.argv[1:]:
            continue
        T.clear()
        _, t = vloop.run(fn())
        print(f'{fn.__name__}: {" ".join(T)} | {t:.2f}')
