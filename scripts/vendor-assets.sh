#!/usr/bin/env bash
# Regenerates the web console's vendored browser assets (static/vendor/) from the npm versions
# pinned in entrypoints/assets/package-lock.json. The output is committed, so installing
# codeexec needs no npm; run this only to change a pinned version, then commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."

assets=entrypoints/assets
vendor=entrypoints/src/codeexec_server/static/vendor
npm ci --prefix "$assets" --no-audit --no-fund --loglevel=error

cm="$assets/node_modules/codemirror"
out="$vendor/codemirror"
rm -rf "$out"
mkdir -p "$out/lib" "$out/mode" "$out/addon"
cp "$cm/LICENSE" "$out/LICENSE"
cp "$cm/lib/codemirror.js" "$cm/lib/codemirror.css" "$out/lib/"
# One mode per language the sandboxes offer (php needs the html modes it can embed).
for mode in python javascript shell clike rust go ruby php perl lua htmlmixed xml css; do
  mkdir -p "$out/mode/$mode"
  cp "$cm/mode/$mode/$mode.js" "$out/mode/$mode/"
done
for addon in mode/simple edit/matchbrackets selection/active-line; do
  mkdir -p "$out/addon/$(dirname "$addon")"
  cp "$cm/addon/$addon.js" "$out/addon/$addon.js"
done
version=$(node -p "require('./$cm/package.json').version")
echo "codemirror $version (npm, MIT): see LICENSE; regenerate with scripts/vendor-assets.sh" \
  > "$out/VERSION"
echo "vendored codemirror $version into $out"
