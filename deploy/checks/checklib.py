"""A small runner for the deploy and Terraform checks: each check is a
function that raises on failure and may return a short note; the run ends
with one line "N passed, N failed" and a non-zero exit if anything failed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path


class Checks:
    def __init__(self, area: str) -> None:
        self.area = area
        self.passed = 0
        self.failed: list[str] = []
        self.started = time.monotonic()

    def check(self, title: str) -> Callable[[Callable[[], object]], None]:
        """Runs the decorated function at once, as one check."""

        def run(function: Callable[[], object]) -> None:
            started = time.monotonic()
            try:
                note = function()
            except Exception as e:  # a failed check is reported, the rest still run
                self.failed.append(title)
                detail = str(e) if isinstance(e, AssertionError) and str(e) else traceback.format_exc(limit=3)
                print(f"FAIL  {title}\n      {detail.strip()}", flush=True)
                return
            self.passed += 1
            extra = f" ({note})" if note else ""
            print(f"ok    {title}{extra} [{time.monotonic() - started:.1f}s]", flush=True)

        return run

    def finish(self) -> int:
        print(f"{self.area} checks: {self.passed} passed, {len(self.failed)} failed in {time.monotonic() - self.started:.0f}s")
        return 1 if self.failed else 0


def run_tool(args: list[str], ok_codes: tuple[int, ...] = (0,)) -> str:
    """Runs a tool from the venv this script runs in; its output on failure."""
    program = Path(sys.executable).parent / args[0]
    if not program.exists():
        found = shutil.which(args[0])
        if found is None:
            raise AssertionError(f"{args[0]} is not installed in {Path(sys.executable).parent}")
        program = Path(found)
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false", "LOG_LEVEL": "ERROR"}
    result = subprocess.run([str(program), *args[1:]], capture_output=True, text=True, env=env)
    if result.returncode not in ok_codes:
        raise AssertionError(f"{' '.join(args[:2])} failed ({result.returncode}):\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    return result.stdout
