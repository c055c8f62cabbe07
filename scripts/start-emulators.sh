#!/usr/bin/env bash
# Installs (first run only) and starts local object-store emulators for the
# delta/storage integration tests, on loopback ports:
#
#   S3     moto server (PyPI moto[server]), behind a lock that serialises
#          requests so its If-None-Match check-then-write is atomic
#   Azure  Azurite blob service (npm azurite), in memory
#   GCS    fake-gcs-server (Go module), in memory
#
# Everything is installed under .tools/ (gitignored); logs and pid files go to
# .tools/run/. Progress goes to stderr; stdout carries only `export` lines for
# the emulators that are up, so call it as
#
#   eval "$(scripts/start-emulators.sh)"
#   go test ./delta/storage/...
#   scripts/stop-emulators.sh
#
# Running it again reuses what is installed and what is already running.
# Exit status: 0, unless CLAIMX_REQUIRE_INTEGRATION=1 and an emulator could not
# be started. Ports can be moved with CLAIMX_EMU_S3_PORT, CLAIMX_EMU_AZURITE_PORT
# and CLAIMX_EMU_GCS_PORT.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=$ROOT/.tools
RUN=$TOOLS/run
S3_PORT=${CLAIMX_EMU_S3_PORT:-19090}
AZ_PORT=${CLAIMX_EMU_AZURITE_PORT:-10100}
GCS_PORT=${CLAIMX_EMU_GCS_PORT:-14443}
MOTO_VERSION=5.2.5
AZURITE_VERSION=3.37.0
FAKEGCS_VERSION=v1.56.1

mkdir -p "$RUN"
log() { echo "start-emulators: $*" >&2; }

# ---------------------------------------------------------------- install ---

install_moto() {
	local venv=$TOOLS/moto-venv stamp=$TOOLS/moto-venv/.claimx-version
	if [[ -f $stamp && $(cat "$stamp") == "$MOTO_VERSION" ]]; then return 0; fi
	command -v python3 >/dev/null || { log "S3: python3 not found"; return 1; }
	log "S3: installing moto[server]==$MOTO_VERSION into $venv"
	rm -rf "$venv"
	python3 -m venv "$venv" &&
		"$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" &&
		echo "$MOTO_VERSION" >"$stamp"
}

install_azurite() {
	local dir=$TOOLS/node stamp=$TOOLS/node/.claimx-version
	if [[ -f $stamp && $(cat "$stamp") == "$AZURITE_VERSION" ]]; then return 0; fi
	command -v npm >/dev/null || { log "Azure: npm not found"; return 1; }
	log "Azure: installing azurite@$AZURITE_VERSION into $dir"
	mkdir -p "$dir" &&
		npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >&2 &&
		echo "$AZURITE_VERSION" >"$stamp"
}

install_fakegcs() {
	local bin=$TOOLS/bin/fake-gcs-server stamp=$TOOLS/bin/.fake-gcs-server-version
	if [[ -x $bin && -f $stamp && $(cat "$stamp") == "$FAKEGCS_VERSION" ]]; then return 0; fi
	command -v go >/dev/null || { log "GCS: go not found"; return 1; }
	log "GCS: installing fake-gcs-server@$FAKEGCS_VERSION into $TOOLS/bin (a Go build, a few minutes)"
	mkdir -p "$TOOLS/bin" &&
		(cd "$TOOLS" && GOBIN=$TOOLS/bin GOFLAGS=-buildvcs=false go install "github.com/fsouza/fake-gcs-server@$FAKEGCS_VERSION") >&2 &&
		echo "$FAKEGCS_VERSION" >"$stamp"
}

# ------------------------------------------------------------------ start ---

# running NAME: the emulator started earlier by this script is still alive.
running() {
	local pid
	pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
	kill -0 "$pid" 2>/dev/null
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_http NAME URL: wait up to 60 s for any HTTP answer.
wait_http() {
	local i
	for ((i = 0; i < 120; i++)); do
		if curl -s -o /dev/null --max-time 2 "$2"; then return 0; fi
		running "$1" || { log "$1 exited; see $RUN/$1.log"; tail -5 "$RUN/$1.log" >&2; return 1; }
		sleep 0.5
	done
	log "$1 did not answer on $2 within 60 s; see $RUN/$1.log"
	return 1
}

# start NAME PORT CMD...: start CMD detached, with its own process group.
start() {
	local name=$1 port=$2
	shift 2
	if running "$name"; then
		log "$name already running (pid $(cat "$RUN/$name.pid"))"
		return 0
	fi
	if port_busy "$port"; then
		log "$name: port $port is taken by another program; set CLAIMX_EMU_*_PORT"
		return 1
	fi
	setsid "$@" >"$RUN/$name.log" 2>&1 </dev/null &
	echo $! >"$RUN/$name.pid"
	log "$name started (pid $!, port $port)"
}

# moto's server is threaded and checks If-None-Match before writing, which
# is racy; one lock around the WSGI app makes each request atomic, as S3's
# conditional writes are.
start_moto() {
	start moto "$S3_PORT" "$TOOLS/moto-venv/bin/python" -c '
import sys, threading
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()
def serialized(environ, start_response):
    with lock:
        return list(app(environ, start_response))
run_simple("127.0.0.1", int(sys.argv[1]), serialized, threaded=True, request_handler=MotoRequestHandler)
' "$S3_PORT" && wait_http moto "http://127.0.0.1:$S3_PORT/"
}

start_azurite() {
	start azurite "$AZ_PORT" "$TOOLS/node/node_modules/.bin/azurite-blob" \
		--blobHost 127.0.0.1 --blobPort "$AZ_PORT" --inMemoryPersistence \
		--skipApiVersionCheck --loose --silent &&
		wait_http azurite "http://127.0.0.1:$AZ_PORT/devstoreaccount1?comp=list"
}

start_fakegcs() {
	start fake-gcs-server "$GCS_PORT" "$TOOLS/bin/fake-gcs-server" \
		-scheme http -host 127.0.0.1 -port "$GCS_PORT" -backend memory \
		-public-host "127.0.0.1:$GCS_PORT" -log-level warn &&
		wait_http fake-gcs-server "http://127.0.0.1:$GCS_PORT/storage/v1/b"
}

# -------------------------------------------------------------------- main ---

t0=$SECONDS
# Installs run in parallel; each writes its result to a file.
for emu in moto azurite fakegcs; do
	(install_$emu && echo ok >"$RUN/install-$emu.status" || echo failed >"$RUN/install-$emu.status") &
done
wait
log "installs done in $((SECONDS - t0)) s"

failed=()
if [[ $(cat "$RUN/install-moto.status") == ok ]] && start_moto; then
	echo "export CLAIMX_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT"
else
	failed+=(S3)
fi
if [[ $(cat "$RUN/install-azurite.status") == ok ]] && start_azurite; then
	echo "export CLAIMX_TEST_AZURITE=http://127.0.0.1:$AZ_PORT/devstoreaccount1"
else
	failed+=(Azure)
fi
if [[ $(cat "$RUN/install-fakegcs.status") == ok ]] && start_fakegcs; then
	echo "export CLAIMX_TEST_GCS_ENDPOINT=http://127.0.0.1:$GCS_PORT"
else
	failed+=(GCS)
fi
log "ready in $((SECONDS - t0)) s; stop with scripts/stop-emulators.sh"
if ((${#failed[@]})); then
	log "not started: ${failed[*]} (their tests skip; see $RUN/*.log)"
	[[ ${CLAIMX_REQUIRE_INTEGRATION:-} == 1 ]] && exit 1
fi
exit 0
