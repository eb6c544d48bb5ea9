#!/usr/bin/env bash
# Installs the Debian packages the test suite uses, when missing and when we can (root, apt present):
# flite (scripted test speech) and chromium (headless test of the review page). Never fails the build:
# tests that need a missing tool skip with a reason.
set -u
need=()
command -v flite >/dev/null 2>&1 || need+=(flite)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${need[*]}"
  (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null) \
    || echo "warning: could not install ${need[*]}; tests that need them will skip"
else
  echo "note: ${need[*]} not installed (needs root apt-get); tests that need them will skip"
fi
exit 0
