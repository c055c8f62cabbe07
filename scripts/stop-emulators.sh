#!/usr/bin/env bash
# Stops the emulators that scripts/start-emulators.sh started (by the process
# groups recorded in .tools/run/*.pid; nothing else is touched).
set -uo pipefail

RUN=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools/run
for name in moto azurite fake-gcs-server; do
	f=$RUN/$name.pid
	[[ -f $f ]] || continue
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		# setsid made the emulator its own process-group leader.
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 1 20); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.25
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
		echo "stop-emulators: stopped $name (pid $pid)" >&2
	fi
	rm -f "$f"
done
