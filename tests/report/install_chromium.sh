#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for the gallery's browser test (tests/report/test_browser.py).
# Idempotent: exits 0 at once when /usr/bin/chromium exists. Needs root (or sudo) and apt-get; exits 1 otherwise.
# Never runs `playwright install`: the test drives this system Chromium through Playwright's bundled driver.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then echo "install_chromium: no apt-get on this machine" >&2; exit 1; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "install_chromium: need root or password-less sudo to apt-get install chromium" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
test -x /usr/bin/chromium
