"""W6h peer: uvloop + an asyncio Protocol answering GET /hello with
keep-alive (a request ends at the blank line; no bodies, like the epoll
limit; uvloop's own benchmarks serve HTTP the same way with a Protocol).
Usage: /usr/bin/python3 http_uvloop.py PORT   (prints "serving on 127.0.0.1:PORT")"""
import asyncio
import sys

import uvloop

RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: uvloop\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 6\r\n\r\nhello\n")


class Hello(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        n = self.buf.count(b"\r\n\r\n")
        if n:
            self.t.write(RESPONSE * n)
            self.buf = self.buf[self.buf.rindex(b"\r\n\r\n") + 4:]


async def main():
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(Hello, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    print(f"serving on 127.0.0.1:{srv.sockets[0].getsockname()[1]}", flush=True)
    await srv.serve_forever()


uvloop.install()
asyncio.run(main())
