#!/usr/bin/env bash
# Debian packages the tests need: the real `adb` client/server, `strace` (the test that
# proves no command connects outside this machine), `mksh` and `toybox` (the simulated
# Android-like device shell: tests/test_toybox_device.py), and Chromium for the HTML report test.
# Installed here (as root, as on CI) so nobody installs them by hand.
set -euo pipefail
need=()
command -v adb >/dev/null 2>&1 || need+=(adb)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v mksh >/dev/null 2>&1 || need+=(mksh)
command -v toybox >/dev/null 2>&1 || need+=(toybox)
if [ "${1:-}" = "--browser" ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${need[*]}; run: sudo apt-get install -y ${need[*]}" >&2
  exit 0
fi
echo "installing Debian packages: ${need[*]}"
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
