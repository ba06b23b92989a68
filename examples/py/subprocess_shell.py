# asyncio's documentation example (create_subprocess_shell), the twin of
# examples/subprocess_shell.c.
import asyncio


async def run(cmd):
    proc = await asyncio.create_subprocess_shell(
        cmd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)

    stdout, stderr = await proc.communicate()

    print(f'[{cmd!r} exited with {proc.returncode}]')
    if stdout:
        print(f'[stdout]\n{stdout.decode()}')
    if stderr:
        print(f'[stderr]\n{stderr.decode()}')

asyncio.run(run('ls /zzz'))
# What tests/run_example.sh adds: cio's loop time under the virtual clock (no
# timer runs here, so it stays 0; vloop.py cannot watch a child).
print("# loop time: 0.000")
