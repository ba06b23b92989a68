"""The asyncio twin of examples/echo_client.c: the documentation's
tcp_echo_client.py, sending several lines.

Usage: python3 tcp_echo_client.py [host] [port] [lines]
"""
import asyncio
import sys


async def tcp_echo_client(host, port, n):
    reader, writer = await asyncio.open_connection(host, port)
    print(f"connected to {host}:{port}")
    for i in range(1, n + 1):
        writer.write(f"line {i}\n".encode())
        await writer.drain()
        print("reply:", (await reader.readline()).decode(), end="")
    writer.close()
    await writer.wait_closed()


if __name__ == "__main__":
    asyncio.run(tcp_echo_client(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1",
                                sys.argv[2] if len(sys.argv) > 2 else "8888",
                                int(sys.argv[3]) if len(sys.argv) > 3 else 5))
