#!/usr/bin/env bash
# Make sure Debian's headless Chromium is present (the HTML report's screenshot test uses it).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "chromium: present ($(chromium --version 2>/dev/null | head -n 1))"
  exit 0
fi
echo "chromium: installing Debian's chromium package (apt-get) for the HTML report's screenshot test"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
echo "chromium: installed ($(chromium --version 2>/dev/null | head -n 1))"
