# The asyncio twin of examples/subprocess_ls.c.
import asyncio
import sys


async def main(path):
    proc = await asyncio.create_subprocess_exec(
        'ls', '-l', path, stdout=asyncio.subprocess.PIPE)
    n = 0
    while line := await proc.stdout.readline():
        n += 1
        print(f'{n}: {line.decode().rstrip(chr(10))}')
    print(f'[ls -l exited with {await proc.wait()}]')


asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else '.'))
