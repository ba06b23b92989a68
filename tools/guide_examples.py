#!/usr/bin/env python3
"""Regenerate the first part of docs/guide.md: every seed example as asyncio
code next to its C port (examples/*.c). The asyncio side is examples/py/<name>.py
when there is one, else the Python quoted in the C file's opening comment.
Run after changing an example:  python3 tools/guide_examples.py"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDE = os.path.join(ROOT, "docs", "guide.md")
BEGIN, END = "<!-- examples:begin -->", "<!-- examples:end -->"

# (name, title) in the order a reader meets them in the seeds.
ORDER = [
    ("hello_world", "Hello, world: run, sleep"),
    ("nested", "Awaiting a coroutine is a call"),
    ("say_after_sequential", "say_after, one after the other"),
    ("say_after_tasks", "say_after as tasks: concurrency"),
    ("say_after_taskgroup", "say_after in a TaskGroup"),
    ("coro_vs_task", "A coroutine does not yield; a task does"),
    ("dosomething", "Five tasks and asyncio.wait"),
    ("workers", "Workers gathered"),
    ("fetch_sync", "Fetching one after the other"),
    ("fetch_five", "gather of five fetches"),
    ("fetch_gather", "gather with results in order"),
    ("factorial", "gather of factorials"),
    ("gather_exceptions", "gather(return_exceptions=True)"),
    ("gather_report", "gather: reporting what failed"),
    ("chain", "Chaining coroutines"),
    ("wait_first_completed", "wait(FIRST_COMPLETED)"),
    ("wait_for_timeout", "wait_for and a timeout"),
    ("as_completed", "as_completed"),
    ("future_mark_done", "A future completed by a callback"),
    ("background_tasks", "Background tasks kept alive"),
    ("lock_workers", "A Lock shared by workers"),
    ("producer_consumer", "Producers and consumers on a Queue"),
    ("to_thread", "Blocking code in a thread: to_thread"),
    ("blocking_mistake", "The blocking mistake, and two fixes"),
    ("echo_server", "A TCP echo server"),
    ("echo_client", "A TCP echo client"),
]


def c_comment(src):
    m = re.match(r"/\*(.*?)\*/", src, re.S)
    if not m:
        return [], []
    prose, code = [], []
    for line in m.group(1).splitlines():
        line = re.sub(r"^ ?\* ?", "", line)
        if line.startswith("  "):
            code.append(line[2:])
        else:
            prose.append(line)
    return prose, code


def python_side(name, src):
    py = os.path.join(ROOT, "examples", "py", name + ".py")
    if os.path.exists(py):
        lines = []
        for line in open(py, encoding="utf-8").read().splitlines():
            if line.strip() == "import vloop":
                continue
            lines.append(line.replace("vloop.run(main)", "asyncio.run(main())"))
        return "\n".join(lines).strip("\n")
    return "\n".join(c_comment(src)[1]).strip("\n")


def section(name, title):
    src = open(os.path.join(ROOT, "examples", name + ".c"), encoding="utf-8").read()
    prose = " ".join(l.strip() for l in c_comment(src)[0] if l.strip())
    py = python_side(name, src)
    out = [f"### {title} (`examples/{name}.c`)", ""]
    if prose:
        out += [prose, ""]
    if py:
        out += ["asyncio:", "", "```python", py, "```", ""]
    body = re.sub(r"\A/\*.*?\*/\n", "", src, count=1, flags=re.S)  # shown above
    out += ["cio:", "", "```c", body.rstrip("\n"), "```", ""]
    return "\n".join(out)


def main():
    text = open(GUIDE, encoding="utf-8").read()
    if BEGIN not in text or END not in text:
        sys.exit("docs/guide.md has no examples markers")
    names = {n for n, _ in ORDER}
    missing = [f[:-2] for f in sorted(os.listdir(os.path.join(ROOT, "examples")))
               if f.endswith(".c") and f[:-2] not in names]
    body = "\n".join(section(n, t) for n, t in ORDER
                     if os.path.exists(os.path.join(ROOT, "examples", n + ".c")))
    if missing:
        body += "\n### Other examples\n\n" + "\n".join(
            f"- `examples/{m}.c`" for m in missing) + "\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    open(GUIDE, "w", encoding="utf-8").write(head + BEGIN + "\n\n" + body + "\n" + END + tail)


if __name__ == "__main__":
    main()
