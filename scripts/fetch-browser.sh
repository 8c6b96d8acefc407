#!/usr/bin/env bash
# Installs the browser the search page's test runs in: Debian's chromium and chromium-driver
# (/usr/bin/chromium, /usr/bin/chromedriver), with apt-get, as root or through sudo. Nothing is
# downloaded outside Debian's packages. Idempotent: does nothing when both are there. Without
# root the browser test is skipped (and fails under CI), as it says.
set -euo pipefail
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  exit 0
fi
if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "fetch-browser: not root and no sudo: install chromium and chromium-driver to run the browser test" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "fetch-browser: installed $(/usr/bin/chromium --version 2>/dev/null)"
