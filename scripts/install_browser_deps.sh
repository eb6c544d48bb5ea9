#!/usr/bin/env bash
# Installs what the export tests need beyond the project's Python dependencies:
#   - Debian `chromium` (tests/test_report_browser.py drives it headless over the DevTools pipe;
#     no chromium-driver, no Playwright browser download),
#   - `xmlschema` into the project's venv (tests/test_exports.py validates the .eaf against EAFv3.0.xsd).
# Idempotent: whatever is already there is left alone. Needs root (or sudo) for apt-get.
# Usage: bash scripts/install_browser_deps.sh      (PYTHON=/path/to/python to pick another interpreter)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"

have_chromium() {
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

if have_chromium; then
  echo "chromium: present ($(command -v chromium || command -v chromium-browser))"
else
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
  elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "chromium is missing and this user cannot run apt-get (not root, no sudo)" >&2
    exit 1
  fi
  echo "chromium: installing with apt-get"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium
  have_chromium || { echo "chromium still not found after apt-get install" >&2; exit 1; }
fi

if "$PY" -c "import xmlschema" >/dev/null 2>&1; then
  echo "xmlschema: present"
else
  echo "xmlschema: installing into $PY"
  "$PY" -m pip install -q "xmlschema==4.3.2"
fi
