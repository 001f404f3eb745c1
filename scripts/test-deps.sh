#!/usr/bin/env bash
# Run by `npm test` before the tests: provides what the suite needs beyond npm.
#   chromium, fonts-dejavu-core   the Swagger UI browser test (test/browser), at $CHROMIUM_PATH or /usr/bin/chromium
#   redis-server, redis-tools     the Redis engine's tests (redis-server and redis-cli on PATH)
# Missing ones are installed with apt-get when this runs as root on a system that has it;
# otherwise it prints what to install and fails: the suite never skips those tests.
# Uses bash builtins only, besides apt-get.
set -uo pipefail

chromium=${CHROMIUM_PATH:-/usr/bin/chromium}
packages=(chromium fonts-dejavu-core redis-server redis-tools)

# Fills `absent` with what is missing; true when nothing is.
check () {
  absent=()
  [ -x "$chromium" ] || absent+=("chromium (expected at $chromium)")
  command -v redis-server >/dev/null 2>&1 || absent+=("redis-server (on PATH)")
  command -v redis-cli >/dev/null 2>&1 || absent+=("redis-cli (on PATH)")
  [ ${#absent[@]} -eq 0 ]
}

check && exit 0

echo "test-deps: missing:" >&2
printf '  %s\n' "${absent[@]}" >&2
if [ "$EUID" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: installing ${packages[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update && apt-get install -y --no-install-recommends "${packages[@]}"; then
    check && exit 0
    echo "test-deps: still missing after the install:" >&2
    printf '  %s\n' "${absent[@]}" >&2
  else
    echo "test-deps: apt-get failed (see above)" >&2
  fi
fi
{
  echo "test-deps: the test suite needs these Debian packages and cannot install them here"
  echo "(it installs them by itself only when run as root on a system with apt-get). Install them, then run npm test again:"
  echo
  echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${packages[*]}"
  echo
  echo "Elsewhere: a Chromium build (set CHROMIUM_PATH to its executable) and Redis 7 or later (redis-server and redis-cli on PATH)."
} >&2
exit 1
