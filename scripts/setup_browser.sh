#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the web-page tests (tests/serving/test_web_page.py).
# Installs Debian's chromium + chromium-driver with apt when they are missing and apt is usable
# (root, or passwordless sudo); otherwise says why, and those tests skip with the same reason.
set -u
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "setup_browser: chromium/chromium-driver are missing and apt needs root; the browser tests will skip" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup_browser: no apt-get on this system; install chromium and chromedriver by hand, or the browser tests skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || { echo "setup_browser: apt-get update failed; the browser tests will skip" >&2; exit 0; }
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver \
  || echo "setup_browser: apt-get install chromium chromium-driver failed; the browser tests will skip" >&2
exit 0
