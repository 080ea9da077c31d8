"""Lockstep tests: examples/ on the import path (the mutant catalogue lives there)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for extra in (ROOT / "examples", ROOT / "tests" / "redis"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))
