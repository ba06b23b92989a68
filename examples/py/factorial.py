# Seed 004: gather of factorial('A', 3) and factorial('B', 4).
import asyncio
import vloop


async def factorial(name, n):
    f = 1
    for i in range(2, n + 1):
        await asyncio.sleep(0.1)
        f *= i
    return f


async def main():
    results = await asyncio.gather(
        factorial('A', 3),
        factorial('B', 4),
    )
    print(results)


vloop.run(main)
