# Seed 003, the asynchronous version: gather(fetch("A", 3), fetch("B", 2)).
import asyncio
import vloop


async def fetch(name, seconds):
    print(f"{name} 開始")
    await asyncio.sleep(seconds)     # 模擬等網路
    print(f"{name} 完成")
    return name


async def main():
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    results = await asyncio.gather(
        fetch("A", 3),
        fetch("B", 2),
    )
    print(results)
    print(loop.time() - t0)          # ≈ 3 秒


vloop.run(main)
