#!/usr/bin/env bash
# Installs the Debian packages the test suite uses beyond the project's Python dependencies:
#   - `flite` (scripted test speech with exact ground truth: tests/test_synth.py, synthetic sessions),
#   - `chromium` (tests/test_report_browser.py drives it headless over the DevTools pipe; no driver, no
#     Playwright browser download),
#   - `strace` and `unshare` (util-linux) for the OS-level no-network test (tests/test_no_network_os.py:
#     whole runs in an empty network namespace, every connect() counted).
# Idempotent: whatever is already there is left alone. Needs root (or sudo) for apt-get; without it, the
# tests that need a missing tool skip with a reason.  Usage: bash scripts/install_sysdeps.sh
set -euo pipefail

need=()
command -v flite >/dev/null 2>&1 || need+=(flite)
command -v sox >/dev/null 2>&1 || need+=(sox)  # tests/test_prosody.py: pitch/tempo/gain changes of flite lines
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: flite, sox, chromium, strace and unshare present"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo"
else
  echo "warning: ${need[*]} missing and apt-get needs root; tests that need them will skip" >&2
  exit 0
fi
echo "system packages: installing ${need[*]} with apt-get"
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
