package quality

// Metric names, shared by `delta check --metrics-addr` (Prometheus client)
// and the quality_check input (benthos metrics), so dashboards and alerts
// read one set whichever runs the checks.
const (
	// MetricStatus is a gauge per {expectation, table, kind}: StatusValue of
	// the last result.
	MetricStatus = "quality_expectation_status"
	// MetricObserved is a gauge per {expectation, table, kind}: the last
	// observed value (not set on error or skipped).
	MetricObserved = "quality_expectation_observed"
	// MetricChecks counts results per {expectation, status}.
	MetricChecks = "quality_checks_total"
	// MetricFilesScanned counts data files read per {expectation, table}.
	MetricFilesScanned = "quality_files_scanned_total"
	// MetricLastRun is a gauge: the Unix time the last run finished.
	MetricLastRun = "quality_last_run_timestamp_seconds"
)

// StatusValue is the status gauge's value: 1 pass, 0 fail, -1 skipped,
// -2 error. An alert on failures is `== 0`, on checks that could not run
// `== -2`.
func StatusValue(s Status) float64 {
	switch s {
	case StatusPass:
		return 1
	case StatusFail:
		return 0
	case StatusSkipped:
		return -1
	}
	return -2
}
