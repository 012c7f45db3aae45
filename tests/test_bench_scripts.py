"""The benchmark scripts can import what they measure.

``python bench/x.py`` puts ``bench/`` first on ``sys.path``, so a script named like a package
(``bench/webhooks.py``) is what ``import webhooks`` finds, and the bench dies before it starts.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def importable_names() -> set[str]:
    """Top-level names a bench script's imports may reach: ours, the standard library's and
    every installed distribution's."""
    ours = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    installed = set(importlib.metadata.packages_distributions())
    return ours | installed | set(sys.stdlib_module_names)


def test_no_bench_script_is_named_like_a_package_it_would_shadow() -> None:
    scripts = {p.stem for p in (ROOT / "bench").glob("*.py")}
    assert {"api", "models", "sync", "webhooks", "simulators"} <= importable_names()
    assert scripts
    assert scripts & importable_names() == set()
