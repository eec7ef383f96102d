# shellcheck shell=bash
# script/lib/common.sh: shared helpers for the scripts in script/. Sourced, not run.
#
# Sets TIDEPOOL_ROOT (the repository root, found from this file's own path) and
# provides logging helpers and a free-port probe. Needs only bash and coreutils,
# plus Debian's /usr/bin/python3 for the port probe (installed by script/bootstrap).

TIDEPOOL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export TIDEPOOL_ROOT

# Debian's interpreter, never a pyenv or virtualenv one first on PATH: the
# Python drivers the tests use come from Debian packages.
TP_PYTHON=/usr/bin/python3

tp_say() { printf '==> %s\n' "$*" >&2; }
tp_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# tp_port_free PORT: true when PORT can be bound on 127.0.0.1 right now.
tp_port_free() {
  "$TP_PYTHON" - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

# tp_free_port [FIRST]: print a TCP port that is free on 127.0.0.1.
# With FIRST: FIRST or the next free one above it. Without: a random free port
# in 20000-31999, below Linux's ephemeral range (32768-60999) so that no
# outgoing connection can be given it between the probe and our bind.
tp_free_port() {
  "$TP_PYTHON" - "${1:-}" <<'EOF'
import random, socket, sys

def free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()

first = sys.argv[1]
candidates = range(int(first), 65536) if first else random.sample(range(20000, 32000), 2000)
for port in candidates:
    if free(port):
        print(port)
        sys.exit(0)
sys.exit("no free TCP port found on 127.0.0.1")
EOF
}
