#!/bin/sh
# `make test` renders the HTML report in Debian's headless Chromium
# (tests/test_report_html_chromium.py). Install it when it is missing and we may (root with
# apt-get); otherwise stop with one line that says what to install.
set -e
CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the report rendering test (apt-get)..." >&2
    if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
        >/dev/null 2>&1 && [ -x "$CHROMIUM" ]; then
        exit 0
    fi
    echo "error: apt-get could not install chromium; install it (apt-get install chromium) so that $CHROMIUM exists, then run make test again" >&2
    exit 1
fi
echo "error: the tests need Chromium at $CHROMIUM: run 'sudo apt-get install chromium' (Debian/Ubuntu), then make test again" >&2
exit 1
