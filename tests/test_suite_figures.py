"""The fault suite's figures add up over the whole run, also when it runs in worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent

_MEASURING_TEST = '''
from helpers.figures import record

def test_{name}():
    record("messages tried", {tried})
    record("messages lost", 0)
'''


def _run(directory: Path, *options: str) -> str:
    for name, tried in (("first", 3), ("second", 4), ("third", 5)):
        (directory / f"test_{name}.py").write_text(_MEASURING_TEST.format(name=name, tried=tried))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "helpers.figures_report", "-p", "no:cacheprovider",
         "-q", *options, str(directory)],
        cwd=directory, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(TESTS_DIR)})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("options", [("-p", "no:xdist"), ("-n", "3")], ids=["one process", "xdist"])
def test_figures_recorded_by_every_test_are_summed_once_in_the_summary(
        tmp_path: Path, options: tuple[str, ...]) -> None:
    lines = _run(tmp_path, *options).splitlines()
    tried = [line for line in lines if line.startswith("messages tried")]
    assert tried == [tried[0]] and tried[0].split()[-1] == "12"
    assert [line.split()[-1] for line in lines if line.startswith("messages lost")] == ["0"]
