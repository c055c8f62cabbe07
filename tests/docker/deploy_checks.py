#!/usr/bin/env python3
"""Offline checks of deploy/ (run by check_dockerfile.sh; needs PyYAML).

    deploy_checks.py yaml REPO            every YAML file of deploy/ parses
    deploy_checks.py compose REPO         docker-compose.yaml: structure, files it mounts, commands
    deploy_checks.py k8s REPO OUTDIR      kustomization files, cross-checks, and per StatefulSet
                                          a mount layout under OUTDIR plus a JSON line
                                          {"name", "args", "root", "env"} with paths into that
                                          layout (env: the files the stream reads, by variable)
    deploy_checks.py rendered REPO FILE   the `kustomize build` output: ConfigMap references, files shipped
    deploy_checks.py metrics REPO         every metric the dashboard and the alert rules query is
                                          exported by the Go code or a pipeline `metric` processor,
                                          and the label values they select exist (consumer groups,
                                          component labels, alert rules)
    deploy_checks.py dashboard REPO       the dashboard JSON is valid and equals dashboard.py's output
    deploy_checks.py dashboard-rules REPO FILE
                                          writes the dashboard's queries as recording rules to FILE,
                                          for `promtool check rules` to parse every one as PromQL

Exit status 1 on any failure, with one FAIL line per problem on stderr.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

errors = []


def fail(msg):
    errors.append(msg)
    print(f"FAIL: {msg}", file=sys.stderr)


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def env_default(s):
    """The default of a benthos ${VAR:default} (or the text itself)."""
    m = re.fullmatch(r"\$\{\w+:([^}]*)\}", str(s).strip())
    return m.group(1) if m else str(s)


# The streams of the image's default command and of the StatefulSets.
STREAMS = ("trigger", "worker", "forms", "status", "alerts", "sla", "quality")
# The StatefulSet of each stream and its replicas: one per partition of its
# input topic, or a fixed count (the trigger and the alerts stream: rate
# limits per process; the SLA stream: one Delta writer is plenty).
STATEFULSETS = {
    "trigger": ("claimx-trigger", 1),
    "worker": ("claimx-worker", "partitions"),
    "forms": ("claimx-forms", "partitions"),
    "status": ("claimx-status", "partitions"),
    "alerts": ("claimx-alerts", 1),
    "sla": ("claimx-sla", 1),
    # No Kafka input: its checks run on a schedule, one replica.
    "quality": ("claimx-quality", 1),
}
# The consumer groups the docs name; those of LAG_ALERTED are selected by a
# lag alert and the dashboard (kafka_lag{consumer_group=...}).
GROUPS = {"worker": "itel_cabinet_tracking_worker_group", "forms": "itel_cabinet_forms_group",
          "status": "itel_cabinet_status_group", "alerts": "itel_cabinet_alerts_group", "sla": "itel_cabinet_sla_group"}
LAG_ALERTED = ("worker", "status", "alerts", "sla")
PATH_VAR = re.compile(r"\$\{(\w+):(\./[^}]*)\}")


def stream_paths(repo, stream):
    """The ${VAR:./default} of a stream file: {VAR: default}. A default under
    ./data/ is where the stream stores data (a table, photos); any other is a
    file the stream reads (schema, mapping), relative to the WORKDIR."""
    return dict(PATH_VAR.findall(open(os.path.join(repo, "pipelines", f"{stream}.yaml")).read()))


def resource_labels(paths):
    """Labels defined by resource files: every item of a *_resources list."""
    labels = set()
    for p in paths:
        for doc in load_all(p):
            for k, v in (doc or {}).items():
                if k.endswith("_resources") and isinstance(v, list):
                    labels |= {i["label"] for i in v if isinstance(i, dict) and "label" in i}
    return labels


def env_refs(text):
    """Environment variables a pipeline or resource file reads: ${VAR...}
    and env("VAR")."""
    return set(re.findall(r"\$\{(\w+)", text)) | set(re.findall(r'env\("(\w+)"\)', text))


def documented_secrets(repo):
    """The Secrets of deploy/k8s/secret.example.yaml: {name: set of keys}."""
    out = {}
    for doc in load_all(os.path.join(repo, "deploy", "k8s", "secret.example.yaml")):
        if isinstance(doc, dict) and doc.get("kind") == "Secret":
            out[doc["metadata"]["name"]] = set((doc.get("stringData") or {}) | (doc.get("data") or {}))
    return out


def selected_values(text, label):
    """Values a PromQL text selects for label: label="v" and each
    alternative of label=~"a|b"."""
    vals = set(re.findall(label + r'="([^"]+)"', text))
    for alt in re.findall(label + r'=~"([^"]+)"', text):
        vals |= set(alt.split("|"))
    return vals


def resource_refs(node):
    """Resource labels a config names: connection: X (claimx_lookup,
    claimx_media, itel_submission) and resource: X (the resource processor)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("connection", "resource") and isinstance(v, str) and "$" not in v:
                yield v
            else:
                yield from resource_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from resource_refs(v)


# ------------------------------------------------------------------ yaml
def check_yaml(repo):
    n = 0
    for p in sorted(glob.glob(os.path.join(repo, "deploy", "**", "*.y*ml"), recursive=True)):
        try:
            load_all(p)
            n += 1
        except yaml.YAMLError as e:
            fail(f"{os.path.relpath(p, repo)}: {e}")
    print(f"yaml: {n} files parse")


def walk(node, path=""):
    """(path, key, value) of every mapping entry under node."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{path}.{k}", k, v
            yield from walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


# --------------------------------------------------------------- compose
def check_compose(repo):
    d = os.path.join(repo, "deploy", "compose")
    path = os.path.join(d, "docker-compose.yaml")
    (c,) = load_all(path)
    services = c.get("services", {})
    need = {"redpanda", "topics-apply", "claimx-connect", "claimx-sim", "prometheus", "alertmanager", "grafana"}
    for s in sorted(need - set(services)):
        fail(f"compose: service {s} is missing")
    for name, s in services.items():
        # Bind mounts: the source must exist in the repository.
        for v in s.get("volumes", []) or []:
            src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if src.startswith("."):
                if not os.path.exists(os.path.normpath(os.path.join(d, src))):
                    fail(f"compose: service {name} mounts {src}, which does not exist")
            elif src and src not in (c.get("volumes") or {}):
                fail(f"compose: service {name} uses volume {src}, not declared under volumes:")
        b = s.get("build")
        if b:
            ctx = os.path.normpath(os.path.join(d, b.get("context", ".")))
            if not os.path.exists(os.path.join(ctx, b.get("dockerfile", "Dockerfile"))):
                fail(f"compose: service {name} builds {ctx} without a Dockerfile there")
        for dep, cond in (s.get("depends_on") or {}).items() if isinstance(s.get("depends_on"), dict) else []:
            if dep not in services:
                fail(f"compose: service {name} depends on unknown service {dep}")
    env = services.get("claimx-connect", {}).get("environment", {})
    for k in ("KAFKA_BOOTSTRAP_SERVERS", "CLAIMX_API_BASE_URL", "CLAIMX_API_TOKEN", "DELTA_TABLE_URI"):
        if k not in env:
            fail(f"compose: claimx-connect lacks {k}")
    if env.get("DELTA_TABLE_URI", "").split("/")[1:2] != ["data"]:
        fail("compose: DELTA_TABLE_URI should live on the /data volume")
    if "${CLAIMX_API_TOKEN" not in str(env.get("CLAIMX_API_TOKEN", "")):
        fail("compose: CLAIMX_API_TOKEN must come from .env, not be written in the file")
    # The forms stream: every table and the photos on the /data volume, and the
    # iTel connection (built with the forms stream: a bearer token is required).
    for stream in STREAMS:
        for var, default in stream_paths(repo, stream).items():
            if default.startswith("./data/") and not str(env.get(var, "")).startswith("/data/"):
                fail(f"compose: claimx-connect: {var} (pipelines/{stream}.yaml) should be set to a path on the /data volume")
    if "ITEL_API_BASE_URL" not in env:
        fail("compose: claimx-connect lacks ITEL_API_BASE_URL")
    if not str(env.get("ITEL_API_TOKEN", "")).startswith("${ITEL_API_TOKEN:?"):
        fail("compose: ITEL_API_TOKEN must come from .env and be required (${ITEL_API_TOKEN:?...})")
    sim_env = services.get("claimx-sim", {}).get("environment", {}) or {}
    if "${ITEL_API_TOKEN" not in str(sim_env.get("CLAIMX_SIM_ITEL_TOKEN", "")):
        fail("compose: claimx-sim must accept the iTel token (CLAIMX_SIM_ITEL_TOKEN: ${ITEL_API_TOKEN...})")
    ex = open(os.path.join(d, ".env.example")).read() if os.path.exists(os.path.join(d, ".env.example")) else ""
    for k in ("CLAIMX_API_TOKEN", "ITEL_API_TOKEN"):
        if not re.search(rf"^{k}=", ex, re.M):
            fail(f"compose: .env.example does not set {k}")
    # Every secret of the Kubernetes Secrets the streams get comes from .env
    # here too, never written in the file; the notifiers' are in .env.example.
    secret_vars = set().union(*documented_secrets(repo).values())
    for k in sorted(secret_vars & set(env)):
        if not str(env[k]).startswith("${" + k):
            fail(f"compose: claimx-connect: {k} is a secret: pass it from .env (${{{k}:-}}), not {env[k]!r}")
    alerts_vars = env_refs(open(os.path.join(repo, "pipelines", "alerts.yaml")).read())
    for k in sorted(secret_vars & alerts_vars):
        if k not in env:
            fail(f"compose: claimx-connect does not pass {k} (pipelines/alerts.yaml reads it) from .env")
        if not re.search(rf"^{k}=", ex, re.M):
            fail(f"compose: .env.example does not list {k}")
    if not os.path.exists(os.path.join(d, ".env.example")):
        fail("compose: .env.example is missing")
    gi = os.path.join(d, ".gitignore")
    if not os.path.exists(gi) or ".env" not in open(gi).read().split():
        fail("compose: deploy/compose/.gitignore must ignore .env")
    r = subprocess.run(["git", "-C", repo, "ls-files", "--error-unmatch", "deploy/compose/.env"],
                       capture_output=True)
    if r.returncode == 0:
        fail("compose: deploy/compose/.env is committed (it holds the token)")
    # Prometheus scrapes the service and loads the rules; Grafana gets the dashboard.
    (prom,) = load_all(os.path.join(d, "prometheus.yml"))
    targets = [t for sc in prom.get("scrape_configs", []) for st in sc.get("static_configs", []) for t in st.get("targets", [])]
    if "claimx-connect:4195" not in targets:
        fail("compose: prometheus.yml does not scrape claimx-connect:4195")
    vols = " ".join(services.get("prometheus", {}).get("volumes", []))
    if "../prometheus/alerts.yaml" not in vols:
        fail("compose: prometheus does not mount deploy/prometheus/alerts.yaml")
    vols = " ".join(services.get("grafana", {}).get("volumes", []))
    if "../grafana/claimx-connect-dashboard.json" not in vols:
        fail("compose: grafana does not mount the dashboard")
    # Prometheus sends its alerts to the Alertmanager service, which reads
    # deploy/alertmanager/alertmanager.yaml and its secrets at the paths the
    # file names, from .env (never a file of the repository).
    ams = [t for a in (prom.get("alerting") or {}).get("alertmanagers", []) for st in a.get("static_configs", []) for t in st.get("targets", [])]
    if "alertmanager:9093" not in ams:
        fail(f"compose: prometheus.yml alerting does not target alertmanager:9093 ({ams})")
    am = services.get("alertmanager", {})
    vols = " ".join(am.get("volumes", []))
    if "../alertmanager/alertmanager.yaml:/etc/alertmanager/alertmanager.yaml" not in vols:
        fail("compose: alertmanager does not mount deploy/alertmanager/alertmanager.yaml at /etc/alertmanager/alertmanager.yaml")
    if "--config.file=/etc/alertmanager/alertmanager.yaml" not in (am.get("command") or []):
        fail("compose: alertmanager does not run with --config.file=/etc/alertmanager/alertmanager.yaml")
    (amc,) = load_all(os.path.join(repo, "deploy", "alertmanager", "alertmanager.yaml"))
    files = {v for _, k, v in walk(amc) if isinstance(k, str) and k.endswith("_file")}
    targets = {x.get("target") for x in am.get("secrets", []) if isinstance(x, dict)}
    if files != targets:
        fail(f"compose: alertmanager's secrets are mounted at {sorted(t for t in targets if t)}, alertmanager.yaml reads {sorted(files)}")
    top = c.get("secrets") or {}
    for x in am.get("secrets", []):
        src = x.get("source") if isinstance(x, dict) else x
        if src not in top:
            fail(f"compose: alertmanager uses secret {src}, not declared under secrets:")
        elif "environment" not in top[src]:
            fail(f"compose: secret {src} must come from .env (environment:), not {top[src]}")
        elif not re.search(rf"^{top[src]['environment']}=", ex, re.M):
            fail(f"compose: .env.example does not list {top[src]['environment']} (secret {src})")
    ta = services.get("topics-apply", {}).get("command", [])
    # urfave/cli stops reading flags at the first argument: FILE must be last.
    if ta[:2] != ["topics", "apply"] or ta[-1] != "/etc/claimx-connect/pipelines/topics.yaml" or "--cap-replication" not in ta:
        fail(f"compose: topics-apply command is {ta}; want topics apply [flags] /etc/claimx-connect/pipelines/topics.yaml")
    # And for every claimx-connect subcommand: the file argument comes last.
    for name, s in services.items():
        cmd = s.get("command") or []
        if isinstance(cmd, list) and cmd[:1] in (["topics"], ["delta"]):
            paths = [i for i, a in enumerate(cmd) if a.startswith("/")]
            if paths and paths[-1] != len(cmd) - 1:
                fail(f"compose: service {name}: the file argument must come after the flags: {cmd}")
    print(f"compose: {len(services)} services checked")


# ------------------------------------------------------------------- k8s
def check_k8s(repo, out):
    d = os.path.join(repo, "deploy", "k8s")
    (k,) = load_all(os.path.join(d, "kustomization.yaml"))
    for r in k.get("resources", []):
        if not os.path.exists(os.path.join(d, r)):
            fail(f"k8s: kustomization resource {r} does not exist")
    gens = {}
    for g in k.get("configMapGenerator", []):
        files = []
        for f in g.get("files") or []:
            src = f.split("=", 1)[-1]
            p = os.path.normpath(os.path.join(d, src))
            if not os.path.exists(p):
                fail(f"k8s: configMapGenerator {g['name']}: {src} does not exist")
            files.append(p)
        for e in g.get("envs") or []:
            if not os.path.exists(os.path.join(d, e)):
                fail(f"k8s: configMapGenerator {g['name']}: {e} does not exist")
        gens[g["name"]] = files
    # Every shared resource file is shipped (a missing one fails only at run
    # time): the shared ConfigMap or the forms pod's iTel one. Each pod holding
    # what its stream names is checked below, on its mount layout.
    listed = {os.path.basename(p) for cm in ("claimx-pipeline-resources", "claimx-itel-resources", "claimx-alerts-resources") for p in gens.get(cm, [])}
    for p in sorted(glob.glob(os.path.join(repo, "pipelines", "resources", "*.yaml"))):
        if os.path.basename(p) not in listed:
            fail(f"k8s: pipelines/resources/{os.path.basename(p)} is in none of claimx-pipeline-resources, claimx-itel-resources, claimx-alerts-resources")
    # Every form mapping is shipped.
    listed = {os.path.basename(p) for p in gens.get("claimx-form-mappings", [])}
    for p in sorted(glob.glob(os.path.join(repo, "pipelines", "forms", "*.yaml"))):
        if os.path.basename(p) not in listed:
            fail(f"k8s: pipelines/forms/{os.path.basename(p)} is not in the claimx-form-mappings ConfigMap")
    env = {}
    for line in open(os.path.join(d, "config.env")):
        line = line.strip()
        if line and not line.startswith("#"):
            kk, _, v = line.partition("=")
            env[kk] = v
    # Every table and the photos (the ${VAR:./data/...} of the streams) on
    # object storage: replicas on different nodes share them, pods lose local disk.
    for stream in STREAMS:
        for var, default in stream_paths(repo, stream).items():
            if not default.startswith("./data/"):
                continue
            uri = env.get(var, "")
            if not re.match(r"^(s3|s3a|abfss|az|gs)://", uri):
                fail(f"k8s: {var}={uri!r} (pipelines/{stream}.yaml): must be object storage (s3://, abfss://, gs://), not a local path")
    docs = {}
    for p in glob.glob(os.path.join(d, "*.yaml")):
        for doc in load_all(p):
            if isinstance(doc, dict) and "kind" in doc and "metadata" in doc:
                docs[(doc["kind"], doc["metadata"]["name"])] = doc
    # Partitions of each input topic (topics.yaml defaults) bound the useful replicas.
    (topics,) = load_all(os.path.join(repo, "pipelines", "topics.yaml"))
    parts = {env_default(t["name"]): int(env_default(t["partitions"])) for t in topics["topics"]}
    inputs, files_of = {}, {}
    for stream in STREAMS:
        (cfg,) = load_all(os.path.join(repo, "pipelines", f"{stream}.yaml"))
        # None: the stream consumes no Kafka topic (quality_check).
        inputs[stream] = cfg["input"].get("kafka_franz")
    for p in glob.glob(os.path.join(d, "*.yaml")):
        for doc in load_all(p):
            if isinstance(doc, dict) and "kind" in doc and "metadata" in doc:
                files_of[(doc["kind"], doc["metadata"]["name"])] = os.path.basename(p)
    kin = inputs["worker"]
    group = env_default(kin["consumer_group"])
    wtopic = env_default(kin["topics"][0])
    # StatefulSets: a pod keeps its name when replaced, and the name is its
    # static group member id (docs/OPERATIONS.md, restarts and static membership).
    sets = {}
    for stream, (name, want) in STATEFULSETS.items():
        dep = docs.get(("StatefulSet", name))
        if not dep:
            fail(f"k8s: StatefulSet {name} (the {stream} stream) is required")
            continue
        sets[stream] = dep
        if files_of.get(("StatefulSet", name)) not in k.get("resources", []):
            fail(f"k8s: kustomization.yaml does not list {files_of.get(('StatefulSet', name))} (StatefulSet {name})")
        topic = env_default(inputs[stream]["topics"][0]) if inputs[stream] else None
        g = env_default(inputs[stream]["consumer_group"]) if inputs[stream] else None
        if stream in GROUPS and g != GROUPS[stream]:
            fail(f"k8s: {stream} consumer group is {g}, the docs, alerts and dashboard say {GROUPS[stream]}")
        # More members than partitions idle.
        reps = dep["spec"]["replicas"]
        if want == "partitions" and reps != parts.get(topic):
            fail(f"k8s: {name} has {reps} replicas, its input {topic} has {parts.get(topic)} partitions (one replica each)")
        elif want != "partitions" and reps != want:
            fail(f"k8s: {name} should run {want} replica(s), not {reps}")
        if topic in parts and reps > parts[topic]:
            fail(f"k8s: {name} has {reps} replicas for {parts[topic]} partitions of {topic}: the extra ones idle")
        # Several replicas: voluntary disruptions take one at a time.
        if reps > 1:
            pdb = docs.get(("PodDisruptionBudget", name))
            if not pdb or pdb["spec"]["selector"]["matchLabels"] != dep["spec"]["selector"]["matchLabels"]:
                fail(f"k8s: no PodDisruptionBudget {name} selecting the {stream} pods")
            elif files_of.get(("PodDisruptionBudget", name)) not in k.get("resources", []):
                fail(f"k8s: kustomization.yaml does not list {files_of.get(('PodDisruptionBudget', name))}")
    if len(sets) != len(STATEFULSETS):
        return
    w = sets["worker"]
    for kind, name, key in (("HorizontalPodAutoscaler", "claimx-worker", "maxReplicas"), ("ScaledObject", "claimx-worker", "maxReplicaCount")):
        o = docs.get((kind, name))
        if not o:
            fail(f"k8s: {kind} {name} is missing")
            continue
        if o["spec"][key] > parts.get(wtopic, 0):
            fail(f"k8s: {kind} {name} {key}={o['spec'][key]} exceeds the {parts.get(wtopic)} partitions")
        ref = o["spec"].get("scaleTargetRef", {})
        if (ref.get("kind"), ref.get("name"), ref.get("apiVersion")) != ("StatefulSet", "claimx-worker", "apps/v1"):
            fail(f"k8s: {kind} {name} scales {ref}, want apps/v1 StatefulSet claimx-worker")
    so = docs.get(("ScaledObject", "claimx-worker"), {"spec": {"triggers": [{"metadata": {}}]}})
    md = so["spec"]["triggers"][0]["metadata"]
    if md.get("consumerGroup") != group or md.get("topic") != wtopic:
        fail(f"k8s: KEDA trigger watches {md.get('consumerGroup')}/{md.get('topic')}, the worker is {group}/{wtopic}")
    # The lag alerts and the dashboard name the groups (kafka_lag's consumer_group).
    for rel in ("deploy/prometheus/alerts.yaml", "deploy/grafana/dashboard.py"):
        named = selected_values(open(os.path.join(repo, rel)).read(), "consumer_group")
        for stream in LAG_ALERTED:
            g = env_default(inputs[stream]["consumer_group"])
            if g not in named:
                fail(f"k8s: {rel} does not select kafka_lag{{consumer_group=\"{g}\"}}, the {stream} stream's group")
    # Secrets: never in config.env; each one a stream reads reaches its pod
    # through a Secret the pod names (checked per pod below).
    secrets = documented_secrets(repo)
    secret_vars = set().union(*secrets.values())
    for kk in sorted(secret_vars & set(env)):
        fail(f"k8s: config.env sets {kk}, a secret: it belongs in a Secret of secret.example.yaml")
    # The status stream's deadlines and the SLA rows judge by the same
    # targets: set once, in config.env, which both pods read.
    for stream in ("status", "sla"):
        for var in sorted(v for v in env_refs(open(os.path.join(repo, "pipelines", f"{stream}.yaml")).read()) if v.startswith("SLA_TARGET_")):
            if var not in env:
                fail(f"k8s: config.env does not set {var} (pipelines/{stream}.yaml reads it; the status and SLA streams must agree)")
    for stream, dep in sets.items():
        name = dep["metadata"]["name"]
        pod = dep["spec"]["template"]["spec"]
        # The headless Service the StatefulSet names must exist and select its pods.
        svc = docs.get(("Service", dep["spec"].get("serviceName", "")))
        pod_labels = dep["spec"]["template"]["metadata"].get("labels", {})
        if not svc or svc["spec"].get("clusterIP") != "None":
            fail(f"k8s: {name}: serviceName {dep['spec'].get('serviceName')!r} is not a headless Service of deploy/k8s")
        elif any(pod_labels.get(k) != v for k, v in svc["spec"].get("selector", {}).items()):
            fail(f"k8s: {name}: Service {svc['metadata']['name']} does not select its pods")
        if dep["spec"].get("podManagementPolicy") != "Parallel":
            fail(f"k8s: {name}: podManagementPolicy should be Parallel (no ordering needed; a broken pod must not hold the others)")
        # Static membership: KAFKA_INSTANCE_ID is the pod name, and the input uses it.
        (ctr0,) = pod["containers"]
        ienv = [e for e in ctr0.get("env", []) if e.get("name") == "KAFKA_INSTANCE_ID"]
        if inputs[stream] is None:
            pass  # no consumer group to be a member of
        elif not ienv or ienv[0].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
            fail(f"k8s: {name}: KAFKA_INSTANCE_ID must come from the pod name (fieldRef metadata.name)")
        iid = str(inputs[stream].get("instance_id", "")) if inputs[stream] else None
        if iid is None:
            pass
        elif not iid:
            # Without it the members stay dynamic: every restart a rebalance.
            fail(f"k8s: pipelines/{stream}.yaml: the kafka_franz input has no instance_id: ${{KAFKA_INSTANCE_ID:}}, "
                 f"so {name}'s pods would join as dynamic members")
        elif not re.fullmatch(r"\$\{KAFKA_INSTANCE_ID(:[^}]*)?\}", iid.strip()):
            fail(f"k8s: pipelines/{stream}.yaml: instance_id is {iid!r}, want ${{KAFKA_INSTANCE_ID:}} (the pod name)")
        psc = pod.get("securityContext", {})
        if not psc.get("runAsNonRoot"):
            fail(f"k8s: {name}: runAsNonRoot is not set")
        ann = dep["spec"]["template"]["metadata"].get("annotations", {})
        if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != "4195":
            fail(f"k8s: {name}: prometheus.io annotations missing")
        (ctr,) = pod["containers"]
        sc = ctr.get("securityContext", {})
        if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation") is not False:
            fail(f"k8s: {name}: container must have a read-only root and no privilege escalation")
        if ctr.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/ready":
            fail(f"k8s: {name}: readiness probe is not GET /ready")
        if ctr.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/ping":
            fail(f"k8s: {name}: liveness probe is not GET /ping")
        lim = ctr.get("resources", {}).get("limits", {})
        if "memory" not in lim or "memory" not in ctr["resources"].get("requests", {}):
            fail(f"k8s: {name}: memory request and limit are required")
        if stream == "worker" and lim.get("memory") != "512Mi":
            fail(f"k8s: worker memory limit is {lim.get('memory')}, want 512Mi")
        args = ctr["args"]
        files = [a for a in args if a.endswith(".yaml") and "*" not in a]
        if [os.path.basename(f) for f in files] != [f"{stream}.yaml"]:
            fail(f"k8s: {name} runs {files}, want only {stream}.yaml")
        # Lay out the pod's mounts and map the args into that layout.
        root = os.path.join(out, name)
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        for m in ctr.get("volumeMounts", []):
            v = vols.get(m["name"])
            if v is None:
                fail(f"k8s: {name}: volumeMount {m['name']} has no volume")
                continue
            dst = os.path.join(root, m["mountPath"].lstrip("/"))
            os.makedirs(dst, exist_ok=True)
            if "configMap" in v:
                cm = v["configMap"]["name"]
                if cm not in gens:
                    fail(f"k8s: {name}: volume {m['name']} uses ConfigMap {cm}, which kustomization.yaml does not generate")
                for p in gens.get(cm, []):
                    shutil.copy2(p, dst)
        env_names = set()
        for ef in ctr.get("envFrom", []):
            if "configMapRef" in ef:
                env_names |= set(env)
        mapped = [os.path.join(root, a.lstrip("/")) if a.startswith("/") else a for a in args]
        for a in mapped:
            if a.startswith(root) and not glob.glob(a):
                fail(f"k8s: {name}: {a[len(root):]} is not in any mount")
        # Every file the stream reads (${VAR:./schemas/...}, ${VAR:./pipelines/...})
        # is in the pod: the config.env or pod value, else the default from the
        # image's WORKDIR (/etc/claimx-connect, where the mounts replace the image's copy).
        pod_env = dict(env) if env_names else {}
        pod_env.update({e["name"]: e["value"] for e in ctr.get("env", []) if "value" in e})
        files_env = {}
        for var, default in stream_paths(repo, stream).items():
            if default.startswith("./data/"):
                continue
            val = pod_env.get(var) or os.path.normpath(os.path.join("/etc/claimx-connect", default))
            if not val.startswith("/"):
                fail(f"k8s: {name}: {var}={val} should be an absolute path")
                continue
            files_env[var] = os.path.join(root, val.lstrip("/"))
            if not os.path.isfile(files_env[var]):
                fail(f"k8s: {name}: {var}={val} (pipelines/{stream}.yaml) is not mounted")
        # Every resource the stream names is defined by a -r file in the pod
        # (lint does not see a missing one; the stream fails to start).
        rglobs = [mapped[i + 1] for i, a in enumerate(mapped[:-1]) if a in ("-r", "--resources")]
        have = resource_labels(sorted(p for g in rglobs for p in glob.glob(g)))
        (cfg,) = load_all(os.path.join(repo, "pipelines", f"{stream}.yaml"))
        for ref in sorted(set(resource_refs(cfg)) - have):
            fail(f"k8s: {name}: pipelines/{stream}.yaml names resource {ref!r}, which no -r file of the pod defines")
        # Every secret the stream and its resource files read comes from a
        # Secret the pod names (a notifier without its webhook is off, quietly).
        reads = env_refs(open(os.path.join(repo, "pipelines", f"{stream}.yaml")).read())
        for rp in (p for g in rglobs for p in glob.glob(g)):
            reads |= env_refs(open(rp).read())
        pod_secrets = set()
        for ef in ctr.get("envFrom", []):
            if "secretRef" in ef:
                pod_secrets |= secrets.get(ef["secretRef"]["name"], set())
        for var in sorted((reads & secret_vars) - pod_secrets):
            fail(f"k8s: {name}: {stream} reads the secret {var}, which no Secret of the pod's envFrom holds")
        print(json.dumps({"name": name, "args": mapped, "root": root, "env": files_env}))
    print(f"k8s: {len(docs)} objects cross-checked", file=sys.stderr)


def check_rendered(repo, path):
    """The output of kustomize: every ConfigMap/Secret a pod refers to is
    generated (or is the documented Secret claimx-api), and the generated
    pipeline ConfigMaps hold the repository's files byte for byte."""
    docs = [d for d in load_all(path) if isinstance(d, dict)]
    cms = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    documented = documented_secrets(repo)
    n = 0
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = d["spec"]["template"]["spec"]
        refs = [v["configMap"]["name"] for v in pod.get("volumes", []) if "configMap" in v]
        for c in pod["containers"]:
            for ef in c.get("envFrom", []):
                if "configMapRef" in ef:
                    refs.append(ef["configMapRef"]["name"])
                if "secretRef" in ef and ef["secretRef"]["name"] not in documented:
                    fail(f"rendered: {d['metadata']['name']} uses Secret {ef['secretRef']['name']}, "
                         f"not one of secret.example.yaml ({', '.join(sorted(documented))})")
        for r in refs:
            n += 1
            if r not in cms:
                fail(f"rendered: {d['metadata']['name']} refers to ConfigMap {r}, which the build does not contain")
    # (key, file): pipelines/alerts.yaml and pipelines/resources/alerts.yaml
    # share a key, in different ConfigMaps.
    want = {(f"{s}.yaml", f"pipelines/{s}.yaml") for s in STREAMS}
    for s in STREAMS:
        for var, default in stream_paths(repo, s).items():
            if not default.startswith("./data/"):
                want.add((os.path.basename(default), os.path.normpath(default)))
    for f in glob.glob(os.path.join(repo, "pipelines", "resources", "*.yaml")) + \
            glob.glob(os.path.join(repo, "pipelines", "forms", "*.yaml")):
        want.add((os.path.basename(f), os.path.relpath(f, repo)))
    for key, rel in sorted(want):
        text = open(os.path.join(repo, rel)).read()
        if not any((cm.get("data") or {}).get(key) == text for cm in cms.values()):
            fail(f"rendered: no ConfigMap holds {rel} as key {key}")
    print(f"rendered: {len(docs)} objects, {n} ConfigMap references resolved, {len(want)} files shipped")


# --------------------------------------------------------------- metrics
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
                "offset", "bool", "inf", "nan", "e"}
BENTHOS_METRICS = {
    # benthos v4 component metrics (labels label, path; stream in streams mode)
    "input_received", "input_connection_up", "input_connection_failed", "input_connection_lost", "input_latency_ns",
    "processor_received", "processor_batch_received", "processor_sent", "processor_batch_sent", "processor_error",
    "processor_latency_ns", "output_sent", "output_batch_sent", "output_error", "output_connection_up",
    "output_connection_failed", "output_connection_lost", "output_latency_ns",
}


def exported_metrics(repo):
    names = set(BENTHOS_METRICS)
    prefixes = set()
    sources = {}
    for p in glob.glob(os.path.join(repo, "**", "*.go"), recursive=True):
        if p.endswith("_test.go") or "/.tools/" in p or "/tests/" in p:
            continue
        sources[p] = open(p, encoding="utf-8", errors="replace").read()
    # Names given as Go string constants (quality.MetricStatus = "quality_…"),
    # by benthos (NewGauge(quality.MetricStatus, …)) or client_golang
    # (prometheus.GaugeOpts{Name: quality.MetricStatus, …}).
    consts = {}
    for src in sources.values():
        for m in re.finditer(r'^\s*(\w+)\s*(?:string\s*)?=\s*"([a-zA-Z_:][\w:]*)"', src, re.M):
            consts.setdefault(m.group(1), set()).add(m.group(2))
    for src in sources.values():
        for m in re.finditer(r'New(?:Counter|Gauge|Timer)\(\s*(?:(\w+(?:\.\w+)?)\s*\+\s*)?"([a-zA-Z_:][\w:]*)"', src):
            if m.group(1):
                prefixes.add(m.group(2))  # prefix + "name": resolved below from metrics_prefix
            else:
                names.add(m.group(2))
        for m in re.finditer(r'(?:New(?:Counter|Gauge|Timer)\(|(?:Counter|Gauge|Histogram|Summary)Opts\{\s*Name:)\s*(?:\w+\.)?([A-Za-z_]\w*)\s*[,)}]', src):
            names |= consts.get(m.group(1), set())
        for m in re.finditer(r'(?:Counter|Gauge|Histogram|Summary)Opts\{\s*Name:\s*"([a-zA-Z_:][\w:]*)"', src):
            names.add(m.group(1))
    pipeline_prefixes = set()
    for p in glob.glob(os.path.join(repo, "pipelines", "**", "*.yaml"), recursive=True):
        if p.endswith("_benthos_test.yaml"):
            continue
        txt = open(p).read()
        for m in re.finditer(r"metrics_prefix:\s*['\"]?([\w:]*)", txt):
            pipeline_prefixes.add(m.group(1))
        for doc in load_all(p):
            for proc in walk_metric_procs(doc):
                names.add(proc["name"])
    # Hold gates (processors/hold.go): newHoldGate(..., base) exports base + each
    # suffix of its New*(metricPrefix + "_…") calls; a claimx_lookup's base
    # carries its claimx_connection's metrics_prefix (prefix + "claimx_api").
    hold_suffixes = {s for s in prefixes if s.startswith("_")}
    prefixes -= hold_suffixes
    for p in glob.glob(os.path.join(repo, "processors", "*.go")):
        if p.endswith("_test.go"):
            continue
        src = open(p, encoding="utf-8", errors="replace").read()
        for m in re.finditer(r'newHoldGate\([^)]*?,\s*(?:(\w+(?:\.\w+)?)\s*\+\s*)?"(\w+)"\s*\)', src):
            bases = [pre + m.group(2) for pre in pipeline_prefixes] if m.group(1) else [m.group(2)]
            for base in bases:
                for suffix in hold_suffixes:
                    names.add(base + suffix)
    for pre in pipeline_prefixes:
        for suffix in prefixes:
            names.add(pre + suffix)
    return names


def walk_metric_procs(node):
    if isinstance(node, dict):
        if isinstance(node.get("metric"), dict) and "name" in node["metric"]:
            yield node["metric"]
        for v in node.values():
            yield from walk_metric_procs(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk_metric_procs(v)


def promql_metrics(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\$\w+", "", e)
    out = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\s*(\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        out.add(word)
    return out


def heading_slugs(path):
    """The anchors of a Markdown file's headings, as GitHub makes them."""
    out = set()
    for line in open(path):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-"))
    return out


def label_values(repo):
    """The values the pipelines and the Go code give the labels the
    dashboard and the alerts select on."""
    groups, labels = set(), set()
    for p in glob.glob(os.path.join(repo, "pipelines", "**", "*.yaml"), recursive=True):
        if p.endswith("_benthos_test.yaml"):
            continue
        for doc in load_all(p):
            for _, k, v in walk(doc):
                if k == "consumer_group" and isinstance(v, str):
                    groups.add(env_default(v))
                elif k == "label" and isinstance(v, str):
                    labels.add(v)
    alerts = open(os.path.join(repo, "pipelines", "alerts.yaml")).read()
    rules = set(re.findall(r'"rule":\s*"(\w+)"', alerts))
    src = open(os.path.join(repo, "kafka", "processor_state_changes.go")).read()
    changes = set(re.findall(r'stateChange\w*\s*=\s*"(\w+)"', src))
    return {"consumer_group": groups, "label": labels, "rule": rules, "change": changes}


def base_name(n, known):
    for suf in ("_bucket", "_sum", "_count"):
        if n.endswith(suf) and n[: -len(suf)] in known:
            return n[: -len(suf)]
    return n


def check_metrics(repo):
    known = exported_metrics(repo)
    used = {}
    dash = json.load(open(os.path.join(repo, "deploy", "grafana", "claimx-connect-dashboard.json")))
    for pnl in dash["panels"]:
        for t in pnl.get("targets", []):
            for n in promql_metrics(t["expr"]):
                used.setdefault(n, set()).add(f"dashboard panel {pnl['title']!r}")
    (rules,) = load_all(os.path.join(repo, "deploy", "prometheus", "alerts.yaml"))
    alerts = []
    for g in rules["groups"]:
        for r in g["rules"]:
            alerts.append(r["alert"])
            for n in promql_metrics(r["expr"]):
                used.setdefault(n, set()).add(f"alert {r['alert']}")
    for n, where in sorted(used.items()):
        if base_name(n, known) not in known:
            fail(f"metric {n} (used by {', '.join(sorted(where))}) is exported by neither the Go code nor a pipeline metric processor")
    # The label values they select exist: a consumer group of a pipeline's
    # input, a component label of a pipeline or resource (label="…"), a
    # rule of the alerts stream (rule="…"), a state_changes change.
    exprs = [(f"dashboard panel {pnl['title']!r}", t["expr"]) for pnl in dash["panels"] for t in pnl.get("targets", [])]
    exprs += [(f"alert {r['alert']}", r["expr"]) for g in rules["groups"] for r in g["rules"]]
    valid = label_values(repo)
    for where, e in exprs:
        for lab, allowed in valid.items():
            for v in sorted(selected_values(e, lab) - allowed):
                fail(f"{where} selects {lab}=\"{v}\", which no pipeline has ({lab}: {', '.join(sorted(allowed))})")
    # Every alert: severity and component labels, the three annotations, and
    # a runbook that leads to a heading of a doc of the repository.
    for g in rules["groups"]:
        for r in g["rules"]:
            if "alert" not in r:
                continue
            for k in ("severity", "component"):
                if k not in r.get("labels", {}):
                    fail(f"alert {r['alert']} has no {k} label")
            for k in ("summary", "description", "runbook"):
                if k not in r.get("annotations", {}):
                    fail(f"alert {r['alert']} has no {k} annotation")
            f, _, anchor = r.get("annotations", {}).get("runbook", "").partition("#")
            if not os.path.isfile(os.path.join(repo, f)):
                fail(f"alert {r['alert']}: runbook {f} does not exist")
            elif anchor and anchor not in heading_slugs(os.path.join(repo, f)):
                fail(f"alert {r['alert']}: runbook {f} has no heading #{anchor}")
    original = {"ClaimXWorkerConsumerLagHigh", "ClaimXAPIErrorsHigh", "ClaimXDeltaWriteFailures", "ClaimXWorkerNoMessages"}
    if missing := original - set(alerts):
        fail(f"alerts.yaml lacks {', '.join(sorted(missing))} (DOMAIN.md §4 names four alerts)")
    if missing := {"ClaimXPipelineHeld", "DeltaStorageHeld"} - set(alerts):
        fail(f"alerts.yaml lacks {', '.join(sorted(missing))} (a stream held on a dependency, docs/FAILURES.md)")
    if len(alerts) != len(set(alerts)):
        fail("alerts.yaml names an alert twice")
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    if 'reason!="not_found"' not in exprs:
        fail("the ClaimX API error alert must exclude reason=\"not_found\"")
    print(f"metrics: {len(used)} metric names used by the dashboard and {len(alerts)} alerts, all exported")


# ------------------------------------------------------------- dashboard
def check_dashboard(repo):
    p = os.path.join(repo, "deploy", "grafana", "claimx-connect-dashboard.json")
    d = json.load(open(p))
    gen = subprocess.run([sys.executable, os.path.join(repo, "deploy", "grafana", "dashboard.py")],
                         capture_output=True, text=True, check=True).stdout
    if json.loads(gen) != d:
        fail("deploy/grafana/claimx-connect-dashboard.json differs from dashboard.py's output: regenerate it")
    if d.get("schemaVersion", 0) < 36:
        fail(f"schemaVersion {d.get('schemaVersion')} is too old")
    ds = [v for v in d["templating"]["list"] if v["name"] == "DS_PROMETHEUS" and v["type"] == "datasource"]
    if not ds:
        fail("dashboard: datasource variable DS_PROMETHEUS is missing")
    ids = [pn["id"] for pn in d["panels"]]
    if len(ids) != len(set(ids)):
        fail("dashboard: duplicate panel ids")
    titles = " ".join(pn["title"].lower() for pn in d["panels"])
    for want in ("events over time", "processing latency", "claimx api latency", "delta write rate", "consumer lag", "errors by stage",
                 # the status, alerts and SLA streams (docs/ALERTS.md) and the data-quality checks
                 "status changes by change type", "alerts by rule", "notifier failures", "sla percentiles by week",
                 "share within sla target by status", "sla breaches per day", "expectation status", "failures over time",
                 "files scanned", "time since last run"):
        if want not in titles:
            fail(f"dashboard: no panel {want!r}")
    # The weekly SLA percentiles: p50 and p90 of the histogram over 7-day
    # windows, by status; the expectation table: the status by expectation.
    exprs = {pn["title"]: [t["expr"] for t in pn.get("targets", [])] for pn in d["panels"]}
    sla = " ".join(exprs.get("SLA percentiles by week", []))
    for q in ("0.5", "0.9"):
        if not re.search(rf"histogram_quantile\({q}, sum by \(status, le\) \(increase\(itel_task_sla_seconds_bucket\[7d\]\)\)\)", sla):
            fail(f"dashboard: SLA percentiles by week lacks histogram_quantile({q}, ... increase(itel_task_sla_seconds_bucket[7d]) by status")
    if not any("quality_expectation_status" in e and "expectation" in e for e in exprs.get("Expectation status", [])):
        fail("dashboard: Expectation status does not show quality_expectation_status by expectation")
    for pn in d["panels"]:
        if pn["type"] == "row":
            continue
        if pn.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
            fail(f"dashboard: panel {pn['title']!r} does not use ${{DS_PROMETHEUS}}")
        for t in pn.get("targets", []):
            if t["expr"].count("(") != t["expr"].count(")"):
                fail(f"dashboard: panel {pn['title']!r}: unbalanced parentheses in {t['expr']}")
    print(f"dashboard: {len(d['panels'])} panels, in sync with dashboard.py")


def dashboard_rules(repo, out):
    """The dashboard's queries as recording rules, Grafana's variables given
    values, for `promtool check rules` to parse."""
    d = json.load(open(os.path.join(repo, "deploy", "grafana", "claimx-connect-dashboard.json")))
    rules = []
    for pn in d["panels"]:
        for t in pn.get("targets", []):
            e = t["expr"].replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$__range", "1h")
            rules.append({"record": f"dashboard:panel_{pn['id']}_{t['refId']}", "expr": e})
    with open(out, "w") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, f)
    print(f"dashboard-rules: {len(rules)} queries")


def main():
    cmd, repo = sys.argv[1], os.path.abspath(sys.argv[2])
    if cmd == "yaml":
        check_yaml(repo)
    elif cmd == "compose":
        check_compose(repo)
    elif cmd == "k8s":
        check_k8s(repo, os.path.abspath(sys.argv[3]))
    elif cmd == "rendered":
        check_rendered(repo, os.path.abspath(sys.argv[3]))
    elif cmd == "metrics":
        check_metrics(repo)
    elif cmd == "dashboard":
        check_dashboard(repo)
    elif cmd == "dashboard-rules":
        dashboard_rules(repo, os.path.abspath(sys.argv[3]))
    else:
        sys.exit(f"unknown check {cmd}")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
