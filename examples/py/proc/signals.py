# The asyncio twin of examples/signals.c: `signals.py` (add_signal_handler,
# the documentation's example with the main task cancelled instead of
# loop.stop()) or `signals.py ctrl-c` (asyncio.run's own Ctrl-C handling).
import asyncio
import os
import signal
import sys


def ask_exit(signame, task):
    print("got signal %s: exit" % signame, flush=True)
    task.cancel()


async def with_handlers():
    loop = asyncio.get_running_loop()
    for signame in ('SIGINT', 'SIGTERM'):
        loop.add_signal_handler(getattr(signal, signame), ask_exit, signame,
                                asyncio.current_task())
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        print("main: cancelled, cleaning up")
        asyncio.current_task().uncancel()


async def until_ctrl_c():
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        print("main: cancelled, cleaning up")
        raise


ctrl_c = sys.argv[1:] == ['ctrl-c']
print("Event loop running for 1 hour, press Ctrl+C to interrupt.")
print(f"pid {os.getpid()}: send {'SIGINT' if ctrl_c else 'SIGINT or SIGTERM'} to exit.", flush=True)
try:
    asyncio.run(until_ctrl_c() if ctrl_c else with_handlers())
except KeyboardInterrupt:
    print("interrupted")
    sys.exit(130)
