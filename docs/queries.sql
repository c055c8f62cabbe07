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

-- ============================================================================
-- iTel Cabinet forms (issue 16): the three tables of the forms stream
-- (pipelines/forms.yaml), Spark SQL with delta-spark as above.
--   itel_cabinet_forms        one row per completed iTel Cabinet Repair Form
--                             response (schemas/itel_cabinet_forms.yaml): the
--                             typed answers, photo media ids as array<bigint>,
--                             unmapped answers in other_answers map<string,string>.
--                             A re-completed form keeps every response, one row
--                             each (same assignment_id, another form_response_id).
--   itel_cabinet_attachments  one row per photo of a response: stored,
--                             already_stored (an earlier delivery stored it) or
--                             rejected with its reason (schemas/itel_cabinet_attachments.yaml).
--   itel_cabinet_submissions  one row per response submitted to iTel: accepted
--                             (replayed when iTel answered an earlier acceptance)
--                             or rejected (schemas/itel_cabinet_submissions.yaml).
-- The three join on form_key = assignment_id:form_response_id. Linear feet are
-- in feet, sizes in bytes (each number's unit is its column's metadata). Not
-- partitioned. Weeks are ISO weeks: date_trunc('week', ...) is the Monday
-- 00:00 UTC that starts the week (session time zone UTC, set above).
-- Checked: every statement below runs on Spark 4.0.1 + delta-spark 4.0.1
-- against tables the project's Delta writer wrote
-- (tests/conformance/forms_readers_test.go, TestFormsTablesReaders).

-- Register the tables once, like the tracking table.
CREATE TABLE IF NOT EXISTS itel_cabinet_forms
USING DELTA
LOCATION 's3://claimx-lake/itel_cabinet_forms';

CREATE TABLE IF NOT EXISTS itel_cabinet_attachments
USING DELTA
LOCATION 's3://claimx-lake/itel_cabinet_attachments';

CREATE TABLE IF NOT EXISTS itel_cabinet_submissions
USING DELTA
LOCATION 's3://claimx-lake/itel_cabinet_submissions';

-- Latest form response per assignment: a re-completion adds a row, so the current answers are the newest response (ROW_NUMBER); responses says how many there are.
WITH ranked AS (
  SELECT assignment_id, project_id, form_response_id, form_key, date_completed, processed_timestamp,
         lower_cabinets_damaged, upper_cabinets_damaged, full_height_cabinets_damaged, island_cabinets_damaged,
         countertop_linear_feet, photo_count,
         COUNT(*) OVER (PARTITION BY assignment_id) AS responses,
         ROW_NUMBER() OVER (PARTITION BY assignment_id
                            ORDER BY date_completed DESC, processed_timestamp DESC) AS rn
  FROM itel_cabinet_forms
)
SELECT assignment_id, project_id, form_response_id, form_key, date_completed, responses,
       lower_cabinets_damaged, upper_cabinets_damaged, full_height_cabinets_damaged, island_cabinets_damaged,
       countertop_linear_feet, photo_count
FROM ranked
WHERE rn = 1
ORDER BY date_completed DESC;

-- Damaged linear feet by cabinet type and ISO week: the four cabinet groups unpivoted (stack), summing a group's linear feet where it is damaged; latest response per assignment, so a re-completion is not counted twice.
WITH latest AS (
  SELECT *
  FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY assignment_id
                                     ORDER BY date_completed DESC, processed_timestamp DESC) AS rn
        FROM itel_cabinet_forms) r
  WHERE rn = 1
), cabinets AS (
  SELECT date_trunc('week', date_completed) AS week,
         stack(4,
           'lower',       lower_cabinets_damaged,       lower_cabinets_linear_feet,
           'upper',       upper_cabinets_damaged,       upper_cabinets_linear_feet,
           'full_height', full_height_cabinets_damaged, full_height_cabinets_linear_feet,
           'island',      island_cabinets_damaged,      island_cabinets_linear_feet
         ) AS (cabinet_type, damaged, linear_feet)
  FROM latest
)
SELECT CAST(week AS DATE) AS week_start, cabinet_type,
       COUNT(*) AS damaged_forms,
       ROUND(SUM(linear_feet), 2) AS damaged_linear_feet,
       ROUND(AVG(linear_feet), 2) AS avg_linear_feet
FROM cabinets
WHERE damaged
GROUP BY week, cabinet_type
ORDER BY week_start, cabinet_type;

-- Damaged linear feet by counter type and ISO week: lower and island cabinets carry a counter type (lower_counter_type, island_counter_type); unpivoted with UNION ALL, latest response per assignment.
WITH latest AS (
  SELECT *
  FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY assignment_id
                                     ORDER BY date_completed DESC, processed_timestamp DESC) AS rn
        FROM itel_cabinet_forms) r
  WHERE rn = 1
), counters AS (
  SELECT date_trunc('week', date_completed) AS week, 'lower' AS cabinet_type,
         lower_counter_type AS counter_type, lower_cabinets_linear_feet AS linear_feet
  FROM latest
  WHERE lower_cabinets_damaged
  UNION ALL
  SELECT date_trunc('week', date_completed), 'island',
         island_counter_type, island_cabinets_linear_feet
  FROM latest
  WHERE island_cabinets_damaged
)
SELECT CAST(week AS DATE) AS week_start,
       coalesce(counter_type, '(not answered)') AS counter_type,
       COUNT(*) AS damaged_cabinet_groups,
       ROUND(SUM(linear_feet), 2) AS damaged_linear_feet,
       ROUND(SUM(linear_feet) FILTER (WHERE cabinet_type = 'lower'), 2)  AS lower_linear_feet,
       ROUND(SUM(linear_feet) FILTER (WHERE cabinet_type = 'island'), 2) AS island_linear_feet
FROM counters
GROUP BY week, counter_type
ORDER BY week_start, damaged_linear_feet DESC;

-- Share of form responses with photos per ISO week (photo_count > 0: the form named at least one photo, stored or not).
SELECT CAST(date_trunc('week', date_completed) AS DATE) AS week_start,
       COUNT(*) AS responses,
       COUNT_IF(photo_count > 0) AS with_photos,
       ROUND(100.0 * COUNT_IF(photo_count > 0) / COUNT(*), 1) AS pct_with_photos,
       SUM(photo_count) AS photos
FROM itel_cabinet_forms
GROUP BY date_trunc('week', date_completed)
ORDER BY week_start;

-- Time to complete per ISO week: date_completed - task_created_at of each response, in hours (median and p90 with percentile_approx).
WITH durations AS (
  SELECT date_trunc('week', date_completed) AS week,
         (unix_micros(date_completed) - unix_micros(task_created_at)) / 3.6e9 AS hours
  FROM itel_cabinet_forms
  WHERE date_completed IS NOT NULL AND task_created_at IS NOT NULL
)
SELECT CAST(week AS DATE) AS week_start,
       COUNT(*)                      AS responses,
       ROUND(AVG(hours), 2)          AS avg_hours,
       percentile_approx(hours, 0.5) AS median_hours,
       percentile_approx(hours, 0.9) AS p90_hours,
       ROUND(MAX(hours), 2)          AS max_hours
FROM durations
GROUP BY week
ORDER BY week_start;

-- Photos stored vs rejected and bytes per ISO week of processing (attachments): already_stored counts as stored (an earlier delivery wrote the object).
SELECT CAST(date_trunc('week', processed_timestamp) AS DATE) AS week_start,
       COUNT(*) AS photos,
       COUNT_IF(status IN ('stored', 'already_stored')) AS stored,
       COUNT_IF(status = 'rejected') AS rejected,
       ROUND(100.0 * COUNT_IF(status = 'rejected') / COUNT(*), 1) AS pct_rejected,
       SUM(size_bytes) FILTER (WHERE status IN ('stored', 'already_stored')) AS stored_bytes,
       ROUND(SUM(size_bytes) FILTER (WHERE status IN ('stored', 'already_stored')) / 1048576.0, 1) AS stored_mib,
       COUNT(DISTINCT form_key) AS forms
FROM itel_cabinet_attachments
GROUP BY date_trunc('week', processed_timestamp)
ORDER BY week_start;

-- Why photos were rejected: count per reason (0-byte, oversize, not an image…).
SELECT reason, COUNT(*) AS photos, COUNT(DISTINCT form_key) AS forms, MAX(processed_timestamp) AS last_seen
FROM itel_cabinet_attachments
WHERE status = 'rejected'
GROUP BY reason
ORDER BY photos DESC;

-- Submissions to iTel by status: accepted (replayed = iTel answered an earlier acceptance of the same idempotency key) or rejected, with HTTP status and attempts.
SELECT status, replayed, http_status,
       COUNT(*) AS submissions,
       COUNT(DISTINCT assignment_id) AS assignments,
       ROUND(AVG(attempts), 2) AS avg_attempts,
       MAX(attempts) AS max_attempts,
       MIN(submitted_at) AS first_submitted_at,
       MAX(submitted_at) AS last_submitted_at
FROM itel_cabinet_submissions
GROUP BY status, replayed, http_status
ORDER BY submissions DESC;

-- Form responses not (yet) accepted by iTel: no accepted submission (LEFT ANTI JOIN), with the rejection when there is one (no submission row: not submitted yet, e.g. the stream holds during an iTel outage).
SELECT f.form_key, f.assignment_id, f.project_id, f.form_response_id, f.date_completed,
       f.processed_timestamp,
       s.status AS submission_status, s.http_status, s.error, s.submitted_at
FROM itel_cabinet_forms f
LEFT ANTI JOIN (SELECT form_key FROM itel_cabinet_submissions WHERE status = 'accepted') a
  ON a.form_key = f.form_key
LEFT JOIN itel_cabinet_submissions s
  ON s.form_key = f.form_key
ORDER BY f.processed_timestamp;

-- Data quality: exactly one forms row per form response (expect no rows; the stream de-duplicates on form_key).
SELECT form_key, COUNT(*) AS copies
FROM itel_cabinet_forms
GROUP BY form_key
HAVING COUNT(*) > 1;

-- Data quality: photo_count of each response against its attachments rows (expect no rows once the stream has caught up).
SELECT f.form_key, f.photo_count, COUNT(a.attachment_key) AS attachment_rows
FROM itel_cabinet_forms f
LEFT JOIN itel_cabinet_attachments a ON a.form_key = f.form_key
GROUP BY f.form_key, f.photo_count
HAVING COUNT(a.attachment_key) <> f.photo_count;

-- Unmapped answers (other_answers map): which questions the mapping does not name yet, and how often (explode the map).
SELECT question, COUNT(*) AS responses, MIN(answer) AS example_answer
FROM itel_cabinet_forms
LATERAL VIEW explode(other_answers) o AS question, answer
GROUP BY question
ORDER BY responses DESC;

-- Photos of one response from the array columns, with their attachment row (explode the array<bigint> media ids).
SELECT f.form_key, p.question_column, p.media_id, a.status, a.size_bytes, a.object_uri
FROM (
  SELECT form_key, 'overview_photo_media_ids' AS question_column, explode(overview_photo_media_ids) AS media_id FROM itel_cabinet_forms
  UNION ALL
  SELECT form_key, 'cabinet_damage_photo_media_ids', explode(cabinet_damage_photo_media_ids) FROM itel_cabinet_forms
  UNION ALL
  SELECT form_key, 'countertop_photo_media_ids', explode(countertop_photo_media_ids) FROM itel_cabinet_forms
) p
JOIN itel_cabinet_forms f ON f.form_key = p.form_key
LEFT JOIN itel_cabinet_attachments a ON a.form_key = p.form_key AND a.media_id = p.media_id
WHERE f.assignment_id = 5423723
ORDER BY p.question_column, p.media_id;

-- ── SLA (issue 17: itel_cabinet_task_sla, one row per status change) ──────

CREATE TABLE IF NOT EXISTS itel_cabinet_task_sla
USING DELTA
LOCATION 's3://claimx-lake/itel_cabinet_task_sla';

-- The current view: each assignment's latest status, hours since assigned, SLA
-- (an overdue row, change = 'overdue', keeps the event of the status it found
-- open, so the order is by detection).
SELECT * FROM (
  SELECT s.*, ROW_NUMBER() OVER (PARTITION BY assignment_id ORDER BY detected_at DESC, change_id DESC) AS rn
  FROM itel_cabinet_task_sla s
) WHERE rn = 1;

-- Time to complete by week: median, p90, and the share within the target.
SELECT date_trunc('week', event_time) AS week,
       percentile_approx(hours_since_assigned, 0.5) AS p50_hours,
       percentile_approx(hours_since_assigned, 0.9) AS p90_hours,
       avg(CASE WHEN within_sla THEN 1.0 ELSE 0.0 END) AS share_within_sla
FROM itel_cabinet_task_sla
WHERE to_status = 'COMPLETED' AND change <> 'overdue'
GROUP BY 1 ORDER BY 1;

-- Missed deadlines per week: assignments left open past their target, by deadline.
SELECT date_trunc('week', deadline_at) AS week, deadline_name, COUNT(*) AS breaches
FROM itel_cabinet_task_sla
WHERE change = 'overdue'
GROUP BY 1, 2 ORDER BY 1, 2;

-- ── Data quality (issue 17: _quality_results, one row per expectation per run) ──

CREATE TABLE IF NOT EXISTS _quality_results
USING DELTA
LOCATION 's3://claimx-lake/_quality_results';

-- Each expectation's latest result: what passes and what fails now.
SELECT expectation, table_name, kind, severity, status, observed, threshold, message, evaluated_at
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY expectation ORDER BY evaluated_at DESC, run_id DESC) AS rn
  FROM _quality_results
) WHERE rn = 1
ORDER BY status, expectation;

-- Failures per day and expectation, and how much each check read.
SELECT CAST(evaluated_at AS DATE) AS day, expectation,
       COUNT_IF(status = 'fail') AS failed_runs, COUNT(*) AS runs,
       SUM(files_scanned) AS files_scanned, SUM(files_pruned) AS files_pruned
FROM _quality_results
GROUP BY 1, 2
ORDER BY 1, 2;
