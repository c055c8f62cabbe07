#!/usr/bin/env python3
"""Checks a /metrics scrape of the smoke run (check_dockerfile.sh).

    smoke_metrics.py METRICS_FILE REPO

Fails when a metric the pipelines must have produced after the demo events is
missing or zero; lists (without failing) dashboard/alert metrics with no series
yet, which is normal for counters of failures that did not happen.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_checks  # noqa: E402

LINE = re.compile(r'^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)')


def parse(path):
    series = []
    for line in open(path):
        if line.startswith("#"):
            continue
        m = LINE.match(line)
        if m:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            series.append((m.group(1), labels, float(m.group(3))))
    return series


def total(series, name, **want):
    return sum(v for n, l, v in series if n == name and all(l.get(k) == x for k, x in want.items()))


def present(series, name, **want):
    return any(n == name and all(l.get(k) == x for k, x in want.items()) for n, l, v in series)


def completed_forms(series):
    """Completed iTel forms the forms stream read: what its select_completed
    mapping let through (every other tracking result is dropped there)."""
    return total(series, "processor_sent", label="select_completed", stream="forms")


def main():
    series = parse(sys.argv[1])
    repo = sys.argv[2]
    errors = []
    positive = [
        ("itel_plugin_events_triggered_total", {}),
        ("itel_plugin_events_published_total", {}),
        ("itel_worker_messages_consumed_total", {}),
        ("itel_worker_messages_processed_total", {}),
        ("itel_worker_delta_writes_total", {}),
        ("delta_rows_written_total", {}),
        ("delta_commits_total", {}),
        ("delta_table_version", {}),
        ("itel_worker_claimx_api_calls_total", {}),
        ("itel_worker_claimx_api_latency_seconds_count", {}),
        ("delta_commit_latency_ns_count", {}),
        ("itel_worker_processing_latency_seconds_count", {}),
        ("input_received", {"label": "claimx_events"}),
        ("input_received", {"label": "tracking_events"}),
        # The forms stream reads the worker's success topic.
        ("itel_forms_messages_consumed_total", {}),
        ("input_received", {"label": "tracking_results"}),
        # The status stream reads the tracking topic and records each
        # assignment's first state (new) at least; the alerts and SLA streams
        # read those changes.
        ("state_changes_total", {"change": "new"}),
        ("state_changelog_keys", {}),
        ("state_changelog_available", {}),
        ("input_received", {"stream": "status"}),
        ("input_received", {"stream": "alerts"}),
        ("input_received", {"stream": "sla"}),
        ("itel_task_sla_total", {}),
        ("itel_task_sla_seconds_count", {}),
    ]
    # When the demo completed an iTel form, the forms stream went all the way:
    # photos, the tables, the submission to the simulator's iTel endpoint.
    if completed_forms(series) > 0:
        positive += [
            ("itel_forms_processed_total", {}),
            ("itel_forms_processing_latency_seconds_count", {}),
            ("itel_submissions_total", {}),
            ("itel_api_calls_total", {}),
            ("output_sent", {"label": "forms_success"}),
        ]
    else:
        print("info: no completed iTel form in the demo events (processor_sent{label=\"select_completed\"} is 0)")
    for name, want in positive:
        v = total(series, name, **want)
        if v <= 0:
            errors.append(f"{name}{want or ''} is {v:g} after the demo events (want > 0)")
    # kafka_lag carries the consumer group: two groups on one topic stay apart.
    for name, want in [("kafka_lag", {"consumer_group": "itel_cabinet_tracking_worker_group", "topic": "itel.cabinet.task.tracking"}),
                       ("kafka_lag", {"consumer_group": "itel_cabinet_trigger_group", "topic": "claimx.events.raw"}),
                       ("kafka_lag", {"consumer_group": "itel_cabinet_forms_group", "topic": "itel.cabinet.task.tracking.success"}),
                       ("kafka_lag", {"consumer_group": "itel_cabinet_status_group", "topic": "itel.cabinet.task.tracking"}),
                       ("kafka_lag", {"consumer_group": "itel_cabinet_alerts_group", "topic": "itel.cabinet.task.status"}),
                       ("kafka_lag", {"consumer_group": "itel_cabinet_sla_group", "topic": "itel.cabinet.task.status"}),
                       ("output_sent", {"label": "trigger_errors"})]:
        if not present(series, name, **want):
            errors.append(f"no {name}{want} series (the dashboard and alerts query it)")
    # Every stream reports under its own id.
    streams = {l.get("stream") for n, l, v in series if n == "input_received"}
    for s in ("trigger", "worker", "forms", "status", "alerts", "sla"):
        if s not in streams:
            errors.append(f"no series with stream={s!r}")
    # Which dashboard/alert metrics have no series yet (information only).
    names = {n for n, l, v in series}
    used = set()
    import json
    dash = json.load(open(os.path.join(repo, "deploy", "grafana", "claimx-connect-dashboard.json")))
    for p in dash["panels"]:
        for t in p.get("targets", []):
            used |= deploy_checks.promql_metrics(t["expr"])
    absent = sorted(u for u in used if u not in names and not u.endswith("_bucket"))
    if absent:
        print(f"info: no series yet (appear at their first increment): {', '.join(absent)}")
    for e in errors:
        print(f"FAIL: {e}", file=sys.stderr)
    # The SLA histogram has the buckets the dashboard's percentiles need:
    # 1 hour to 4 weeks (the exporter's timer_buckets default).
    les = {l.get("le") for n, l, v in series if n == "itel_task_sla_seconds_bucket"}
    for le in ("3600", "86400", "604800", "2.4192e+06", "+Inf"):
        if le not in les:
            errors.append(f"itel_task_sla_seconds has no bucket le={le} (has {sorted(les, key=lambda x: float(x))})")
    n = len(positive) + 7 + 6 + 5
    print(f"smoke metrics: {len(series)} series, {n - len(errors)} of {n} expectations met")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
