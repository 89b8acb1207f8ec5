// MathJax 3 configuration, loaded before the vendored docs/assets/vendor/mathjax/tex-mml-chtml.js.
// pymdownx.arithmatex (generic mode) wraps math in .arithmatex as \( \) and \[ \]; mkdocs-jupyter renders
// notebook Markdown cells in .jp-RenderedMarkdown with $ and $$. Everything else on the page is ignored:
// an element with any class is skipped unless it matches processHtmlClass, and an element without a class
// inherits its parent's state (so the <p> inside a notebook cell is processed; ".*|" would skip it).
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".+",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown",
  },
};

// Re-typeset after Material's instant navigation swaps the page (a no-op on the first load, where
// MathJax typesets by itself once it has started).
if (typeof document$ !== "undefined") {
  let firstPage = true;
  document$.subscribe(() => {
    if (firstPage) {
      firstPage = false;
      return;
    }
    if (window.MathJax && window.MathJax.startup && window.MathJax.typesetPromise) {
      window.MathJax.startup.output.clearCache();
      window.MathJax.typesetClear();
      window.MathJax.texReset();
      window.MathJax.typesetPromise();
    }
  });
}
