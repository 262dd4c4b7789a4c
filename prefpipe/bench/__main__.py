"""`python -m prefpipe.bench NAME [options]`: rerunnable benchmarks that time prefpipe beside the
reference libraries in the same run and print ratios.

Each benchmark is a module prefpipe/bench/<name>.py (dashes become underscores) with a
`main(argv: list[str]) -> int`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import prefpipe.bench as bench_pkg


def available() -> list[str]:
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(bench_pkg.__path__) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = available()
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(names) or "(none)")
        return 0 if argv else 2
    name = argv[0]
    if name not in names:
        print(f"unknown benchmark {name!r}; choose one of: {', '.join(names)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"prefpipe.bench.{name.replace('-', '_')}")
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
