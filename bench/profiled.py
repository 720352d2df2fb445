"""Run a module as __main__ under yappi's CPU clock, every thread, writing pstat on exit.

    python bench/profiled.py OUT.prof -m codeexec_server.cli role coordinator ...

For bench/distributed_bench.py --profile: cProfile sees only the main thread, and py-spy
cannot read other processes here, yet a role's store calls run in its store thread. CPU
time, so a process waiting on the broker or the database shows no time there."""

from __future__ import annotations

import runpy
import sys

import yappi


def main() -> None:
    out, flag, module, *args = sys.argv[1:]
    assert flag == "-m", "usage: profiled.py OUT -m MODULE [ARGS...]"
    yappi.set_clock_type("cpu")
    yappi.start(builtins=True)
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        yappi.stop()
        yappi.get_func_stats().save(out, type="pstat")


if __name__ == "__main__":
    main()
