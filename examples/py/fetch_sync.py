# Seed 003, the synchronous version: A then B, one after the other. The seed
# uses time.sleep; here the waits are loop sleeps awaited in sequence inside
# one task, so that the loop clock measures the 3 + 2 seconds.
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
    results = [await fetch("A", 3), await fetch("B", 2)]
    print(results)
    print(loop.time() - t0)          # ≈ 5 秒


vloop.run(main)
