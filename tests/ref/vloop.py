"""A virtual-clock asyncio loop for producing reference traces.

Time jumps to the next timer when nothing is ready (cio's virtual clock), and
timers with equal deadlines fire in the order they were scheduled (cio's rule;
asyncio's heap leaves exact ties unordered, which real time never produces).
"""
import asyncio
import heapq
import itertools
import selectors
from asyncio import events

_seq = itertools.count()


class _Timer(events.TimerHandle):
    __slots__ = ('_seq',)

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self._seq = next(_seq)

    def __lt__(self, other):
        return (self._when, self._seq) < (other._when, other._seq)

    def __le__(self, other):
        return (self._when, self._seq) <= (other._when, other._seq)

    def __gt__(self, other):
        return (self._when, self._seq) > (other._when, other._seq)

    def __ge__(self, other):
        return (self._when, self._seq) >= (other._when, other._seq)


class _Selector(selectors.DefaultSelector):
    def __init__(self, loop_ref):
        super().__init__()
        self._loop_ref = loop_ref

    def select(self, timeout=None):
        loop = self._loop_ref[0]
        if timeout is None and not loop._scheduled:
            raise RuntimeError('deadlock: nothing can wake the loop')
        if timeout is not None and timeout > 0:
            # jump exactly to the next deadline
            loop._vt = max(loop._vt, loop._scheduled[0]._when)
        return super().select(0)


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self):
        ref = [None]
        super().__init__(_Selector(ref))
        ref[0] = self
        self._vt = 0.0
        self._clock_resolution = 1e-12

    def time(self):
        return self._vt

    def call_at(self, when, callback, *args, context=None):
        self._check_closed()
        timer = _Timer(when, callback, args, self, context)
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer


def run(coro):
    loop = VirtualLoop()
    try:
        result = loop.run_until_complete(coro)
        return result, loop.time()
    finally:
        loop.close()
