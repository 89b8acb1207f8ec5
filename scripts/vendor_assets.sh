#!/usr/bin/env bash
# Re-vendor MathJax 3 and mermaid 11 from the npm registry into docs/assets/vendor/ so that the site
# loads no script, style or font from another host (see docs/conventions.md, "How the docs are tested").
# Usage: scripts/vendor_assets.sh [mathjax-version] [mermaid-version]   (needs npm; ~24 MB download, ~5.6 MB kept)
set -euo pipefail
MATHJAX=${1:-3}
MERMAID=${2:-11}
root="$(cd "$(dirname "$0")/.." && pwd)"
vendor="$root/docs/assets/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "mathjax@$MATHJAX" "mermaid@$MERMAID" >/dev/null
mkdir mj mm
tar xzf mathjax-*.tgz -C mj
tar xzf mermaid-*.tgz -C mm
rm -rf "$vendor/mathjax" "$vendor/mermaid"
# MathJax resolves its fonts and lazily loaded TeX extensions relative to the script, so keep es5/'s layout.
mkdir -p "$vendor/mathjax/output/chtml/fonts" "$vendor/mathjax/input/tex" "$vendor/mermaid"
cp mj/package/es5/tex-mml-chtml.js mj/package/LICENSE "$vendor/mathjax/"
cp -r mj/package/es5/output/chtml/fonts/woff-v2 "$vendor/mathjax/output/chtml/fonts/"
cp -r mj/package/es5/input/tex/extensions "$vendor/mathjax/input/tex/"
rm -f "$vendor/mathjax/input/tex/extensions/all-packages.js"
cp mm/package/dist/mermaid.min.js mm/package/LICENSE "$vendor/mermaid/"
{
  echo "Vendored by scripts/vendor_assets.sh from the npm registry (do not edit by hand)."
  echo "mathjax $(node -p "require('./mj/package/package.json').version") (Apache-2.0, see mathjax/LICENSE)"
  echo "mermaid $(node -p "require('./mm/package/package.json').version") (MIT, see mermaid/LICENSE)"
} > "$vendor/VERSIONS.txt"
du -sh "$vendor"
