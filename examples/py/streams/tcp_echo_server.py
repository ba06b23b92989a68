"""The asyncio twin of examples/echo_server.c: the documentation's
tcp_echo_server.py, echoing until the client closes.

Usage: python3 tcp_echo_server.py [host] [port]
"""
import asyncio
import sys


async def handle_echo(reader, writer):
    while data := await reader.read(16384):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def main(host, port):
    server = await asyncio.start_server(handle_echo, host, port)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"serving on {host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1",
                     int(sys.argv[2]) if len(sys.argv) > 2 else 8888))
