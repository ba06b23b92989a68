"""A virtual-clock asyncio loop, to produce the expected output of the cio
examples with the reference implementation (CPython's asyncio).

When nothing is ready, the selector does not sleep: the clock jumps by the
poll timeout, i.e. to the earliest timer. Timers with equal deadlines fire in
the order they were scheduled, as in cio (and as in real time, where two
deadlines are never exactly equal; stock asyncio compares deadlines only, so
exact ties would come out in heap order). Everything else is stock asyncio,
so the order of callbacks is exactly CPython's.

    PYENV_VERSION=3.13.0 python3 examples/py/<name>.py

prints the program's stdout and then "# loop time: S.SSS" (the loop time
asyncio.run took), the format of examples/expected/<name>.out.
"""
import asyncio
import heapq
import itertools
import sys

_seq = itertools.count()


class _Timer(asyncio.TimerHandle):
    __slots__ = ('_seq',)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._seq = next(_seq)

    def _key(self):
        return (self._when, self._seq)

    def __lt__(self, other):
        return self._key() < other._key()

    def __le__(self, other):
        return self._key() <= other._key()

    def __gt__(self, other):
        return self._key() > other._key()

    def __ge__(self, other):
        return self._key() >= other._key()

    __hash__ = asyncio.TimerHandle.__hash__


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self):
        super().__init__()
        self._vnow = 0.0
        real_select = self._selector.select

        def select(timeout=None):
            if timeout is None:
                raise RuntimeError("deadlock: nothing can wake the loop")
            if timeout > 0:
                self._vnow += timeout
            return real_select(0)

        self._selector.select = select

    def time(self):
        return self._vnow

    def call_at(self, when, callback, *args, context=None):
        self._check_closed()
        timer = _Timer(when, callback, args, self, context)
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer


def run(main, *args):
    """asyncio.run(main(*args)) on a virtual loop; print the loop time."""
    box = {}

    async def timed():
        box['loop'] = asyncio.get_running_loop()
        return await main(*args)

    try:
        return asyncio.run(timed(), loop_factory=VirtualLoop)
    finally:
        sys.stdout.flush()
        print(f"# loop time: {box['loop']._vnow:.3f}")
