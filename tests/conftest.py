"""Shared test set-up: make docs/docs_support.py importable (the helpers the docs build and tests share)."""

import sys
from pathlib import Path

DOCS_DIR = Path(__file__).resolve().parents[1] / "docs"
if str(DOCS_DIR) not in sys.path:
    sys.path.insert(0, str(DOCS_DIR))
