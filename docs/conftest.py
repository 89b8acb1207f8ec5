"""Run every ```python block of docs/**/*.md with Sybil: one namespace per page, in order.

Each page runs in a fresh temporary directory with `LLMDOCS_FIGURES_DIR` inside it, after seeding
random/numpy/torch with 0 (docs/docs_support.py, shared with the build's hook, which runs every page for its
figures, outputs and notebook).
`*.md` matches at any depth: Sybil matches patterns against the path from the right.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from docs_support import markdown_parsers, sybil_setup, sybil_teardown
from sybil import Sybil

pytest_collect_file = Sybil(
    parsers=markdown_parsers(),
    patterns=["*.md"],
    excludes=["assets/*"],
    setup=sybil_setup,
    teardown=sybil_teardown,
).pytest()
