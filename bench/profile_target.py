"""What py-spy samples for the profile: the pipeline on the workload, after the usual warm-up.

Usage: python -m bench.profile_target N SEED WORKDIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench import ours
from bench.workload import generate


def main() -> None:
    n, seed, workdir = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    workload = generate(n, seed)
    ours.warm_up(workdir / "warm")
    ours.pipeline(workload, workdir / "pipeline")


if __name__ == "__main__":
    main()
