# Seed 003: gather with return_exceptions=True, then one line per result.
import asyncio
import vloop


async def fetch(i):
    await asyncio.sleep(1)
    return i * 2


async def main():
    results = await asyncio.gather(
        fetch(1), fetch(2), fetch(3),
        return_exceptions=True     # 失敗的會回傳例外物件,不 raise
    )
    for r in results:
        if isinstance(r, Exception):
            print(f"任務失敗:{r}")
        else:
            print(f"結果:{r}")


vloop.run(main)
