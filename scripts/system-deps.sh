#!/usr/bin/env bash
# System packages the test suite uses that pip cannot install: redis-server, for the
# Redis-backed sources registry's tests (tests/test_sources_redis.py), and chromium, for
# the reader pages' browser tests (tests/test_web_browser.py; Playwright's own browser
# download is not reachable, so the tests drive Debian's chromium). Never fails the
# build: without root or a reachable package mirror it says so in one line and those
# tests skip with a visible reason.
set -u

# command -> Debian package
declare -A WANTED=([redis-server]=redis-server [chromium]=chromium)
missing=()
for cmd in "${!WANTED[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${WANTED[$cmd]}")
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "system-deps: ${missing[*]} not installed and not root; their tests will skip"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: ${missing[*]} not installed and no apt-get; their tests will skip"
    exit 0
fi
if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}") >/dev/null 2>&1; then
    echo "system-deps: apt-get could not install ${missing[*]}; their tests will skip"
fi
exit 0
