#!/usr/bin/env bash
# Browser test of `medlink serve`'s page: installs puppeteer-core (the client only; the
# browser is Debian's chromium) under target/, then runs page.cjs against the release binary.
# Needs: /usr/bin/chromium (apt-get install chromium), node + npm, target/release/medlink.
set -euo pipefail
cd "$(dirname "$0")/../.."
NODE_DIR="${MEDLINK_BROWSER_NODE:-$PWD/target/browser-node}"
if [ ! -d "$NODE_DIR/node_modules/puppeteer-core" ]; then
    npm install --no-audit --no-fund --silent --prefix "$NODE_DIR" puppeteer-core@24
fi
MEDLINK_BROWSER_NODE="$NODE_DIR" node tests/browser/page.cjs
