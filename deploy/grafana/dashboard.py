#!/usr/bin/env python3
"""Generates claimx-connect-dashboard.json (the Grafana dashboard of the panels
the original promised: events over time, processing latency, ClaimX API latency,
Delta write rate, consumer lag, errors by stage; a row for streams held on
an unavailable dependency, docs/FAILURES.md; the forms stream; the status,
alerts and SLA streams, docs/ALERTS.md; the data-quality checks,
docs/QUALITY.md).

    python3 deploy/grafana/dashboard.py > deploy/grafana/claimx-connect-dashboard.json

Edit this file, not the JSON: tests/docker/check_dockerfile.sh fails when the
two differ. Every metric named here is exported by the Go code or a `metric`
processor of pipelines/*.yaml; the check script verifies that too.

Timers: with the default prometheus exporter settings a timer is a summary
(quantile label 0.5/0.9/0.99); with `use_histogram_timing: true` it is a
histogram. Each latency panel queries both forms (only one returns data) and the
mean (rate of _sum / rate of _count), which works for either.
"""
import json
import sys

DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
RI = "$__rate_interval"


def target(expr, legend, ref):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def timeseries(title, desc, targets, unit, x, y, w=12, h=8, stack=False, thresholds=None, overrides=None,
               bars=False, time_from=None, interval=None):
    """time_from and interval: a panel of its own time range and step (the
    weekly SLA figures over the last 30 days, a point a day), whatever the
    dashboard's range."""
    steps = [{"color": "green", "value": None}]
    mode = "off"
    if thresholds is not None:
        steps.append({"color": "red", "value": thresholds})
        mode = "line"
    extra = {}
    if time_from:
        extra["timeFrom"] = time_from
    if interval:
        extra["interval"] = interval
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [target(e, l, chr(ord("A") + i)) for i, (e, l) in enumerate(targets)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "custom": {
                    "drawStyle": "bars" if bars else "line",
                    "lineWidth": 1,
                    "fillOpacity": 80 if bars else 10,
                    "showPoints": "never",
                    "spanNulls": False,
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                    "thresholdsStyle": {"mode": mode},
                },
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": overrides or [],
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        **extra,
    }


def stat(title, desc, expr, unit, x, y, w=4, h=4, red=None, decimals=0, red_below=None):
    """red: red from this value up; red_below: red under it (an availability, a share)."""
    steps = [{"color": "green", "value": None}]
    if red is not None:
        steps.append({"color": "red", "value": red})
    if red_below is not None:
        steps = [{"color": "red", "value": None}, {"color": "green", "value": red_below}]
    return {
        "type": "stat",
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [dict(target(expr, title, "A"), instant=True, range=False)],
        "fieldConfig": {
            "defaults": {"unit": unit, "decimals": decimals,
                         "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "textMode": "auto",
        },
    }


def table(title, desc, targets, x, y, w=12, h=8, value_columns=None, overrides=None):
    """Instant queries as one table, merged on their labels; value_columns
    renames each query's value column (Value #A, ...)."""
    names = value_columns or {}
    return {
        "type": "table",
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [dict(target(e, l, chr(ord("A") + i)), instant=True, range=False, format="table")
                    for i, (e, l) in enumerate(targets)],
        "transformations": [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": names}},
        ],
        "fieldConfig": {"defaults": {"custom": {"align": "auto"}}, "overrides": overrides or []},
        "options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
    }


def row(title, y):
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}


def latency_targets(metric, scale=""):
    """Quantiles of a summary, the same of a histogram, and the mean."""
    return [
        (f"max by (quantile) ({metric}{{quantile=~\"0.5|0.9|0.99\"}}){scale}", "p{{quantile}} (summary)"),
        (f"histogram_quantile(0.99, sum by (le) (rate({metric}_bucket[{RI}]))){scale}", "p0.99 (histogram)"),
        (f"histogram_quantile(0.5, sum by (le) (rate({metric}_bucket[{RI}]))){scale}", "p0.5 (histogram)"),
        (f"sum(rate({metric}_sum[{RI}])){scale} / sum(rate({metric}_count[{RI}]))", "mean"),
    ]


# kafka_lag (labels consumer_group, topic, partition): every member of a group
# reports every partition of the group, hence the max per partition; the
# worker's group is named, so that another group on its topic does not count.
WORKER_LAG = 'kafka_lag{consumer_group="itel_cabinet_tracking_worker_group", topic="itel.cabinet.task.tracking"}'
LAG = f"sum(max by (consumer_group, topic, partition) ({WORKER_LAG}))"
# The status, alerts and SLA streams' groups (pipelines/status.yaml, alerts.yaml, sla.yaml).
ALERTS_LAG = 'kafka_lag{consumer_group=~"itel_cabinet_status_group|itel_cabinet_alerts_group|itel_cabinet_sla_group"}'
# quality_expectation_status values (quality/metrics.go).
QUALITY_STATES = [("1", "pass", "green"), ("0", "fail", "red"), ("-1", "skipped", "blue"), ("-2", "error", "orange")]


def panels():
    p = []
    y = 0
    # Overview
    p.append(row("Overview", y)); y += 1
    p.append(stat("Worker consumer lag", "Records of itel.cabinet.task.tracking not yet processed by itel_cabinet_tracking_worker_group (kafka_lag of the worker's input; alert above 1000).", LAG, "short", 0, y, red=1000))
    p.append(stat("Events tracked (24h)", "Tracking messages the trigger built in the last 24 hours.", "sum(increase(itel_plugin_events_triggered_total[24h]))", "short", 4, y))
    p.append(stat("Rows written (24h)", "Rows the worker appended to itel_cabinet_task_tracking in the last 24 hours.", 'sum(increase(delta_rows_written_total{label="delta_append"}[24h]))', "short", 8, y))
    p.append(stat("Failed records (1h)", "Records the worker sent to the errors topic in the last hour, all stages.", "sum(increase(itel_worker_messages_failed_total[1h]))", "short", 12, y, red=1))
    p.append(stat("ClaimX API errors (5m)", "Failed ClaimX API attempts in 5 minutes, 404 excluded (alert above 20).", 'sum(increase(itel_worker_claimx_api_errors_total{reason!="not_found"}[5m]))', "short", 16, y, red=20))
    p.append(stat("Delta table version", "Latest committed version of itel_cabinet_task_tracking seen by a worker.", 'max(delta_table_version{label="delta_append"})', "none", 20, y))
    y += 4

    # Held on a dependency (docs/FAILURES.md): the ClaimX lookups (resources shared by
    # both streams, told apart by label) and the worker's Delta stage.
    p.append(row("Held on a dependency", y)); y += 1
    avail = timeseries(
        "Dependency available",
        "1 while the dependency answers, 0 while a component holds on it: itel_worker_claimx_api_available per ClaimX lookup (claimx_assignment, claimx_project: trigger; claimx_assignment_json: worker) and delta_storage_available of the worker's Delta stage; the lowest replica is shown. A held stream waits: nothing goes to the errors topic, /ready stays 200.",
        [
            ("min by (label) (itel_worker_claimx_api_available)", "ClaimX API {{label}}"),
            ("min by (label) (delta_storage_available)", "Delta storage {{label}}"),
            ("min by (label) (itel_api_available)", "iTel API {{label}}"),
            ("min by (label) (itel_media_available)", "ClaimX media {{label}}"),
        ], "none", 0, y, w=6)
    avail["fieldConfig"]["defaults"]["max"] = 1
    avail["fieldConfig"]["defaults"]["decimals"] = 0
    p.append(avail)
    p.append(timeseries(
        "Records held",
        "Records waiting for the dependency now (itel_worker_claimx_api_records_held, delta_storage_records_held), summed over replicas. They are neither acknowledged nor committed and go on once it answers; the alerts ClaimXPipelineHeld and DeltaStorageHeld fire when this stays above 0 for 5 minutes.",
        [
            ("sum by (label) (itel_worker_claimx_api_records_held)", "ClaimX API {{label}}"),
            ("sum by (label) (delta_storage_records_held)", "Delta storage {{label}}"),
            ("sum by (label) (itel_api_records_held)", "iTel API {{label}}"),
            ("sum by (label) (itel_media_records_held)", "ClaimX media {{label}}"),
        ], "short", 6, y, w=6))
    p.append(timeseries(
        "Time held",
        "Share of the time each component spent holding (rate of *_hold_seconds_total; the counter grows at each probe, so short holds show as steps), the most-held replica.",
        [
            (f"max by (label) (rate(itel_worker_claimx_api_hold_seconds_total[{RI}]))", "ClaimX API {{label}}"),
            (f"max by (label) (rate(delta_storage_hold_seconds_total[{RI}]))", "Delta storage {{label}}"),
        ], "percentunit", 12, y, w=6))
    p.append(timeseries(
        "Holds by reason",
        "Holds entered, by reason: the ClaimX API's status (503, 500, 502, 504, 429, 401, 403, 408), timeout, connection, auth (no OAuth token could be obtained), circuit_open, invalid_response; Delta: storage, or conflict (commit conflicts beyond max_commit_attempts). 401/403 mean the credentials, not the events.",
        [
            (f"sum by (reason) (increase(itel_worker_claimx_api_holds_total[{RI}]))", "ClaimX API {{reason}}"),
            (f"sum by (reason) (increase(delta_storage_holds_total[{RI}]))", "Delta storage {{reason}}"),
            (f"sum by (reason) (increase(itel_api_holds_total[{RI}]))", "iTel API {{reason}}"),
            (f"sum by (reason) (increase(itel_media_holds_total[{RI}]))", "ClaimX media {{reason}}"),
        ], "short", 18, y, w=6, stack=True))
    y += 8

    # Trigger
    p.append(row("Trigger: ClaimX events → itel.cabinet.task.tracking", y)); y += 1
    p.append(timeseries(
        "Events over time (trigger)",
        "ClaimX events read, tracking messages built (itel_plugin_events_triggered_total), published (itel_plugin_events_published_total) and publish errors (itel_plugin_publish_errors_total).",
        [
            (f'sum(rate(input_received{{label="claimx_events"}}[{RI}]))', "ClaimX events read"),
            (f"sum(rate(itel_plugin_events_triggered_total[{RI}]))", "triggered"),
            (f"sum(rate(itel_plugin_events_published_total[{RI}]))", "published"),
            (f"sum(rate(itel_plugin_publish_errors_total[{RI}]))", "publish errors"),
        ], "ops", 0, y))
    p.append(timeseries(
        "Trigger errors",
        "Events the trigger sent to itel.cabinet.task.tracking.errors (unreadable event, unknown assignment), and publish failures.",
        [
            (f'sum(rate(output_sent{{label="trigger_errors"}}[{RI}]))', "to errors topic (stage trigger)"),
            (f"sum(rate(itel_plugin_publish_errors_total[{RI}]))", "publish errors"),
        ], "ops", 12, y))
    y += 8

    # Worker
    p.append(row("Worker: itel.cabinet.task.tracking → Delta", y)); y += 1
    p.append(timeseries(
        "Worker messages",
        "Records consumed, processed (row written or already there) and failed.",
        [
            (f"sum(rate(itel_worker_messages_consumed_total[{RI}]))", "consumed"),
            (f"sum(rate(itel_worker_messages_processed_total[{RI}]))", "processed"),
            (f"sum(rate(itel_worker_messages_failed_total[{RI}]))", "failed"),
        ], "ops", 0, y))
    p.append(timeseries(
        "Processing latency",
        "itel_worker_processing_latency_seconds: from the worker reading a record to its result message being built (transform, validate, lookup, Delta commit).",
        latency_targets("itel_worker_processing_latency_seconds"), "s", 12, y))
    y += 8
    p.append(timeseries(
        "Errors by stage",
        "Records sent to itel.cabinet.task.tracking.errors per stage (parse, validate, lookup, delta) and by the trigger.",
        [
            (f"sum by (stage) (rate(itel_worker_messages_failed_total[{RI}]))", "{{stage}}"),
            (f'sum(rate(output_sent{{label="trigger_errors"}}[{RI}]))', "trigger"),
        ], "ops", 0, y, stack=True))
    p.append(timeseries(
        "Consumer lag",
        "Lag per consumer group and partition (kafka_lag of every kafka_franz input: the worker's itel_cabinet_tracking_worker_group on itel.cabinet.task.tracking, the trigger's itel_cabinet_trigger_group on claimx.events.raw, and any other group; two groups on one topic are told apart by consumer_group). Every member reports its whole group, so the max is taken. Red line: the worker alert's threshold, on the worker group's total.",
        [
            ("max by (consumer_group, topic, partition) (kafka_lag)", "{{consumer_group}} {{topic}}/{{partition}}"),
            ("sum by (consumer_group) (max by (consumer_group, topic, partition) (kafka_lag))", "{{consumer_group}} total"),
        ], "short", 12, y, thresholds=1000))
    y += 8

    # ClaimX API
    p.append(row("ClaimX API", y)); y += 1
    p.append(timeseries(
        "ClaimX API latency",
        "itel_worker_claimx_api_latency_seconds: one observation per HTTP attempt (retries too), trigger and worker.",
        latency_targets("itel_worker_claimx_api_latency_seconds"), "s", 0, y, w=8))
    p.append(timeseries(
        "ClaimX API calls",
        "HTTP attempts and lookups answered by the cache, per lookup resource (claimx_assignment, claimx_project). The resources are shared by both streams, so these series have an empty stream label.",
        [
            (f"sum by (label) (rate(itel_worker_claimx_api_calls_total[{RI}]))", "calls {{label}}"),
            (f"sum by (label) (rate(itel_worker_claimx_api_cache_hits_total[{RI}]))", "cache hits {{label}}"),
        ], "reqps", 8, y, w=8))
    p.append(timeseries(
        "ClaimX API errors by reason",
        "auth (401, token), transient (429/5xx/timeouts, retried), client (other 4xx), circuit_open, invalid_response; not_found (404) is normal and not alerted on.",
        [(f"sum by (reason) (rate(itel_worker_claimx_api_errors_total[{RI}]))", "{{reason}}")],
        "reqps", 16, y, w=8, stack=True))
    y += 8

    # Delta
    p.append(row("Delta tables (by writer label: delta_append = itel_cabinet_task_tracking; forms_table, attachments_table, submissions_table)", y)); y += 1
    p.append(timeseries(
        "Delta write rate",
        "Rows appended and commits (delta_rows_written_total, delta_commits_total); rows the worker counted as written (itel_worker_delta_writes_total).",
        [
            (f"sum by (label) (rate(delta_rows_written_total[{RI}]))", "rows written {{label}}"),
            (f"sum by (label) (rate(delta_commits_total[{RI}]))", "commits {{label}}"),
            (f"sum(rate(itel_worker_delta_writes_total[{RI}]))", "worker rows written"),
        ], "ops", 0, y, w=8))
    p.append(timeseries(
        "Delta rows skipped and failed",
        "Replayed Kafka offsets and duplicate event_ids not written again (exactly-once), rows rejected by the schema, and worker records failed at the delta stage.",
        [
            (f"sum by (label) (rate(delta_rows_skipped_replayed_total[{RI}]))", "replayed (skipped) {{label}}"),
            (f"sum by (label) (rate(delta_rows_skipped_duplicate_total[{RI}]))", "duplicate key (skipped) {{label}}"),
            (f"sum by (label) (rate(delta_rows_rejected_total[{RI}]))", "rejected {{label}}"),
            (f"sum(rate(itel_worker_delta_write_errors_total[{RI}]))", "delta write errors"),
        ], "ops", 8, y, w=8))
    p.append(timeseries(
        "Delta commit latency",
        "delta_commit_latency_ns (nanoseconds in Prometheus, shown in seconds): one observation per commit.",
        latency_targets("delta_commit_latency_ns", " / 1e9"), "s", 16, y, w=8))
    y += 8
    p.append(timeseries(
        "Delta table version",
        "delta_table_version per worker replica: versions grow by one per commit of any writer.",
        [("max by (label, instance) (delta_table_version)", "{{label}} {{instance}}")],
        "none", 0, y, w=24, h=6))
    y += 6

    # Upkeep: auto compaction and the scheduled maintenance.
    p.append(row("Delta table upkeep (auto compaction, vacuum, log cleanup)", y)); y += 1
    p.append(timeseries(
        "Files in the table",
        "delta_table_files (live data files) and delta_table_partition_files_max (the most any one partition holds): auto compaction keeps the second bounded (a few times maintenance.compact_min_files).",
        [
            ("max(delta_table_files)", "live files"),
            ("max(delta_table_partition_files_max)", "most in one partition"),
        ], "short", 0, y, w=8))
    p.append(timeseries(
        "Compactions",
        "Compaction commits (delta_compactions_total), small files they removed, and compactions that lost to a concurrent change of their files (delta_compaction_conflicts_total; they run again after the next commit).",
        [
            (f"sum(rate(delta_compactions_total[{RI}]))", "compactions"),
            (f"sum(rate(delta_compaction_files_removed_total[{RI}]))", "files compacted"),
            (f"sum(rate(delta_compaction_conflicts_total[{RI}]))", "lost a race"),
        ], "ops", 8, y, w=8))
    p.append(timeseries(
        "Bytes rewritten and deleted",
        "Bytes compaction wrote (delta_compaction_bytes_rewritten_total) and bytes vacuum deleted (delta_vacuum_bytes_deleted_total).",
        [
            (f"sum(rate(delta_compaction_bytes_rewritten_total[{RI}]))", "rewritten"),
            (f"sum(rate(delta_vacuum_bytes_deleted_total[{RI}]))", "vacuumed"),
        ], "Bps", 16, y, w=8))
    y += 8
    p.append(timeseries(
        "Upkeep runs and failures by task",
        "delta_maintenance_runs_total and delta_maintenance_errors_total by task (auto_compact, optimize, retention, checkpoint, log_cleanup, vacuum): a failed step is retried at the next run and never touches the write path.",
        [
            ("sum by (task) (increase(delta_maintenance_runs_total[1h]))", "runs {{task}}"),
            ("sum by (task) (increase(delta_maintenance_errors_total[1h]))", "failed {{task}}"),
        ], "short", 0, y, w=12))
    p.append(timeseries(
        "Files deleted",
        "Data files vacuum deleted (delta_vacuum_files_deleted_total), log files past delta.logRetentionDuration deleted (delta_log_files_deleted_total) and files retention expired (delta_retention_files_expired_total).",
        [
            ("sum(increase(delta_vacuum_files_deleted_total[1h]))", "vacuumed data files"),
            ("sum(increase(delta_log_files_deleted_total[1h]))", "log files"),
            ("sum(increase(delta_retention_files_expired_total[1h]))", "expired by retention"),
        ], "short", 12, y, w=12))
    y += 8

    # Forms (docs/FORMS.md)
    p.append(row("Forms: completed forms → itel_cabinet_forms, photos, iTel submissions", y)); y += 1
    p.append(timeseries(
        "Forms",
        "Tracking results the forms stream read (itel_forms_messages_consumed_total; only COMPLETED ones become forms), forms processed (rows written or already there) and records sent to itel.cabinet.forms.errors by stage (form: an answer that does not parse; photos: a rejected photo; submission: a submission iTel refused).",
        [
            (f"sum(rate(itel_forms_messages_consumed_total[{RI}]))", "tracking results read"),
            (f"sum(rate(itel_forms_processed_total[{RI}]))", "forms processed"),
            (f"sum by (stage) (rate(itel_forms_failed_total[{RI}]))", "failed {{stage}}"),
        ], "ops", 0, y, w=8))
    p.append(timeseries(
        "Form processing latency",
        "itel_forms_processing_latency_seconds: from reading a tracking result to its result message (answers, photo downloads, three Delta commits, the iTel submission).",
        latency_targets("itel_forms_processing_latency_seconds"), "s", 8, y, w=8))
    p.append(timeseries(
        "iTel submissions by status",
        "itel_submissions_total: accepted (201), replayed (200: iTel already had the idempotency key — a redelivery, never a second submission), rejected (4xx for the record, or a payload outside schemas/itel_submission.v1.json), error.",
        [(f"sum by (status) (rate(itel_submissions_total[{RI}]))", "{{status}}")],
        "ops", 16, y, w=8, stack=True))
    y += 8
    p.append(timeseries(
        "Photos by outcome",
        "itel_media_downloads_total: stored, already_stored (a redelivery: the object is not written twice), rejected (0 bytes, over max_size, a type not allowed, not in the media list); expired download links fetched again (itel_media_link_refreshes_total).",
        [
            (f"sum by (status) (rate(itel_media_downloads_total[{RI}]))", "{{status}}"),
            (f"sum(rate(itel_media_link_refreshes_total[{RI}]))", "link refreshes"),
        ], "ops", 0, y, w=8, stack=True))
    p.append(timeseries(
        "Photo bytes stored",
        "itel_media_bytes_stored_total: bytes written to object storage (ITEL_ATTACHMENTS_URI).",
        [(f"sum(rate(itel_media_bytes_stored_total[{RI}]))", "stored")], "Bps", 8, y, w=8))
    p.append(timeseries(
        "iTel API",
        "itel_api_calls_total (HTTP attempts), itel_api_retries_total, itel_api_errors_total by reason, and the latency of one submission (itel_submission_latency_ns mean, its attempts and backoff, not a hold).",
        [
            (f"sum(rate(itel_api_calls_total[{RI}]))", "calls"),
            (f"sum(rate(itel_api_retries_total[{RI}]))", "retries"),
            (f"sum by (reason) (rate(itel_api_errors_total[{RI}]))", "errors {{reason}}"),
        ], "reqps", 16, y, w=8))
    y += 8

    # Status changes, alerts and SLA (docs/ALERTS.md).
    p.append(row("Status, alerts and SLA: itel.cabinet.task.status → alerts, notifiers, itel_cabinet_task_sla", y)); y += 1
    p.append(stat("Assignments tracked", "Assignments whose last state the status stream holds (state_changelog_keys: one record each in the compacted itel.cabinet.task.status).", "max(state_changelog_keys)", "short", 0, y))
    p.append(stat("Status topic available", "state_changelog_available, the lowest replica: 0 while the status stream cannot read or write itel.cabinet.task.status and holds (alert StatusChangesHeld).", "min(state_changelog_available)", "none", 4, y, red_below=1))
    p.append(stat("Alerts (24h)", "Alerts the alerts stream built in the last 24 hours, all rules (itel_alerts_total).", "sum(increase(itel_alerts_total[24h]))", "short", 8, y))
    p.append(stat("SLA breaches (24h)", "SLA deadlines the status stream's timer found passed in the last 24 hours (state_deadlines_overdue_total): assignments not started or not completed in time, with no event since.", "sum(increase(state_deadlines_overdue_total[24h]))", "short", 12, y, red=1))
    p.append(stat("Completed within SLA (24h)", "Share of the assignments completed in the last 24 hours within SLA_TARGET_HOURS_COMPLETED of being assigned (itel_task_sla_total; alert ITelSLAComplianceLow under 90%).",
                  'sum(increase(itel_task_sla_total{status="COMPLETED", within_sla="true"}[24h])) / sum(increase(itel_task_sla_total{status="COMPLETED"}[24h]))', "percentunit", 16, y, red_below=0.9, decimals=1))
    p.append(stat("Status, alerts and SLA lag", "Records the three streams' groups have not processed yet (kafka_lag, max per partition, summed; alert ITelStreamConsumerLagGrowing over 100 and not catching up).",
                  f"sum(max by (consumer_group, topic, partition) ({ALERTS_LAG}))", "short", 20, y, red=100))
    y += 4
    p.append(timeseries(
        "Status changes by change type",
        "state_changes_total by change: new (an assignment's first state), changed (status or assignee), overdue (an SLA deadline passed, from the timer) are written to itel.cabinet.task.status; unchanged, replay (the same event again) and out_of_order (older than the last change) are not.",
        [(f"sum by (change) (rate(state_changes_total[{RI}]))", "{{change}}")], "ops", 0, y, w=8, stack=True))
    p.append(timeseries(
        "Alerts by rule",
        "itel_alerts_total by rule: completed, cancelled, reopened, reassigned, sla_breach, sla_resolved. Each alert goes to itel.cabinet.alerts and to every configured notifier.",
        [(f"sum by (rule) (rate(itel_alerts_total[{RI}]))", "{{rule}}")], "ops", 8, y, w=8, stack=True))
    p.append(timeseries(
        "Notifier failures",
        "Failed writes of the alerts stream's outputs (benthos output_error by label: slack, teams, pagerduty, email, alerts_topic), each retried while the stream holds (alert AlertDeliveryFailing); e-mails the SMTP server refused for good (itel_alerts_email_refused_total, not retried).",
        [
            (f'sum by (label) (rate(output_error{{label=~"slack|teams|pagerduty|email|alerts_topic"}}[{RI}]))', "{{label}}"),
            (f"sum(rate(itel_alerts_email_refused_total[{RI}]))", "e-mail refused"),
        ], "ops", 16, y, w=8))
    y += 8
    p.append(timeseries(
        "SLA percentiles by week",
        "Time from assigned to each status reached (itel_task_sla_seconds, buckets 1 hour to 4 weeks): p50 and p90 of the 7 days up to each point, by status. One point a day over the last 30 days, whatever the dashboard's range.",
        [(f"histogram_quantile({q}, sum by (status, le) (increase(itel_task_sla_seconds_bucket[7d])))", f"p{round(q * 100)} {{{{status}}}}") for q in (0.5, 0.9)],
        "s", 0, y, w=10, time_from="30d", interval="1d"))
    share = timeseries(
        "Share within SLA target by status",
        "Share of the status changes of the 7 days up to each point that reached their status within its target (itel_task_sla_total: IN_PROGRESS within SLA_TARGET_HOURS_IN_PROGRESS, COMPLETED within SLA_TARGET_HOURS_COMPLETED; an overdue row counts as missed).",
        [('sum by (status) (increase(itel_task_sla_total{within_sla="true"}[7d])) / sum by (status) (increase(itel_task_sla_total[7d]))', "{{status}}")],
        "percentunit", 10, y, w=7, time_from="30d", interval="1d")
    share["fieldConfig"]["defaults"]["max"] = 1
    p.append(share)
    p.append(timeseries(
        "SLA breaches per day",
        "SLA deadlines found passed per day (state_deadlines_overdue_total, the status stream's timer), the sla_breach alerts sent for them and the sla_resolved alerts that closed them (itel_alerts_total).",
        [
            ("sum(increase(state_deadlines_overdue_total[1d]))", "breaches"),
            ('sum(increase(itel_alerts_total{rule="sla_breach"}[1d]))', "sla_breach alerts"),
            ('sum(increase(itel_alerts_total{rule="sla_resolved"}[1d]))', "sla_resolved alerts"),
        ], "short", 17, y, w=7, bars=True, time_from="30d", interval="1d"))
    y += 8
    p.append(timeseries(
        "Status, alerts and SLA consumer lag",
        "Lag of itel_cabinet_status_group (on itel.cabinet.task.tracking), itel_cabinet_alerts_group and itel_cabinet_sla_group (on itel.cabinet.task.status), max per partition, summed. Red line: the threshold of ITelStreamConsumerLagGrowing.",
        [(f"sum by (consumer_group) (max by (consumer_group, topic, partition) ({ALERTS_LAG}))", "{{consumer_group}}")],
        "short", 0, y, thresholds=100))
    p.append(timeseries(
        "Failed records: status, alerts, SLA",
        "Records sent to itel.cabinet.alerts.errors by stream and stage: itel_status_failed_total (parse, state), itel_alerts_failed_total (rules), itel_sla_failed_total (sla).",
        [
            (f"sum by (stage) (rate(itel_status_failed_total[{RI}]))", "status {{stage}}"),
            (f"sum by (stage) (rate(itel_alerts_failed_total[{RI}]))", "alerts {{stage}}"),
            (f"sum by (stage) (rate(itel_sla_failed_total[{RI}]))", "sla {{stage}}"),
        ], "ops", 12, y, stack=True))
    y += 8

    # Data quality (docs/QUALITY.md): delta check --metrics-addr or the quality_check input.
    p.append(row("Data quality: expectations over the Delta tables", y)); y += 1
    mapping = [{"type": "value", "options": {v: {"text": t, "color": c, "index": i} for i, (v, t, c) in enumerate(QUALITY_STATES)}}]
    p.append(table(
        "Expectation status",
        "The last result of each expectation (quality_expectation_status: pass, fail, skipped outside its hours, error when it could not be evaluated) and its last observed value (quality_expectation_observed: an age in seconds, a ratio, a count of rows; docs/QUALITY.md per kind).",
        [
            ("max by (expectation, table, kind) (quality_expectation_status)", "status"),
            ("max by (expectation, table, kind) (quality_expectation_observed)", "observed"),
        ], 0, y, w=12, value_columns={"Value #A": "status", "Value #B": "observed"},
        overrides=[{"matcher": {"id": "byName", "options": "status"}, "properties": [
            {"id": "mappings", "value": mapping},
            {"id": "custom.cellOptions", "value": {"type": "color-background"}},
        ]}]))
    p.append(timeseries(
        "Failures over time",
        "Results per hour that failed, or could not be evaluated, by expectation (quality_checks_total by status).",
        [
            ('sum by (expectation) (increase(quality_checks_total{status="fail"}[1h]))', "fail {{expectation}}"),
            ('sum by (expectation) (increase(quality_checks_total{status="error"}[1h]))', "error {{expectation}}"),
        ], "short", 12, y, stack=True))
    y += 8
    p.append(timeseries(
        "Files scanned",
        "Data files the checks read per hour, by table (quality_files_scanned_total): what the log's statistics could not answer. The cost of the checks.",
        [("sum by (table) (increase(quality_files_scanned_total[1h]))", "{{table}}")], "short", 0, y, stack=True))
    p.append(stat("Time since last run", "Since the last run of the checks finished (quality_last_run_timestamp_seconds; every 15 minutes by default; alert DataQualityChecksNotRunning after 2 hours).",
                  "time() - max(quality_last_run_timestamp_seconds)", "s", 12, y, w=4, h=8, red=7200))
    p.append(stat("Expectations failing", "Expectations whose last result failed (quality_expectation_status 0; alert DataQualityExpectationFailing).",
                  "count(max by (expectation, table) (quality_expectation_status) == 0) or vector(0)", "short", 16, y, w=4, h=8, red=1))
    p.append(stat("Expectations in error", "Expectations that could not be evaluated at their last run (quality_expectation_status -2; alert DataQualityExpectationError).",
                  "count(max by (expectation, table) (quality_expectation_status) == -2) or vector(0)", "short", 20, y, w=4, h=8, red=1))
    return p


def dashboard():
    return {
        "__inputs": [{
            "name": "DS_PROMETHEUS", "label": "Prometheus", "description": "",
            "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus",
        }],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
            {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
            {"type": "panel", "id": "table", "name": "Table", "version": ""},
        ],
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
        }]},
        "description": "claimx-connect: iTel Cabinet trigger, worker and forms streams, holds on an unavailable dependency, ClaimX API, Delta tables, photos, iTel submissions, consumer lag, status changes, alerts and SLA, data quality.",
        "editable": True,
        "graphTooltip": 1,
        "links": [],
        "panels": [dict(pn, id=i + 1) for i, pn in enumerate(panels())],
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["claimx", "claimx-connect", "kafka", "delta"],
        "templating": {"list": [
            {
                "name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "query": "prometheus",
                "current": {}, "hide": 0, "refresh": 1, "regex": "", "includeAll": False, "multi": False, "options": [],
            },
            {
                "name": "filter", "label": "Filter", "type": "adhoc", "datasource": DS, "filters": [], "hide": 0,
            },
        ]},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "utc",
        "title": "claimx-connect: iTel Cabinet pipelines",
        "uid": "claimx-connect-itel",
        "version": 1,
        "weekStart": "",
    }


if __name__ == "__main__":
    json.dump(dashboard(), sys.stdout, indent=2)
    sys.stdout.write("\n")
