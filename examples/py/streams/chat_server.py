"""The asyncio twin of examples/chat_server.c: every line a client sends goes
to all the others; a client that does not read is dropped once its transport
buffer passes the bound; SIGTERM shuts down.

Usage: python3 chat_server.py [host] [port]
"""
import asyncio
import signal
import sys

QUEUE_BOUND = 256 * 1024
clients = {}  # writer -> id
next_id = 1


def broadcast(sender, data):
    for w, cid in list(clients.items()):
        if w is sender or w.is_closing():
            continue
        if w.transport.get_write_buffer_size() + len(data) > QUEUE_BOUND:
            print(f"dropping client {cid}: it does not read (queue over {QUEUE_BOUND} bytes)",
                  flush=True)
            w.transport.abort()
            continue
        w.write(data)


async def handle_client(reader, writer):
    global next_id
    me, next_id = next_id, next_id + 1
    clients[writer] = me
    writer.write(f"welcome, you are client {me}\n".encode())
    broadcast(writer, f"* client {me} joined\n".encode())
    try:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # over the limit: skipped
                continue
            if not line:
                break
            broadcast(writer, f"[{me}] ".encode() + line)
    except ConnectionError:
        pass
    finally:
        del clients[writer]
        broadcast(writer, f"* client {me} left\n".encode())
        writer.close()


async def main(host, port):
    server = await asyncio.start_server(handle_client, host, port)
    print(f"serving on {host}:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print(f"shutting down, {len(clients)} client(s) connected")
    server.close()
    server.abort_clients()
    await server.wait_closed()
    print("bye")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1",
                     int(sys.argv[2]) if len(sys.argv) > 2 else 8888))
