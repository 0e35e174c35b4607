#!/usr/bin/env bash
# Install Debian's Chromium and its WebDriver for the browser tests (tests/browser/), once:
# does nothing when both are already there. Needs root (CI runs as root).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "chromium and chromedriver already installed" >&2
  exit 0
fi
echo "installing chromium and chromium-driver with apt-get ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq chromium chromium-driver >&2
