"""The seed's crawler as the seed writes it (aiohttp + gather), with the URLs
and the CA file from the command line so that it fetches the same pages as
examples/crawl from the local nginx:
    python3 crawl_aiohttp.py [--cacert FILE] [-n N] URL...
(Debian's python3-aiohttp 3.8.) The session keeps aiohttp's defaults (at
most 100 connections); only the CA is ours."""
import asyncio
import ssl
import sys
import time

import aiohttp


async def fetch(session, url):
    async with session.get(url) as response:
        return await response.text()


async def main(urls, ctx):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        tasks = [fetch(session, url) for url in urls]
        results = await asyncio.gather(*tasks)
        for url, html in zip(urls, results):
            print(f"{url}:{len(html)} 字元")


args = sys.argv[1:]
cafile, n = None, 0
while args and args[0].startswith("-"):
    if args[0] == "--cacert":
        cafile = args[1]
    elif args[0] == "-n":
        n = int(args[1])
    args = args[2:]
urls = [f"{u}{i}" for u in args for i in range(1, n + 1)] if n else args
ctx = ssl.create_default_context(cafile=cafile)
t0 = time.time()
asyncio.run(main(urls, ctx))
print(f"總耗時:{time.time() - t0:.2f} 秒")
