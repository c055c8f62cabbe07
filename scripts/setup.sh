#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine (idempotent):
#   kcat (Debian) for Kafka interoperability tests,
#   promtool (Debian's prometheus package) to check the alert rules,
#   amtool and alertmanager (Debian's prometheus-alertmanager) to check and run
#   deploy/alertmanager/alertmanager.yaml,
#   a Python venv at .venv with delta-rs (deltalake) and pyarrow.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }

missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} (apt)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
log "kcat: $(command -v kcat); promtool: $(command -v promtool); amtool: $(command -v amtool)"

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import deltalake, pyarrow' 2>/dev/null; then
  log "creating .venv with $(tr '\n' ' ' < tests/requirements.txt | sed 's/#[^=]*readers that check our tables.//')"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
fi
log "python: $(.venv/bin/python -c 'import deltalake, pyarrow; print("deltalake", deltalake.__version__, "pyarrow", pyarrow.__version__)')"
