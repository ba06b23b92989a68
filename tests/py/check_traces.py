"""Cross-check cio against CPython's asyncio (needs Python >= 3.13).

1. Every scenario of group_traces.py is run on asyncio; its trace must
   appear, as a C string, in tests/test_group.c (the C twin's assert_trace).
2. Every examples/py/<name>.py is run; its output must equal
   examples/expected/<name>.out (wall-clock HH:MM:SS masked).

Exit status 0 when all agree. Run by ctest as group_vs_asyncio when CMake
finds such a Python (CIO_REFERENCE_PYTHON).
"""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, HERE)

if sys.version_info < (3, 13):
    sys.exit(f"check_traces.py needs Python >= 3.13 (this is {sys.version.split()[0]})")

import group_traces  # noqa: E402

failures = 0
source = open(os.path.join(ROOT, 'tests', 'test_group.c'), encoding='utf-8').read()
for name in group_traces.SCENARIOS:
    got = group_traces.run(name)
    if f'"{got}"' not in source:
        failures += 1
        print(f"MISMATCH {name}: asyncio traces \"{got}\"; no test in test_group.c expects it")

mask = re.compile(r'\d\d:\d\d:\d\d')
pydir = os.path.join(ROOT, 'examples', 'py')
for fname in sorted(os.listdir(pydir)):
    if not fname.endswith('.py') or fname == 'vloop.py':
        continue
    name = fname[:-3]
    expected_path = os.path.join(ROOT, 'examples', 'expected', name + '.out')
    # Twins of programs that need real time, a peer or a package (servers,
    # subprocesses, aiofiles) have no expected output: they are documentation.
    if not os.path.exists(expected_path):
        continue
    got = subprocess.run([sys.executable, os.path.join(pydir, fname)], capture_output=True,
                         text=True, check=False).stdout
    try:
        want = open(expected_path, encoding='utf-8').read()
    except FileNotFoundError:
        failures += 1
        print(f"MISSING examples/expected/{name}.out")
        continue
    if mask.sub('HH:MM:SS', got) != mask.sub('HH:MM:SS', want):
        failures += 1
        print(f"MISMATCH example {name}:\n--- asyncio\n{got}--- expected\n{want}")

print(f"{len(group_traces.SCENARIOS)} scenarios and the examples checked against asyncio "
      f"{sys.version.split()[0]}: {failures} mismatch(es)")
sys.exit(1 if failures else 0)
