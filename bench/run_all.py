"""Run every bench script (``bench/*.py`` but this one) with modest defaults.

Benches print figures; they assert nothing about speed. A bench that finds
a correctness problem (faults.py, replicas.py: a duplicate or a loss) exits
non-zero, and so does this script.

    python bench/run_all.py            # what `make bench` runs
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Modest defaults per script; a script not listed runs without arguments.
DEFAULTS: dict[str, list[str]] = {
    "faults.py": ["--posts", "100", "--kills", "10"],
    # Skips itself, saying why, without PostgreSQL's server programs or moto.
    "replicas.py": ["--kills", "10"],
}


def main() -> int:
    failed: list[str] = []
    for script in sorted(HERE.glob("*.py")):
        if script.name == Path(__file__).name or script.name.startswith("_"):
            continue
        args = DEFAULTS.get(script.name, [])
        print(f"== {script.name} {' '.join(args)}".rstrip(), flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(script), *args], check=False)
        print(
            f"== {script.name}: exit {result.returncode}, {time.monotonic() - started:.1f} s\n",
            flush=True,
        )
        if result.returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
