"""The asyncio twin of examples/streams_hello.c."""
import asyncio


async def shout(reader, writer):
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()


async def main():
    server = await asyncio.start_server(shout, '127.0.0.1', 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    for word in ('hello', 'streams', 'bye'):
        writer.write(f'{word}\n'.encode())
        print(f"sent '{word}', got '{(await reader.readline()).decode().strip()}'")
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()


asyncio.run(main())
