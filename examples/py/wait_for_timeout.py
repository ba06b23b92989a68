# Seed 003: a 10 s task under a 3 s wait_for.
import asyncio
import vloop


async def slow_task():
    await asyncio.sleep(10)        # 假設這是一個會跑很久的 IO
    return "done"


async def main():
    try:
        result = await asyncio.wait_for(slow_task(), timeout=3.0)
    except TimeoutError:
        print("超過 3 秒,放棄")


vloop.run(main)
