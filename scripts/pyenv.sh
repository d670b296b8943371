#!/usr/bin/env bash
# Create or update the Python virtualenv of the end-to-end suite (engine/tests/python).
#
#   scripts/pyenv.sh            -> prints the path of the venv's python on stdout
#
# Idempotent and quick when nothing changed: a stamp file in the venv records the
# hash of requirements.txt plus the interpreter version; when it matches, nothing
# is installed.  Override the location with FERROVUS_VENV, the interpreter with PYTHON.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FERROVUS_VENV:-$ROOT/.venv}"
REQ="$ROOT/engine/tests/python/requirements.txt"
PY="${PYTHON:-python3}"
STAMP="$VENV/.ferrovus-requirements.sha256"

log() { echo "pyenv: $*" >&2; }

command -v "$PY" >/dev/null 2>&1 || { log "no $PY on PATH"; exit 1; }
want="$( { cat "$REQ"; "$PY" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "$VENV/bin/python"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtualenv at $VENV"
  if ! "$PY" -m venv "$VENV" >&2; then
    # Debian's python3 ships venv/ensurepip separately.
    if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
      log "python3 -m venv failed; installing python3-venv"
      rm -rf "$VENV"
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
      "$PY" -m venv "$VENV" >&2
    else
      log "python3 -m venv failed (install python3-venv)"; exit 1
    fi
  fi
fi

log "installing pinned requirements from ${REQ#$ROOT/}"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" >&2
echo "$want" > "$STAMP"
echo "$VENV/bin/python"
