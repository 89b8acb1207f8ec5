"""Generate the API reference: one page per public module of llmdocs, plus the section's literate nav.

Run by mkdocs-gen-files at every build (nothing is written under docs/). The module list comes from walking
llmdocs/ on disk (docs_support.public_modules), so a new module gets its page without anyone editing a list;
tests/test_docs_api.py imports every one of them.
"""

import sys
from pathlib import Path

import mkdocs_gen_files

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_support import REPO_ROOT, public_modules

nav = mkdocs_gen_files.Nav()
for module in public_modules():
    parts = module.split(".")
    # A package is a section with an index page (navigation.indexes), a module is a page:
    # llmdocs -> reference/index.md, llmdocs.testing -> reference/testing.md, llmdocs.a -> reference/a/index.md
    is_package = REPO_ROOT.joinpath(*parts, "__init__.py").is_file()
    stem = Path(*parts[1:], "index") if is_package else Path(*parts[1:])
    doc_path = Path("reference") / stem.with_suffix(".md")
    with mkdocs_gen_files.open(doc_path, "w") as page:
        page.write(f"---\ntitle: {module}\n---\n\n::: {module}\n")
    titles = tuple(".".join(parts[: i + 1]) for i in range(len(parts)))
    nav[titles] = doc_path.relative_to("reference").as_posix()

with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as summary:
    summary.writelines(nav.build_literate_nav())
