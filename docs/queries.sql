-- Sample queries on the Delta table itel_cabinet_task_tracking (Spark SQL with
-- delta-spark). Schema: schemas/itel_cabinet_task_tracking.yaml; one row per
-- ClaimX task event (exactly once per event_id), partitioned by year, month,
-- day = the UTC date of event_timestamp. All timestamps are UTC.
--
-- Start Spark with Delta, for example:
--   pyspark --packages io.delta:delta-spark_2.13:<version> \
--     --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
--     --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog
-- Each query below also works on the path, writing
--   delta.`s3://claimx-lake/itel_cabinet_task_tracking`
-- in place of the table name.
-- Checked: every statement runs on Spark 4.0.1 + delta-spark 4.0.1 against a
-- table claimx-connect wrote (CLAIMX_DEPLOY_SPARK=1 tests/docker/check_dockerfile.sh).

-- Partitions are UTC dates: compare them with UTC dates.
SET spark.sql.session.timeZone = UTC;

-- Register the table once: the schema, partitioning and properties come from its Delta log.
CREATE TABLE IF NOT EXISTS itel_cabinet_task_tracking
USING DELTA
LOCATION 's3://claimx-lake/itel_cabinet_task_tracking';

-- Row count (the original's first check after a test run).
SELECT COUNT(*) AS rows FROM itel_cabinet_task_tracking;

-- Recent events: the last 24 hours, newest first; the partition filter prunes to two days of files.
SELECT event_id, event_type, event_timestamp, assignment_id, project_id, task_status,
       assigned_to_user_id, task_created_at, task_completed_at, processed_timestamp
FROM itel_cabinet_task_tracking
WHERE make_date(year, month, day) >= date_sub(current_date(), 1)
  AND event_timestamp >= current_timestamp() - INTERVAL 24 HOURS
ORDER BY event_timestamp DESC
LIMIT 100;

-- Per-assignment lifecycle: every event of one assignment with the previous status and the time since it (LAG).
SELECT assignment_id, event_id, event_type, task_status, event_timestamp,
       LAG(task_status) OVER w AS previous_status,
       LAG(event_timestamp) OVER w AS previous_event_at,
       (unix_micros(event_timestamp) - unix_micros(LAG(event_timestamp) OVER w)) / 1e6 AS seconds_since_previous
FROM itel_cabinet_task_tracking
WHERE assignment_id = 5423723
WINDOW w AS (PARTITION BY assignment_id ORDER BY event_timestamp, processed_timestamp)
ORDER BY event_timestamp, processed_timestamp;

-- Status distribution of the events: count, distinct assignments and share of each task_status.
SELECT task_status,
       COUNT(*) AS events,
       COUNT(DISTINCT assignment_id) AS assignments,
       ROUND(100.0 * COUNT(*) / SUM(COUNT(*)) OVER (), 2) AS pct_of_events
FROM itel_cabinet_task_tracking
GROUP BY task_status
ORDER BY events DESC;

-- Completion times: task_completed_at - task_created_at per completed assignment, in hours (average, median, p90, max).
WITH completed AS (
  SELECT assignment_id,
         MIN(task_created_at)   AS created_at,
         MAX(task_completed_at) AS completed_at
  FROM itel_cabinet_task_tracking
  WHERE task_status = 'COMPLETED'
    AND task_created_at IS NOT NULL
    AND task_completed_at IS NOT NULL
  GROUP BY assignment_id
), durations AS (
  SELECT assignment_id, (unix_micros(completed_at) - unix_micros(created_at)) / 3.6e9 AS hours
  FROM completed
)
SELECT COUNT(*)                        AS completed_assignments,
       ROUND(AVG(hours), 2)            AS avg_hours,
       percentile_approx(hours, 0.5)   AS median_hours,
       percentile_approx(hours, 0.9)   AS p90_hours,
       ROUND(MAX(hours), 2)            AS max_hours
FROM durations;

-- Daily activity of the last 30 days, grouped and filtered on the partition columns (partition pruning, no file scan beyond them).
SELECT make_date(year, month, day) AS event_date,
       COUNT(*) AS events,
       COUNT_IF(event_type = 'CUSTOM_TASK_ASSIGNED')  AS assigned_events,
       COUNT_IF(event_type = 'CUSTOM_TASK_COMPLETED') AS completed_events,
       COUNT(DISTINCT assignment_id) AS assignments,
       COUNT(DISTINCT project_id)    AS projects
FROM itel_cabinet_task_tracking
WHERE make_date(year, month, day) >= date_sub(current_date(), 30)
GROUP BY year, month, day
ORDER BY event_date;

-- One day only: equality on year, month, day reads that single partition directory.
SELECT COUNT(*) AS events
FROM itel_cabinet_task_tracking
WHERE year = 2026 AND month = 1 AND day = 10;

-- Latest status per assignment: the newest event of each assignment (ROW_NUMBER), then the distribution of current statuses.
WITH ranked AS (
  SELECT assignment_id, project_id, assigned_to_user_id, task_status, event_type, event_timestamp,
         task_created_at, task_completed_at,
         ROW_NUMBER() OVER (PARTITION BY assignment_id
                            ORDER BY event_timestamp DESC, processed_timestamp DESC) AS rn
  FROM itel_cabinet_task_tracking
  WHERE assignment_id IS NOT NULL
)
SELECT assignment_id, project_id, assigned_to_user_id, task_status AS current_status,
       event_timestamp AS status_since, task_created_at, task_completed_at
FROM ranked
WHERE rn = 1
ORDER BY status_since DESC;

-- Current status distribution: how many assignments are in each status now (latest event per assignment).
SELECT task_status AS current_status, COUNT(*) AS assignments
FROM (
  SELECT task_status,
         ROW_NUMBER() OVER (PARTITION BY assignment_id
                            ORDER BY event_timestamp DESC, processed_timestamp DESC) AS rn
  FROM itel_cabinet_task_tracking
  WHERE assignment_id IS NOT NULL
) latest
WHERE rn = 1
GROUP BY task_status
ORDER BY assignments DESC;

-- Per-user completion rate: of the assignments each assignee (assigned_to_user_id) holds, the share whose latest status is COMPLETED.
WITH latest AS (
  SELECT assignment_id, assigned_to_user_id, task_status
  FROM (
    SELECT assignment_id, assigned_to_user_id, task_status,
           ROW_NUMBER() OVER (PARTITION BY assignment_id
                              ORDER BY event_timestamp DESC, processed_timestamp DESC) AS rn
    FROM itel_cabinet_task_tracking
    WHERE assignment_id IS NOT NULL
  ) r
  WHERE rn = 1
)
SELECT assigned_to_user_id,
       COUNT(*)                             AS assignments,
       COUNT_IF(task_status = 'COMPLETED')  AS completed,
       COUNT_IF(task_status = 'CANCELLED')  AS cancelled,
       COUNT_IF(task_status IN ('ASSIGNED', 'IN_PROGRESS')) AS open,
       ROUND(100.0 * COUNT_IF(task_status = 'COMPLETED') / COUNT(*), 1) AS completion_rate_pct
FROM latest
WHERE assigned_to_user_id IS NOT NULL
GROUP BY assigned_to_user_id
ORDER BY assignments DESC;

-- The ClaimX answer kept as JSON text: form and template fields of completed assignments (get_json_object on claimx_task_full).
SELECT assignment_id,
       get_json_object(claimx_task_full, '$.customTask.name') AS template_name,
       get_json_object(claimx_task_full, '$.formResponseId')  AS form_response_id,
       get_json_object(claimx_task_full, '$.externalLinkData.email') AS customer_email,
       json_array_length(get_json_object(claimx_task_full, '$.response.groups')) AS answer_groups
FROM itel_cabinet_task_tracking
WHERE task_status = 'COMPLETED' AND claimx_task_full IS NOT NULL
LIMIT 20;

-- Data quality: exactly one row per event_id (expect no rows; a row here means a duplicate got in).
SELECT event_id, COUNT(*) AS copies
FROM itel_cabinet_task_tracking
GROUP BY event_id
HAVING COUNT(*) > 1;

-- Data quality: the partition columns agree with event_timestamp's UTC date (expect 0).
SELECT COUNT(*) AS mismatched
FROM itel_cabinet_task_tracking
WHERE make_date(year, month, day) <> to_date(event_timestamp);

-- Change data feed (delta.enableChangeDataFeed=true): rows added since table version 1.
SELECT _change_type, _commit_version, _commit_timestamp, event_id, assignment_id, task_status
FROM table_changes('itel_cabinet_task_tracking', 1)
ORDER BY _commit_version;

-- History and time travel: the commits (claimx-connect writes STREAMING UPDATE), and the count as of an earlier version.
DESCRIBE HISTORY itel_cabinet_task_tracking;
SELECT COUNT(*) AS rows_then FROM itel_cabinet_task_tracking VERSION AS OF 1;

-- Maintenance with Spark. claimx-connect does the same without Spark:
--   claimx-connect delta optimize <table-uri> [--target-size 128MiB] [--dry-run]
--     bin-packs the small files of each partition into files of about the target
--     size, committed with dataChange=false (streaming readers and the change data
--     feed ignore it); it does not Z-order.
--   claimx-connect delta vacuum <table-uri> [--retain 168h] [--dry-run] [--log]
--     deletes data files no version within the retention references (under 168h
--     needs --force); --log also removes log files older than
--     delta.logRetentionDuration that a checkpoint covers.
-- CONCURRENCY ON S3: open-source Spark's default S3 log store does not use
-- conditional puts, so a Spark commit racing a claimx-connect worker commit can
-- overwrite it. On s3:// run Spark OPTIMIZE/ZORDER only while the worker is
-- stopped (kubectl scale deploy/claimx-worker --replicas=0), or use
-- `claimx-connect delta optimize`, whose commits are put-if-absent like the
-- worker's. Spark's S3DynamoDBLogStore makes Spark writers safe among
-- themselves, not against writers that do not use its DynamoDB table.

-- Compact one month of small files (the WHERE may name partition columns only).
OPTIMIZE itel_cabinet_task_tracking WHERE year = 2026 AND month = 1;

-- Compact and co-locate rows of the same assignment, for the per-assignment queries above.
OPTIMIZE itel_cabinet_task_tracking ZORDER BY (assignment_id);

-- List the files VACUUM would delete (older than 7 days and no longer referenced).
VACUUM itel_cabinet_task_tracking RETAIN 168 HOURS DRY RUN;

-- Delete them (time travel to versions older than the retention stops working).
VACUUM itel_cabinet_task_tracking RETAIN 168 HOURS;
