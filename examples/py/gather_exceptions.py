# Seed 002: gather with return_exceptions=True.
import asyncio
import vloop


async def dosomething(num):
    print('第 {} 任務,第一步'.format(num))
    await asyncio.sleep(2)
    print('第 {} 任務,第二步'.format(num))
    return '第 {} 任務完成'.format(num)


async def raise_error(num):
    raise ValueError


async def main():
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = [dosomething(i) for i in range(5)]
    tasks1 = [raise_error(i) for i in range(5)]
    results = await asyncio.gather(*tasks, *tasks1, return_exceptions=True)
    print(results)
    print('TIME: {:.3f}'.format(loop.time() - start))


vloop.run(main)
