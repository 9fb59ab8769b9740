"""Cold start of the command line: wall time and peak memory of fresh processes, for the commands
that answer without torch beside one that needs it.

    python benchmarks/cli_startup.py [--runs 3]

Each command runs ``--runs`` times in a fresh interpreter; the median wall time and the largest
resident set size (``getrusage`` of the children) are printed side by side.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(argv: list[str], runs: int) -> tuple[float, float]:
    """Median seconds and peak MiB of ``video-interpreter ARGV`` in fresh processes."""
    times = []
    peak = 0.0
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "video_interpreter.cli", *argv],
            capture_output=True,
            cwd=ROOT,
            check=False,
        )
        times.append(time.perf_counter() - start)
        peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as empty_store:
        commands = [
            ["--version"],
            ["--help"],
            ["models", "list", "--root", empty_store],
            ["layers"],  # imports torch: the reference
        ]
        print(f"{'command':<32} {'median s':>9} {'peak MiB':>9}")
        for argv in commands:
            seconds, mib = measure(argv, runs)
            shown = " ".join(a if a != empty_store else "EMPTY" for a in argv)
            print(f"{shown:<32} {seconds:>9.2f} {mib:>9.0f}")


if __name__ == "__main__":
    main()
