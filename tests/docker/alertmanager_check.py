#!/usr/bin/env python3
"""Checks deploy/alertmanager/alertmanager.yaml against the rules it routes
(run by check_dockerfile.sh; needs PyYAML and Debian's amtool).

    alertmanager_check.py static REPO AMTOOL
        no secret written in the file (only *_file references); every alert of
        deploy/prometheus/alerts.yaml has a severity routed as documented
        (critical, error -> pagerduty; warning -> slack), asked of amtool's
        routing tree; every inhibit rule names alerts that exist, and the
        labels it matches or requires equal are ones those alerts carry.
    alertmanager_check.py live REPO ALERTMANAGER WORKDIR
        runs Alertmanager on loopback with a copy of the file whose secret files
        hold a stand-in's URL and a test key, posts alerts, and checks what
        the PagerDuty and Slack stand-ins received (the key read from its
        file, critical and error paged, warnings in Slack) and that a held
        stream's alert inhibits that stream's lag alert and no other.

Exit status 1 on any failure, with one FAIL line per problem on stderr.
"""
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_checks import walk  # noqa: E402

errors = []
ROUTED = {"critical": "pagerduty", "error": "pagerduty", "warning": "slack"}
# Keys whose value would be a secret written in the file; each has a *_file twin.
INLINE_SECRETS = {"routing_key", "service_key", "api_url", "slack_api_url", "smtp_auth_password",
                  "pagerduty_url_secret", "password", "bearer_token", "credentials"}


def fail(msg):
    errors.append(msg)
    print(f"FAIL: {msg}", file=sys.stderr)


def load(repo):
    am = yaml.safe_load(open(os.path.join(repo, "deploy", "alertmanager", "alertmanager.yaml")))
    rules = yaml.safe_load(open(os.path.join(repo, "deploy", "prometheus", "alerts.yaml")))
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    return am, alerts


def carried_labels(rule):
    """Labels an alert of this rule can carry: its static labels and, from
    the expression, every `by (...)` list; None when the expression has no
    aggregation (it keeps the series' labels, any of them)."""
    labels = set(rule.get("labels", {})) | {"alertname"}
    by = re.findall(r"\bby\s*\(([^)]*)\)", rule["expr"])
    if not by:
        return None
    for b in by:
        labels |= {x.strip() for x in b.split(",") if x.strip()}
    return labels


def matcher(m):
    """'name=~"a|b"' -> (name, op, value)."""
    mm = re.fullmatch(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*', m)
    if not mm:
        fail(f"alertmanager: matcher {m!r} does not parse")
        return None
    return mm.groups()


def alerts_named(matchers, alerts):
    """The alerts of alerts.yaml an alertname matcher selects."""
    for m in matchers:
        p = matcher(m)
        if p and p[0] == "alertname":
            if p[1] == "=":
                names = [p[2]]
            elif p[1] == "=~":
                names = p[2].split("|")
            else:
                continue
            for n in names:
                if n not in alerts:
                    fail(f"alertmanager: inhibit rule names alert {n!r}, which deploy/prometheus/alerts.yaml does not define")
            return [n for n in names if n in alerts]
    fail(f"alertmanager: inhibit rule side {matchers} names no alert (alertname=... or alertname=~...)")
    return []


def check_static(repo, amtool):
    am, alerts = load(repo)
    path = os.path.join(repo, "deploy", "alertmanager", "alertmanager.yaml")
    # Secrets only as files.
    for where, k, v in walk(am):
        if k in INLINE_SECRETS and v not in (None, ""):
            fail(f"alertmanager: {where} writes a secret in the file; use {k}_file (a mounted Secret)")
    for i, r in enumerate(am.get("receivers", [])):
        for pd in r.get("pagerduty_configs", []) or []:
            if not pd.get("routing_key_file"):
                fail(f"alertmanager: receiver {r['name']}: pagerduty_configs without routing_key_file")
        for s in r.get("slack_configs", []) or []:
            if not s.get("api_url_file"):
                fail(f"alertmanager: receiver {r['name']}: slack_configs without api_url_file")
    if not am["route"].get("group_by"):
        fail("alertmanager: the route has no group_by")
    # Every rule's alert reaches the receiver of its severity (amtool walks the tree).
    for name, r in sorted(alerts.items()):
        sev = r.get("labels", {}).get("severity")
        if sev not in ROUTED:
            fail(f"alert {name}: severity {sev!r} is none of {', '.join(ROUTED)}")
            continue
        labels = [f"{k}={v}" for k, v in sorted(dict(r.get("labels", {}), alertname=name).items())]
        out = subprocess.run([amtool, "config", "routes", "test", f"--config.file={path}", *labels],
                             capture_output=True, text=True)
        got = out.stdout.strip()
        if out.returncode != 0 or got != ROUTED[sev]:
            fail(f"alert {name} (severity {sev}) goes to {got or out.stderr.strip()!r}, want {ROUTED[sev]!r}")
    # Inhibit rules: real alerts, and labels both sides carry.
    inhibit = am.get("inhibit_rules") or []
    if not inhibit:
        fail("alertmanager: no inhibit_rules")
    for i, ir in enumerate(inhibit):
        src = alerts_named(ir.get("source_matchers", []), alerts)
        tgt = alerts_named(ir.get("target_matchers", []), alerts)
        for side, names, ms in (("source", src, ir.get("source_matchers", [])), ("target", tgt, ir.get("target_matchers", []))):
            for m in ms:
                p = matcher(m)
                if not p or p[0] == "alertname":
                    continue
                for n in names:
                    have = carried_labels(alerts[n])
                    if have is not None and p[0] not in have:
                        fail(f"alertmanager: inhibit rule {i}: {side} matcher {m} on {n}, whose alerts carry no {p[0]} label")
        for lab in ir.get("equal", []) or []:
            for n in src + tgt:
                have = carried_labels(alerts[n])
                if have is not None and lab not in have:
                    # A label missing on both sides counts as equal: an inhibition that always applies.
                    fail(f"alertmanager: inhibit rule {i}: equal [{lab}] but {n}'s alerts carry no {lab} label")
        if set(src) & set(tgt):
            fail(f"alertmanager: inhibit rule {i}: {sorted(set(src) & set(tgt))} on both sides")
    print(f"alertmanager: {len(alerts)} alerts routed by severity, {len(inhibit)} inhibit rules checked")


# ------------------------------------------------------------------ live
class StandIn(http.server.BaseHTTPRequestHandler):
    got = []  # (path, body)
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            StandIn.got.append((self.path, json.loads(body or b"{}")))
        self.send_response(202 if self.path.startswith("/pagerduty") else 200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status":"success","message":"Event processed","dedup_key":"x"}' if self.path.startswith("/pagerduty") else b"ok")

    def log_message(self, *a):
        pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def api(base, path, data=None):
    req = urllib.request.Request(base + path, data=json.dumps(data).encode() if data is not None else None,
                                 headers={"Content-Type": "application/json"}, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=5) as r:
        body = r.read()
        return json.loads(body) if body else None


def check_live(repo, binary, work):
    am, alerts = load(repo)
    os.makedirs(work, exist_ok=True)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    stand = f"http://127.0.0.1:{srv.server_address[1]}"
    key = "test-routing-key-4711"
    # The copy: secret files hold the stand-in's URL and a test key (with the
    # trailing newline `kubectl create secret --from-file` would keep), the
    # PagerDuty endpoint is the stand-in, groups flush at once.
    files = {"routing_key_file": (os.path.join(work, "pagerduty_routing_key"), key + "\n"),
             "api_url_file": (os.path.join(work, "slack_webhook_url"), stand + "/slack\n")}
    for p, content in files.values():
        open(p, "w").write(content)
    for r in am["receivers"]:
        for kind in ("pagerduty_configs", "slack_configs"):
            for c in r.get(kind, []) or []:
                for k in list(c):
                    if k in files:
                        c[k] = files[k][0]
    am.setdefault("global", {})["pagerduty_url"] = stand + "/pagerduty"
    for rt in [am["route"]] + am["route"].get("routes", []):
        rt.update({"group_wait": "1s", "group_interval": "1s"})
    cfg = os.path.join(work, "alertmanager.yaml")
    yaml.safe_dump(am, open(cfg, "w"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(os.path.join(work, "alertmanager.log"), "w")
    proc = subprocess.Popen([binary, f"--config.file={cfg}", f"--storage.path={work}/data",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if proc.poll() is not None:
                fail(f"alertmanager exited with {proc.returncode}")
                return
            try:
                urllib.request.urlopen(base + "/-/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            fail("alertmanager did not become ready in 10s")
            return

        def alert(name, summary, **labels):
            r = alerts[name]
            return {"labels": dict(r["labels"], alertname=name, **labels), "annotations": {"summary": summary, "runbook": r["annotations"]["runbook"]}}
        sent = [
            alert("StatusChangesHeld", "held status", label="status_changes", stream="status"),
            alert("ITelStreamConsumerLagGrowing", "lag status", stream="status", consumer_group="itel_cabinet_status_group", topic="itel.cabinet.task.tracking"),
            alert("ITelStreamConsumerLagGrowing", "lag sla", stream="sla", consumer_group="itel_cabinet_sla_group", topic="itel.cabinet.task.status"),
            alert("DeltaStorageHeld", "held worker delta", label="delta_append", stream="worker"),
            alert("ClaimXWorkerConsumerLagHigh", "lag worker", consumer_group="itel_cabinet_tracking_worker_group", topic="itel.cabinet.task.tracking"),
            alert("ITelStatusRecordsFailing", "status failed", stage="parse"),
            alert("ClaimXDeltaWriteFailures", "delta failed"),
        ]
        api(base, "/api/v2/alerts", sent)
        inhibited = {"lag status", "lag worker"}
        paged = {"status failed": "error", "delta failed": "critical"}
        slacked = {"held status", "lag sla", "held worker delta"}
        deadline = time.time() + 30
        while time.time() < deadline:
            with StandIn.lock:
                got = list(StandIn.got)
            pd = {e["payload"]["custom_details"]["summary"].rstrip("; "): e for p, e in got if p.startswith("/pagerduty")}
            slack = " ".join(json.dumps(b) for p, b in got if p.startswith("/slack"))
            if set(pd) >= set(paged) and all(s in slack for s in slacked):
                break
            time.sleep(0.2)
        state = {a["annotations"]["summary"]: a for a in api(base, "/api/v2/alerts")}
        for s in sorted({a["annotations"]["summary"] for a in sent}):
            a = state.get(s)
            if a is None:
                fail(f"alertmanager lost the alert {s!r}")
                continue
            by = a["status"]["inhibitedBy"]
            if (s in inhibited) != bool(by):
                fail(f"alert {s!r}: inhibited by {by}, want {'inhibited' if s in inhibited else 'not inhibited'}")
            want = "pagerduty" if s in paged else "slack"
            if [r["name"] for r in a["receivers"]] != [want]:
                fail(f"alert {s!r}: receivers {a['receivers']}, want {want}")
        for s, sev in paged.items():
            e = pd.get(s)
            if e is None:
                fail(f"PagerDuty stand-in got no event for {s!r} (got {sorted(pd)})")
                continue
            if e.get("routing_key") != key:
                fail(f"PagerDuty event for {s!r}: routing_key {e.get('routing_key')!r}, want the file's {key!r}")
            if e.get("event_action") != "trigger" or e["payload"].get("severity") != sev:
                fail(f"PagerDuty event for {s!r}: {e.get('event_action')} severity {e['payload'].get('severity')}, want trigger {sev}")
        for s in slacked:
            if s not in slack:
                fail(f"Slack stand-in got no message with {s!r}")
        for s in inhibited | set(paged):
            if s in slack:
                fail(f"Slack stand-in got {s!r}, which is {'inhibited' if s in inhibited else 'paged'}")
        if any(s in json.dumps(e) for e in pd.values() for s in slacked | inhibited):
            fail("PagerDuty stand-in got a warning")
        print(f"alertmanager live: {len(sent)} alerts, {len(pd)} PagerDuty events, "
              f"{sum(1 for p, _ in StandIn.got if p.startswith('/slack'))} Slack messages, "
              f"{sum(1 for a in state.values() if a['status']['inhibitedBy'])} inhibited")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        srv.shutdown()
        if errors:
            print(open(os.path.join(work, "alertmanager.log")).read()[-3000:], file=sys.stderr)


def main():
    cmd, repo = sys.argv[1], os.path.abspath(sys.argv[2])
    if cmd == "static":
        check_static(repo, sys.argv[3])
    elif cmd == "live":
        check_live(repo, sys.argv[3], os.path.abspath(sys.argv[4]))
    else:
        sys.exit(f"unknown check {cmd}")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
