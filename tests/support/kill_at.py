"""Run the `bnbench` command line, killing this very process with SIGKILL at a chosen point.

    python -m tests.support.kill_at MODULE:CLASS.METHOD N bnbench-args...

After the N-th call of that function returns, the process sends itself SIGKILL: a real kill,
at a point a test can name (during a schema migration, right after a run is created), which a
timer or a poll of the files could only hit by chance.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Any


def main() -> None:
    target, count, *args = sys.argv[1:]
    module_name, _, attribute = target.partition(":")
    owner_name, _, function_name = attribute.rpartition(".")
    owner: Any = importlib.import_module(module_name)
    for part in owner_name.split(".") if owner_name else []:
        owner = getattr(owner, part)
    original = getattr(owner, function_name)
    calls = 0

    def wrapped(*a: Any, **k: Any) -> Any:
        nonlocal calls
        result = original(*a, **k)
        calls += 1
        if calls == int(count):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, function_name, wrapped)
    from bnbench.cli import app

    sys.argv = ["bnbench", *args]
    app()


if __name__ == "__main__":
    main()
