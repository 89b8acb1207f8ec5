"""Open the pages of the built site in headless Chromium and check what a reader would see.

For each page: it loads; no request fails or gets an HTTP error; nothing is requested from any host but the local
server (the site must work offline: MathJax and mermaid are vendored, fonts are the system's); no console error;
math is typeset (`mjx-container`, no raw `\\(`, no MathJax error); every mermaid diagram is drawn as an SVG; no
display equation or output area is wider than the content column (wide ones scroll inside it), at the default width
and at a phone's; at a phone's width (375 and 400 px) nothing makes the page wider than the screen. Every page is
opened but most API pages of single modules: the API pages (148 of the site's 163) come from one template, and the
browser opens a sample that covers what can differ, last, one after the other, at 400 px only (the narrower layout,
where a wide signature or table shows first, with JavaScript on: Material's script wraps wide tables in a box that
scrolls, and without it they push the page wider): the API's home page, each package's page (its overview and its
table of exported names), the longest module page of each package (the most signatures, tables and source listings)
and every API page with math (MathJax must typeset it). Opening all 148 took half a minute of a 2-core machine for
every test run. Chapter pages show the output areas of their code and link a notebook that the server delivers as
nbformat 4 JSON. Also checks the built HTML and CSS statically for resources on other hosts.

Every page's search worker fetches the same search index (2 MB) and indexes it: the first page gets the
whole index, the others the same config with no documents (indexing 1,200 sections on every page load was half
of Chromium's work in this test, 0.6 s of CPU a page, for the same file and the same code every time).

The site is built once per run with `mkdocs build --strict` into a temporary directory, or taken from
`LLMDOCS_SITE_DIR` (an already built site). Chromium is Debian's (`apt-get install chromium`, or `make system`),
driven through Playwright; `playwright install` is never needed. Set `LLMDOCS_CHROMIUM` to use another binary.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import urlparse

import lxml.html
import pytest
from docs_support import OUTPUT_CLASS, rendered_outputs

from llmdocs.cli.checks import find_chromium  # the same lookup as `llmdocs doctor`

pytestmark = pytest.mark.browser

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCAL_HOST = "127.0.0.1"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
HOW_TO_ENABLE = (
    "install Debian's chromium (`apt-get install -y --no-install-recommends chromium`, or `make system` as "
    "root) or set LLMDOCS_CHROMIUM=/path/to/chromium; the Python package `playwright` must be installed "
    "(never run `playwright install`)"
)


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reuse = os.environ.get("LLMDOCS_SITE_DIR")
    if reuse:
        path = Path(reuse)
        assert (path / "index.html").is_file(), f"LLMDOCS_SITE_DIR={reuse} holds no built site"
        return path
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-5000:]}"
    return out


def html_pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


# -- static check: no resource from another host in the built HTML/CSS ---------------------------------

_RESOURCE_RELS = {"stylesheet", "preload", "modulepreload", "icon", "apple-touch-icon", "manifest", "prefetch"}
_RESOURCE_TAGS = ("script", "img", "iframe", "source", "audio", "video", "embed", "track")
_CSS_REMOTE = re.compile(r"""(?:url\(\s*["']?|@import\s+["'])\s*((?:https?:)?//[^"')\s]+)""", re.I)


def page_resources(page_html: str) -> tuple[list[str], list[str]]:
    """The URLs a page loads (scripts, images, frames, media, linked stylesheets and icons, objects) and its CSS
    (``<style>`` blocks and ``style`` attributes), from lxml's parse of the HTML (a C parser: the site is 20 MB)."""
    root = lxml.html.document_fromstring(page_html)
    urls = [el.get(k) for el in root.iter(*_RESOURCE_TAGS) for k in ("src", "srcset") if el.get(k)]
    urls += [el.get("href", "") for el in root.iter("link") if _RESOURCE_RELS & set(el.get("rel", "").lower().split())]
    urls += [el.get("data") for el in root.iter("object") if el.get("data")]
    css = [el.text or "" for el in root.iter("style")] + [el.get("style") for el in root.xpath("//*[@style]")]
    return urls, css


def _is_remote(url: str) -> bool:
    return url.strip().lower().startswith(("http://", "https://", "//"))


def test_page_resources_finds_every_kind_of_reference() -> None:
    urls, css = page_resources(
        '<html><head><link rel="Stylesheet" href="a.css"><link rel="canonical" href="https://x.org/">'
        '<style>@import "//cdn.example/b.css";</style><script src="c.js"></script></head><body>'
        '<img src="d.png" srcset="e.png 2x"><object data="f.svg"></object><video src="g.mp4"></video>'
        "<p style=\"background: url('https://h.example/i.png')\">text</p></body></html>"
    )
    assert sorted(urls) == ["a.css", "c.js", "d.png", "e.png 2x", "f.svg", "g.mp4"]  # not the canonical link
    assert [m for text in css for m in _CSS_REMOTE.findall(text)] == ["//cdn.example/b.css", "https://h.example/i.png"]


def test_built_site_loads_resources_only_from_itself(site_dir: Path) -> None:
    problems = []
    for page in html_pages(site_dir):
        urls, css = page_resources(page.read_text(encoding="utf-8"))
        remote = [u for u in urls if _is_remote(u)]
        for url in urls:
            target = urlparse(url)
            if _is_remote(url) or target.scheme or not target.path:
                continue
            base = site_dir if target.path.startswith("/") else page.parent
            resolved = (base / target.path.lstrip("/")).resolve()
            if not resolved.is_file():
                problems.append(f"{page.relative_to(site_dir)}: missing local resource {url}")
        remote += [m for text in css for m in _CSS_REMOTE.findall(text)]
        problems += [f"{page.relative_to(site_dir)}: {url}" for url in remote]
    for stylesheet in sorted(site_dir.rglob("*.css")):
        problems += [f"{stylesheet.relative_to(site_dir)}: {u}" for u in _CSS_REMOTE.findall(stylesheet.read_text())]
    assert not problems, "resources loaded from another host:\n" + "\n".join(problems)


def test_api_pages_show_their_source_but_search_skips_it(site_dir: Path) -> None:
    page = (site_dir / "reference" / "finetuning" / "grpo" / "index.html").read_text(encoding="utf-8")
    assert page.count('<details class="mkdocstrings-source">') >= 2 and "llmdocs-source-listing" not in page
    assert "def group_relative_advantages(" in unescape(re.sub(r"<[^>]+>", "", page))  # put back (docs/hooks.py)
    index = json.loads((site_dir / SEARCH_INDEX).read_text(encoding="utf-8"))
    text = " ".join(doc["text"] for doc in index["docs"])
    assert "group_relative_advantages" in text and "def group_relative_advantages(" not in unescape(text)


def test_package_pages_list_their_exports_and_document_each_object_once(site_dir: Path) -> None:
    """A package's page is an overview (docs/gen_api.py): the objects it exports are documented on their modules'
    pages and linked from its table, and what the package defines itself (``llmdocs.cli.main``) stays on it."""
    page = (site_dir / "reference" / "finetuning" / "index.html").read_text(encoding="utf-8")
    assert 'id="exported-names"' in page and 'href="lora/#llmdocs.finetuning.lora.apply_lora"' in page
    assert 'id="llmdocs.finetuning.apply_lora"' not in page  # not rendered a second time here
    assert "<code>&lt;|role|&gt;content&lt;|end|&gt;</code>" in page and "\\|" not in page  # a | in code, unescaped
    # a function exported under its module's name is the function (`from .lora_budget import lora_budget`)
    assert (
        'href="lora_budget/#llmdocs.finetuning.lora_budget.lora_budget"' in page and 'class="llmdocs-exports"' in page
    )
    root = (site_dir / "reference" / "index.html").read_text(encoding="utf-8")
    for page_html in (root, page):  # each package lists its modules, linked to their pages
        assert "Modules:" in page_html
    assert 'href="serialization/#llmdocs.serialization"' in root and 'href="dpo/#llmdocs.finetuning.dpo"' in page
    cli = (site_dir / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert 'id="llmdocs.cli.main"' in cli and 'id="llmdocs.cli._HelpFormatter"' not in cli  # its own, public only
    anchors = re.findall(
        r'<h[1-6] id="(llmdocs\.[^"]+)"', "".join(p.read_text() for p in (site_dir / "reference").rglob("*.html"))
    )
    assert len(anchors) == len(set(anchors)) and "llmdocs.finetuning.lora.apply_lora" in anchors
    index = json.loads((site_dir / SEARCH_INDEX).read_text(encoding="utf-8"))
    locations = [doc["location"] for doc in index["docs"] if doc["location"].endswith("apply_lora")]
    assert locations == ["reference/finetuning/lora/#llmdocs.finetuning.lora.apply_lora"], locations


# -- the real browser ------------------------------------------------------------------------------------


SEARCH_INDEX = "search/search_index.json"  # Material's, one for the whole site


class _SiteServer(http.server.ThreadingHTTPServer):
    """The built site on 127.0.0.1 (a free port); the search index whole once, then without its documents."""

    def __init__(self, site: Path) -> None:
        super().__init__((LOCAL_HOST, 0), functools.partial(_SiteHandler, directory=str(site)))
        self.url = f"http://{LOCAL_HOST}:{self.server_address[1]}/"
        index = site / SEARCH_INDEX
        self.search_index = index.read_bytes() if index.is_file() else None
        self.empty_search_index = b""
        if self.search_index is not None:
            self.empty_search_index = json.dumps(
                {"config": json.loads(self.search_index)["config"], "docs": []}
            ).encode()
        self.search_index_requests = 0
        self._lock = threading.Lock()

    def next_search_index(self) -> bytes:
        with self._lock:
            self.search_index_requests += 1
            return self.search_index if self.search_index_requests == 1 else self.empty_search_index


class _SiteHandler(http.server.SimpleHTTPRequestHandler):
    server: _SiteServer

    def do_GET(self) -> None:
        if urlparse(self.path).path != "/" + SEARCH_INDEX or self.server.search_index is None:
            super().do_GET()
            return
        body = self.server.next_search_index()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")  # else Chromium's cache gives every page the whole index
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site_server(site_dir: Path) -> Iterator[_SiteServer]:
    server = _SiteServer(site_dir)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser_page() -> Iterator[object]:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(f"Chromium not found: to run the browser test, {HOW_TO_ENABLE}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(f"playwright is not installed (pip install playwright): {HOW_TO_ENABLE}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(service_workers="block")
            # Material draws each mermaid diagram into a *closed* shadow root; open them so the test can look.
            context.add_init_script(
                "const attach = Element.prototype.attachShadow;"
                "Element.prototype.attachShadow = function (init) {"
                "  return attach.call(this, Object.assign({}, init, {mode: 'open'})); };"
            )
            yield context.new_page()
        finally:
            browser.close()


# Runs in the page once it has loaded: waits for MathJax and mermaid, then reports what the reader sees.
_INSPECT = """
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const deadline = Date.now() + 20000;
  while (document.querySelector("pre.mermaid") && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 50));
  const hosts = [...document.querySelectorAll(".mermaid")];
  const rawMath = [...document.querySelectorAll(".arithmatex, .jp-RenderedMarkdown")]
    .map((el) => {
      const clone = el.cloneNode(true);
      clone.querySelectorAll("mjx-container, code, pre").forEach((c) => c.remove());
      return clone.textContent;
    })
    .filter((text) => /\\\\\\(|\\\\\\[|\\$\\$|\\$[^$\\s][^$]*\\$/.test(text));
  const outputs = [...document.querySelectorAll(".llmdocs-output")];
  const notebook = document.querySelector("a.llmdocs-notebook");
  let notebookFile = null;
  if (notebook) {
    const response = await fetch(notebook.href);
    let format = null;
    try { format = (await response.json()).nbformat; } catch (error) { format = String(error); }
    notebookFile = { href: notebook.getAttribute("href"), status: response.status, nbformat: format,
                     visible: notebook.getBoundingClientRect().height > 0 };
  }
  return {
    outputAreas: outputs.length,
    outputsShown: outputs.filter((o) => o.getBoundingClientRect().height > 0
      && o.querySelector(".llmdocs-output-label").textContent === "Output"
      && o.querySelector("pre > code").textContent.length > 0).length,
    notebookFile,
    title: document.querySelector("h1") ? document.querySelector("h1").textContent.trim() : "",
    mathContainers: document.querySelectorAll("mjx-container").length,
    mathErrors: document.querySelectorAll("mjx-merror").length,
    arithmatex: document.querySelectorAll(".arithmatex").length,
    rawMath: rawMath.map((t) => t.trim().slice(0, 80)),
    mermaidSource: document.querySelectorAll("pre.mermaid").length,
    mermaidHosts: hosts.length,
    mermaidDrawn: hosts.filter((h) => h.shadowRoot && h.shadowRoot.querySelector("svg")).length,
    mermaidErrors: hosts.filter((h) => h.shadowRoot && /Syntax error/i.test(h.shadowRoot.textContent)).length,
  };
}
"""


# Display math and output areas must fit in the article (their content may be wider: it scrolls inside).
_TOO_WIDE = """
() => {
  const article = document.querySelector("article.md-content__inner");
  if (!article) return [];
  const column = article.getBoundingClientRect();
  return [...document.querySelectorAll('mjx-container[display="true"], div.arithmatex, .llmdocs-output')]
    .map((el) => ({ el, box: el.getBoundingClientRect() }))
    .filter(({ box }) => box.width > 0 && (box.left < column.left - 1 || box.right > column.right + 1))
    .map(({ el, box }) =>
      `${el.tagName.toLowerCase()}.${el.className || el.getAttribute("display")}: ` +
      `${Math.round(box.left)}..${Math.round(box.right)} outside the column ` +
      `${Math.round(column.left)}..${Math.round(column.right)} (${el.textContent.trim().slice(0, 40)})`);
}
"""
# On a desktop a chapter's display equations fit their column whole: one too long for it is broken into lines
# (aligned) rather than left for the reader to scroll. (On a phone they scroll: see _TOO_WIDE.)
_MATH_SCROLLS = """
() => [...document.querySelectorAll('mjx-container[display="true"]')]
  .filter((el) => el.scrollWidth > el.clientWidth + 1)
  .map((el) => `display math ${el.scrollWidth} px wide in a ${el.clientWidth} px column ` +
               `(${el.textContent.trim().slice(0, 40)})`)
"""
NARROW = {"width": 400, "height": 800}  # a phone: Material's mobile layout
PHONE_WIDTHS = (375, 400)  # an iPhone's, a large Android's

# Nothing may make the page wider than a phone's screen, which would let it pan sideways into blank space (a
# formula's hidden MathML copy for screen readers did). Reports the page's width and what sticks out.
_PAGE_WIDTH = """
() => {
  const inner = window.innerWidth;
  const scrolls = (el) => { // inside a box that scrolls or clips it (a table's wrapper, display math)
    for (let box = el.parentElement; box && box !== document.body; box = box.parentElement)
      if (getComputedStyle(box).overflowX !== "visible") return true;
    return false;
  };
  const out = [...document.querySelectorAll("mjx-container, mjx-assistive-mml, pre, table, img, svg, .llmdocs-output")]
    .filter((el) => el.getBoundingClientRect().right > inner + 1 && !scrolls(el))
    .slice(0, 3)
    .map((el) => `${el.tagName.toLowerCase()} to ${Math.round(el.getBoundingClientRect().right)} px ` +
                 `(${el.textContent.trim().slice(0, 40)})`);
  return { scroll: document.documentElement.scrollWidth, inner, out };
}
"""


def _is_api_page(rel: str) -> bool:
    """An API page (``reference/``), generated from one template: checked at a phone's width only, where a wide
    signature or table would show first."""
    return rel.startswith("reference/")


def _api_package(rel: str) -> tuple[str, bool]:
    """The package an API page belongs to (``nn``, ``cli/demos``; ``""`` for llmdocs itself), and whether the page
    is that package's own page: reference/index.html, reference/nn/index.html, reference/nn/rmsnorm/index.html."""
    folder = rel.removeprefix("reference/").removesuffix("index.html").strip("/")
    if not folder or (REPO_ROOT / "llmdocs" / folder / "__init__.py").is_file():
        return folder, True
    return folder.rpartition("/")[0], False


def _opened_in_the_browser(pages: dict[str, str]) -> list[str]:
    """The pages the browser opens, from ``{path relative to the site: HTML}``: every page but the API pages of
    single modules, except the longest one of each package and those with math (see the module's docstring)."""
    longest: dict[str, str] = {}  # package -> its longest module page
    for rel, html in pages.items():
        if not _is_api_page(rel):
            continue
        package, is_package_page = _api_package(rel)
        if not is_package_page and len(html) > len(pages.get(longest.get(package, ""), "")):
            longest[package] = rel
    return [
        rel
        for rel, html in pages.items()
        if not _is_api_page(rel) or _api_package(rel)[1] or rel in longest.values() or 'class="arithmatex"' in html
    ]


def test_the_browser_opens_each_package_page_and_its_longest_module_page() -> None:
    pages = {
        "index.html": "",
        "reference/index.html": "",
        "reference/nn/index.html": "",
        "reference/nn/rmsnorm/index.html": "x" * 10,
        "reference/nn/rotary/index.html": "x" * 40,  # the longest of its package
        "reference/nn/swiglu/index.html": 'x <span class="arithmatex">',  # math
        "reference/cli/demos/index.html": "",  # a package inside a package
        "reference/cli/demos/gpt/index.html": "x",
        "reference/testing/index.html": "x",  # a module of llmdocs itself
    }
    assert _api_package("reference/cli/demos/gpt/index.html") == ("cli/demos", False)
    assert _api_package("reference/testing/index.html") == ("", False)
    assert sorted(_opened_in_the_browser(pages)) == [
        "index.html",
        "reference/cli/demos/gpt/index.html",
        "reference/cli/demos/index.html",
        "reference/index.html",
        "reference/nn/index.html",
        "reference/nn/rotary/index.html",
        "reference/nn/swiglu/index.html",
        "reference/testing/index.html",
    ]


def test_every_page_renders_offline_without_errors(
    site_dir: Path, site_server: _SiteServer, browser_page: object
) -> None:
    page = browser_page
    base_url = site_server.url
    every = html_pages(site_dir)
    opened = set(_opened_in_the_browser({html.relative_to(site_dir).as_posix(): html.read_text() for html in every}))
    pages = [html for html in every if html.relative_to(site_dir).as_posix() in opened]
    assert len(pages) >= 4, f"only {len(pages)} pages in {site_dir}"
    events: list[str] = []
    # Leaving a page (to about:blank or the next page, after checking it) aborts its late requests, e.g. the
    # favicon that Chromium fetches after "load": not an error.
    leaving = [False]
    # In-flight requests, to wait until the page (MathJax fonts, search index) has stopped loading; cheaper
    # than Playwright's "networkidle", which always waits 500 ms.
    pending: set[object] = set()

    def check_host(request: object) -> None:
        url = urlparse(request.url)
        if url.scheme in {"data", "blob", "about"}:
            return
        if url.hostname != LOCAL_HOST:
            events.append(f"request to another host: {request.url}")

    page.on("console", lambda m: events.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: events.append(f"page error: {e}"))
    page.on(
        "requestfailed",
        lambda r: (
            None
            if leaving[0] and "ERR_ABORTED" in str(r.failure)
            else events.append(f"request failed: {r.url} ({r.failure})")
        ),
    )
    page.on("response", lambda r: events.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.on("request", check_host)
    page.on("request", lambda r: pending.add(r))
    page.on("requestfinished", lambda r: pending.discard(r))
    page.on("requestfailed", lambda r: pending.discard(r))

    problems: list[str] = []
    stats = {"math": 0, "mermaid": 0, "chapters": 0, "API pages": 0}
    desktop = page.viewport_size
    for html in sorted(pages, key=lambda path: _is_api_page(path.relative_to(site_dir).as_posix())):
        rel = html.relative_to(site_dir).as_posix()
        api = _is_api_page(rel)
        stats["API pages"] += api
        source = html.read_text(encoding="utf-8")
        if api and page.viewport_size != NARROW:
            page.set_viewport_size(NARROW)  # the API pages come last, all at a phone's width: no resizing
        events.clear()
        leaving[0] = True  # this navigation aborts the previous page's late requests
        response = page.goto(base_url + rel, wait_until="load", timeout=30_000)
        leaving[0] = False
        if response is None or not response.ok:
            problems.append(f"{rel}: did not load ({response and response.status})")
            continue
        seen = page.evaluate(_INSPECT)
        too_wide = []
        if not api:
            too_wide += page.evaluate(_TOO_WIDE)
            if rel.startswith("chapters/"):
                too_wide += [f"at {desktop['width']} px: {p}" for p in page.evaluate(_MATH_SCROLLS)]
        for width in PHONE_WIDTHS if not api else (NARROW["width"],):
            if page.viewport_size["width"] != width:
                page.set_viewport_size({**NARROW, "width": width})
            if width == NARROW["width"] and ('class="arithmatex"' in source or "llmdocs-output" in source):
                too_wide += [f"at {width} px: {problem}" for problem in page.evaluate(_TOO_WIDE)]
            size = page.evaluate(_PAGE_WIDTH)
            if size["scroll"] > size["inner"]:
                too_wide.append(
                    f"at {width} px the page is {size['scroll']} px wide and pans sideways; sticking out: {size['out']}"
                )
        for _ in range(250):  # up to 5 s
            if not pending:
                break
            page.wait_for_timeout(20)
        else:
            events.append(f"requests still pending after 5 s: {[r.url for r in pending]}")
        if not api:
            leaving[0] = True
            page.goto("about:blank")
            page.set_viewport_size(desktop)  # for the next page (resizing the blank page costs no layout)
        pending.clear()
        found = [f"{rel}: {event}" for event in events]
        if rel != "404.html" and not seen["title"]:
            found.append(f"{rel}: no <h1>")
        found += [f"{rel}: {problem}" for problem in too_wide]
        if rel.startswith("chapters/"):
            stats["chapters"] += 1
            if not seen["outputAreas"] or seen["outputsShown"] < seen["outputAreas"]:
                found.append(f"{rel}: {seen['outputsShown']}/{seen['outputAreas']} output areas shown")
            notebook = seen["notebookFile"]
            expected = rel.removesuffix("/index.html").rpartition("/")[2] + ".ipynb"
            if notebook is None or not notebook["visible"] or not notebook["href"].endswith(expected):
                found.append(f"{rel}: no visible link to {expected}: {notebook}")
            elif notebook["status"] != 200 or notebook["nbformat"] != 4:
                found.append(f"{rel}: {notebook['href']} is not served as an nbformat 4 notebook: {notebook}")
        expects_math = 'class="arithmatex"' in source
        if expects_math:
            stats["math"] += 1
            if not seen["mathContainers"]:
                found.append(f"{rel}: math not typeset (no mjx-container)")
        if seen["rawMath"]:
            found.append(f"{rel}: raw TeX left on the page: {seen['rawMath']}")
        if seen["mathErrors"]:
            found.append(f"{rel}: {seen['mathErrors']} MathJax error(s) (mjx-merror)")
        expected_diagrams = source.count('class="mermaid"')
        if expected_diagrams:
            stats["mermaid"] += 1
            if seen["mermaidSource"] or seen["mermaidDrawn"] < expected_diagrams:
                found.append(
                    f"{rel}: {seen['mermaidDrawn']}/{expected_diagrams} mermaid diagrams drawn, "
                    f"{seen['mermaidSource']} left as source"
                )
            if seen["mermaidErrors"]:
                found.append(f"{rel}: mermaid syntax error in {seen['mermaidErrors']} diagram(s)")
        problems += found
    assert not problems, f"{len(problems)} problem(s) in {len(pages)} pages:\n" + "\n".join(problems)
    # The checks above must have had something to check: Conventions has math and a diagram, 4+ chapters, the
    # API's home and package pages, and a page's search worker got the whole search index.
    stats["search index requests"] = site_server.search_index_requests
    assert stats["math"] >= 1 and stats["mermaid"] >= 1 and stats["chapters"] >= 4, stats
    packages = [path for path in (REPO_ROOT / "llmdocs").iterdir() if (path / "__init__.py").is_file()]
    assert stats["API pages"] >= 1 + len(packages) and len(every) - len(pages) >= 100, (stats, len(every))
    assert site_server.search_index is not None and stats["search index requests"] >= 1, stats


# -- what the chapters' code prints is shown under it (static: no browser needed) ----------------------


def shown_outputs(page_html: str) -> list[tuple[str, str]]:
    """(code, output) for every output area of a built page, checking that it sits right under a python block."""
    pairs = []
    for match in re.finditer(f'<div class="{OUTPUT_CLASS}"', page_html):
        before = page_html[: match.start()].rstrip()
        assert before.endswith("</code></pre></div>"), f"an output area not right under a code block: {before[-200:]}"
        start = before.rfind('<div class="language-python highlight">')
        code = unescape(re.sub(r"<[^>]+>", "", before[start:]))
        pairs.append((code, rendered_outputs(page_html[match.start() :])[0]))
    return pairs


@pytest.mark.slow
def test_chapters_show_what_their_code_prints(site_dir: Path) -> None:
    chapters = sorted((site_dir / "chapters").glob("*/index.html"))
    assert len(chapters) >= 4
    shown = {page.parent.name: shown_outputs(page.read_text(encoding="utf-8")) for page in chapters}
    assert all(shown.values()), {name: len(pairs) for name, pairs in shown.items()}
    attention = dict(shown["attention"])
    code = next(code for code in attention if "print(context_vec.shape, attn_weights.shape)" in code)
    assert attention[code] == "torch.Size([2, 1, 5, 8]) torch.Size([2, 1, 5, 5])"
