#!/usr/bin/python3
"""asyncio / uvloop TCP echo servers for W5.

    echo_server.py PORT [--uvloop] [--api streams|protocol] [--tls CERT KEY]

streams: asyncio.start_server with a StreamReader/StreamWriter per client
(read what is there, write it back, drain). protocol: loop.create_server with
an asyncio.Protocol whose data_received writes the data back. Both are the
forms the asyncio and uvloop documentation show; TCP_NODELAY is set by
asyncio itself on TCP transports. --tls serves TLS (ssl= with an
SSLContext loaded with the PEM certificate chain and key).
"""
import asyncio
import sys


async def handle(reader, writer):
    read, write, drain = reader.read, writer.write, writer.drain
    try:
        while True:
            data = await read(65536)
            if not data:
                break
            write(data)
            await drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def main(port, api, ssl_ctx=None):
    loop = asyncio.get_running_loop()
    if api == "streams":
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096, ssl=ssl_ctx)
    else:
        server = await loop.create_server(Echo, "127.0.0.1", port, backlog=4096, ssl=ssl_ctx)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    argv = sys.argv[1:]
    api = "streams"
    if "--api" in argv:
        i = argv.index("--api")
        api = argv[i + 1]
        del argv[i:i + 2]
    ssl_ctx = None
    if "--tls" in argv:
        import ssl
        i = argv.index("--tls")
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(argv[i + 1], argv[i + 2])
        del argv[i:i + 3]
    use_uvloop = "--uvloop" in argv
    argv = [a for a in argv if a != "--uvloop"]
    if len(argv) != 1 or api not in ("streams", "protocol"):
        sys.exit("usage: echo_server.py PORT [--uvloop] [--api streams|protocol]")
    if use_uvloop:
        import uvloop
        uvloop.install()
    try:
        asyncio.run(main(int(argv[0]), api, ssl_ctx))
    except KeyboardInterrupt:
        pass
