"""Every module of the package imports first: no circular import hides behind the order of other imports.

A cycle such as serialization -> models -> interop -> finetuning -> serialization only shows when the module in
the middle of it is imported first, in a fresh process. Each module is imported first once, in one child process,
with every ``llmdocs`` module forgotten in between (torch and the other libraries stay loaded, and each file is
compiled once, which keeps it fast).
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import llmdocs

CHILD = """
import importlib, importlib.machinery, sys, traceback

# Each source file is compiled once (no .pyc is written here: PYTHONDONTWRITEBYTECODE), then executed afresh at
# every import, in the order the imports ask for: 10 s -> 4 s, the same cycles found.
_get_code, _codes = importlib.machinery.SourceFileLoader.get_code, {}
def get_code(self, fullname):
    path = self.get_filename(fullname)
    if path not in _codes:
        _codes[path] = _get_code(self, fullname)
    return _codes[path]
importlib.machinery.SourceFileLoader.get_code = get_code

failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "llmdocs" or m.startswith("llmdocs.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=-3))
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_first_in_a_fresh_process() -> None:
    names = ["llmdocs"] + [
        info.name
        for info in pkgutil.walk_packages(llmdocs.__path__, "llmdocs.")
        if not info.name.endswith((".conftest", "__main__"))
    ]
    assert "llmdocs.serialization" in names and "llmdocs.interop.peft_lora" in names
    done = subprocess.run([sys.executable, "-c", CHILD, *names], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
