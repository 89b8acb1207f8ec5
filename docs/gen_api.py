"""Generate the API reference: one page per public module of llmdocs, plus the section's literate nav.

Run by mkdocs-gen-files at every build (nothing is written under docs/). The module list comes from walking
llmdocs/ on disk (docs_support.public_modules), so a new module gets its page without anyone editing a list;
tests/test_docs_api.py imports every one of them.

Each object is documented once, on the page of the module that defines it. A package's page is its overview: its
docstring (which walks through its modules) and a table of the names it exports (`__all__`, what
`from llmdocs.<package> import ...` offers), each linked to its documentation with the first paragraph of its
docstring. (Rendering the exported objects again in full made the package pages a third of the API's HTML, and
put every object twice in the search results.)
"""

import re
import sys
from pathlib import Path

import griffe
import mkdocs_gen_files

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_support import REPO_ROOT, public_modules

LLMDOCS = griffe.load("llmdocs", search_paths=[str(REPO_ROOT)], resolve_aliases=False)  # static: nothing is imported


def package_node(package: str) -> griffe.Module:
    """Griffe's view of a package of llmdocs: `llmdocs`, `llmdocs.nn`, `llmdocs.cli.demos`."""
    return LLMDOCS if package == "llmdocs" else LLMDOCS[package.removeprefix("llmdocs.")]


def _escape_pipes(text: str) -> str:
    """Escape each ``|`` outside code spans (`x`, ``x``): in a table it would end the cell; inside code it is kept."""
    out, end = [], 0
    for span in re.finditer(r"(`+).*?\1", text):
        out += [text[end : span.start()].replace("|", "\\|"), span.group()]
        end = span.end()
    return "".join([*out, text[end:].replace("|", "\\|")])


def exports_table(package: str) -> str:
    """Markdown table of the names `package` exports: each linked to where it is documented, its kind, its summary."""
    node = package_node(package)
    rows = []
    for name in map(str, node.exports or ()):
        imported = node.imports.get(name)  # `from .lora_budget import lora_budget`: the function, not the module
        member = LLMDOCS.modules_collection[imported] if imported else node[name]
        target = member.final_target if member.is_alias else member
        summary = target.docstring.value.split("\n\n")[0] if target.docstring else ""
        summary = " ".join(summary.split())  # one line
        summary = _escape_pipes(summary)
        documented = target.docstring is not None and not any(part.startswith("_") for part in target.path.split("."))
        label = f"[`{name}`][{target.path}]" if documented else f"`{name}`"  # only documented objects get a page
        rows.append(f"| {label} | {target.kind.value} | {summary} |\n")
    if not rows:
        return ""
    head = f"## Exported names\n\n`from {package} import ...`, each documented on the page of its module:\n\n"
    table = "| name | kind | summary |\n| --- | --- | --- |\n" + "".join(rows)
    return f'{head}<div class="llmdocs-exports" markdown>\n\n{table}\n</div>\n'  # names unbroken (extra.css)


nav = mkdocs_gen_files.Nav()
for module in public_modules():
    parts = module.split(".")
    # A package is a section with an index page (navigation.indexes), a module is a page:
    # llmdocs -> reference/index.md, llmdocs.testing -> reference/testing.md, llmdocs.a -> reference/a/index.md
    is_package = REPO_ROOT.joinpath(*parts, "__init__.py").is_file()
    stem = Path(*parts[1:], "index") if is_package else Path(*parts[1:])
    doc_path = Path("reference") / stem.with_suffix(".md")
    with mkdocs_gen_files.open(doc_path, "w") as page:
        if is_package:  # an overview: the docstring, its modules, what the package itself defines, its exports
            own = [  # public; its submodules (listed, not rendered: show_submodules is off) and what it defines,
                # documented (show_if_no_docstring is off); not what it imports: that has its own module's page
                name
                for name, member in package_node(module).members.items()
                if not name.startswith("_") and not member.is_alias and (member.is_module or member.has_docstrings)
            ]
            members = "[" + ", ".join(own) + "]" if own else "false"
            page.write(f"---\ntitle: {module}\n---\n\n::: {module}\n    options:\n      members: {members}\n\n")
            page.write(exports_table(module))
        else:
            page.write(f"---\ntitle: {module}\n---\n\n::: {module}\n")
    titles = tuple(".".join(parts[: i + 1]) for i in range(len(parts)))
    nav[titles] = doc_path.relative_to("reference").as_posix()

with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as summary:
    summary.writelines(nav.build_literate_nav())
