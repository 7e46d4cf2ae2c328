#!/usr/bin/env bash
# Installs Debian's chromium for the browser test when it is missing. Never fails: where the install is impossible
# the browser test skips and says why.
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
{ $SUDO apt-get install -y -q chromium || { $SUDO apt-get update -q && $SUDO apt-get install -y -q chromium; }; } \
  >/tmp/advisor-chromium-install.log 2>&1 || echo "note: could not install chromium (see /tmp/advisor-chromium-install.log); the browser test will skip"
exit 0
