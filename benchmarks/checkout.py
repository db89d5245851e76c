"""Make this checkout's proxygate importable when it is not installed (``pip install -e .``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def ensure_proxygate_importable() -> None:
    if importlib.util.find_spec("proxygate") is None and (SRC / "proxygate").is_dir():
        sys.path.insert(0, str(SRC))
