#!/usr/bin/env bash
# The system components some test suites drive for real (see README "Development"):
#   chromium                 the HTML gallery's browser tests (tests/test_report.py)
#   postgresql (server)      the PostgreSQL journal (tests/test_journal_pg.py, test_multiworker.py)
# Installs what is missing with apt when it can (root, or sudo without a password). Where it
# cannot, it says so: outside CI those tests are then skipped with that reason; in CI (CI set)
# a missing component is an error, so a green CI run always ran them.
set -uo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
pg_bin="$(pg_config --bindir 2>/dev/null || true)"
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    # Debian's server binaries live in /usr/lib/postgresql/<major>/bin.
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
fi
[ ${#missing[@]} -eq 0 ] && { echo "system components: all present"; exit 0; }

sudo_=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo_="sudo -n"; fi
fi
if { [ "$(id -u)" -eq 0 ] || [ -n "$sudo_" ]; } && command -v apt-get >/dev/null 2>&1; then
    echo "system components: installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    $sudo_ apt-get update -qq && \
        $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null && exit 0
    echo "system components: apt-get failed for ${missing[*]}" >&2
else
    echo "system components: cannot install ${missing[*]} (needs apt-get as root or sudo)" >&2
fi
if [ -n "${CI:-}" ]; then exit 1; fi
echo "system components: the tests that need ${missing[*]} will be skipped" >&2
exit 0
