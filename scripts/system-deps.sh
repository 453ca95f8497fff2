#!/usr/bin/env bash
# System packages the test suite uses that pip cannot install: redis-server, for the
# Redis-backed sources registry's tests (tests/test_sources_redis.py). Never fails the
# build: without root or a reachable package mirror it says so in one line and those
# tests skip with a visible reason.
set -u

if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "system-deps: redis-server not installed and not root; the Redis tests will skip"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: redis-server not installed and no apt-get; the Redis tests will skip"
    exit 0
fi
if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends redis-server) >/dev/null 2>&1; then
    echo "system-deps: apt-get could not install redis-server; the Redis tests will skip"
fi
exit 0
