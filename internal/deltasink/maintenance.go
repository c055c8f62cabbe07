package deltasink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/robfig/cron/v3"

	"github.com/claimx/claimx-connect/delta"
)

// Field names of the maintenance block.
const (
	FieldMaintenance     = "maintenance"
	FieldAutoCompact     = "auto_compact"
	FieldCompactMinFiles = "compact_min_files"
	FieldCompactIdle     = "compact_idle"
	FieldSchedule        = "schedule"
	FieldOptimize        = "optimize"
	FieldVacuum          = "vacuum"
	FieldRetention       = "retention"
	FieldRetentionColumn = "retention_column"
)

// Auto compaction settings.
const (
	AutoCompactTable = "table" // honour delta.autoOptimize.autoCompact
	AutoCompactOn    = "on"
	AutoCompactOff   = "off"
)

// MaintenanceConfig is what the writer does to keep its table healthy.
type MaintenanceConfig struct {
	AutoCompact     string
	CompactMinFiles int
	// CompactIdle: auto compaction waits for this long without a commit
	// (0: it does not wait), unless a partition reached the file cap.
	CompactIdle time.Duration
	// Schedule is a cron expression (or @daily, @every 6h); empty: no
	// scheduled upkeep.
	Schedule        string
	Optimize        bool
	Vacuum          bool
	Retention       string
	RetentionColumn string
	keep            delta.Retention
}

func maintenanceField() *service.ConfigField {
	return service.NewObjectField(FieldMaintenance,
		service.NewStringEnumField(FieldAutoCompact, AutoCompactTable, AutoCompactOn, AutoCompactOff).
			Description("Compact small files after commits, in the background: `table` when the table property `delta.autoOptimize.autoCompact` is `true` (or `auto`, `legacy`), `on` always, `off` never. A partition is compacted once it holds `compact_min_files` small files (under `target_file_size`) of one compaction level; the files written are one level up, so a row is rewritten about log(rows)/log(compact_min_files) times however long the partition keeps receiving small batches. Compaction commits rearrange data (`dataChange=false`): appends never conflict with them, and a compaction that loses to a concurrent removal of its files is dropped and retried after the next commit.").
			Default(AutoCompactTable),
		service.NewIntField(FieldCompactMinFiles).
			Description("How many small files of one level a partition needs before auto compaction rewrites them (Databricks' `minNumFiles` default is 50).").
			Default(50),
		service.NewDurationField(FieldCompactIdle).
			Description("Auto compaction waits until the writer has not committed for this long, so that a backlog drains at full speed and compaction takes the lulls; a partition that reaches 4 × `compact_min_files` files is compacted at once regardless, which keeps files bounded under sustained load. `0s` compacts right after each commit.").
			Default("1s"),
		service.NewStringField(FieldSchedule).
			Description("When to run the table's upkeep, as a cron expression (`0 3 * * *`) or a descriptor (`@daily`, `@every 6h`); empty runs none. Each run, in order: expires partitions past `retention`, compacts every partition (`optimize`), writes a checkpoint, deletes log files older than `delta.logRetentionDuration` (default 30 days) behind a checkpoint, and vacuums files removed longer ago than `delta.deletedFileRetentionDuration` (default 7 days; shorter is refused). Every replica may run it: a second run finds nothing left to do or loses its commit race harmlessly.").
			Example("0 3 * * *").
			Default(""),
		service.NewBoolField(FieldOptimize).
			Description("In the scheduled upkeep, compact every partition's small files (all levels) into files of about `target_file_size`.").
			Default(true),
		service.NewBoolField(FieldVacuum).
			Description("In the scheduled upkeep, delete data files no version within the retention needs.").
			Default(true),
		service.NewStringField(FieldRetention).
			Description("In the scheduled upkeep, remove data older than this (`90d`, `12w`, `18mo`, `7y`, or a Go duration) by `retention_column`, in one commit of removes: whole partitions when the column is a partition column (or `year,month,day` integer partition columns read as one date; the day the cutoff falls in is kept), whole files by their statistics otherwise (a file holding rows on both sides of the cutoff stays until all its rows expire). Vacuum deletes the files once `delta.deletedFileRetentionDuration` has passed, so time travel can still restore them until then. Empty keeps everything.").
			Example("7y").
			Default(""),
		service.NewStringField(FieldRetentionColumn).
			Description("What `retention` is measured on: a date or timestamp column, a partition column holding ISO dates, or integer partition columns such as `year,month,day`.").
			Example("year,month,day").
			Default(""),
	).Description("Keeping the table healthy: auto compaction after commits and a scheduled upkeep (retention, compaction, checkpoint, log cleanup, vacuum).").
		Advanced()
}

func parseMaintenance(conf *service.ParsedConfig) (MaintenanceConfig, error) {
	m := MaintenanceConfig{AutoCompact: AutoCompactTable, CompactMinFiles: 50, CompactIdle: time.Second, Optimize: true, Vacuum: true}
	if !conf.Contains(FieldMaintenance) {
		return m, nil
	}
	mc := conf.Namespace(FieldMaintenance)
	var err error
	if m.AutoCompact, err = mc.FieldString(FieldAutoCompact); err != nil {
		return m, err
	}
	if m.CompactMinFiles, err = mc.FieldInt(FieldCompactMinFiles); err != nil {
		return m, err
	}
	if m.CompactMinFiles < 2 {
		return m, fmt.Errorf("field %s.%s: %d; at least 2 files are needed to compact", FieldMaintenance, FieldCompactMinFiles, m.CompactMinFiles)
	}
	if m.CompactIdle, err = mc.FieldDuration(FieldCompactIdle); err != nil {
		return m, err
	}
	if m.Schedule, err = mc.FieldString(FieldSchedule); err != nil {
		return m, err
	}
	if m.Schedule != "" {
		if _, err := cron.ParseStandard(m.Schedule); err != nil {
			return m, fmt.Errorf("field %s.%s: %q: %w", FieldMaintenance, FieldSchedule, m.Schedule, err)
		}
	}
	if m.Optimize, err = mc.FieldBool(FieldOptimize); err != nil {
		return m, err
	}
	if m.Vacuum, err = mc.FieldBool(FieldVacuum); err != nil {
		return m, err
	}
	if m.Retention, err = mc.FieldString(FieldRetention); err != nil {
		return m, err
	}
	if m.RetentionColumn, err = mc.FieldString(FieldRetentionColumn); err != nil {
		return m, err
	}
	if m.Retention != "" {
		if m.keep, err = delta.ParseRetention(m.Retention); err != nil {
			return m, fmt.Errorf("field %s.%s: %w", FieldMaintenance, FieldRetention, err)
		}
		if m.RetentionColumn == "" {
			return m, fmt.Errorf("field %s.%s: a retention needs the column it is measured on", FieldMaintenance, FieldRetentionColumn)
		}
		if m.Schedule == "" {
			return m, fmt.Errorf("field %s.%s: retention runs in the scheduled upkeep; set %s.%s", FieldMaintenance, FieldRetention, FieldMaintenance, FieldSchedule)
		}
	}
	return m, nil
}

// maintainer runs a table's auto compaction (one goroutine, woken by
// commits) and its scheduled upkeep (cron), off the write path.
type maintainer struct {
	conf MaintenanceConfig
	log  *service.Logger
	tbl  *delta.Table
	uri  string
	// onCompacted tells the writer which files now hold which rows (its
	// de-duplication index need not read them again).
	onCompacted func(delta.OptimizeResult)

	kick    chan struct{}
	mu      sync.Mutex
	pending map[string]map[string]*string // partitions touched since the last compaction

	// lastCommit is when the writer last committed (Unix ns).
	lastCommit atomic.Int64
	// running is 1 while the loop handles a wake-up (tests wait for 0).
	running atomic.Int32
	cancel  context.CancelFunc
	done    chan struct{}
	cron    *cron.Cron

	mCompactions, mCompactFiles, mCompactBytes, mConflicts *service.MetricCounter
	mCompactLatency                                        *service.MetricTimer
	mFiles, mPartFilesMax                                  *service.MetricGauge
	mRuns, mErrors                                         *service.MetricCounter
	mVacuumFiles, mVacuumBytes, mLogFiles, mExpiredFiles   *service.MetricCounter
}

func newMaintainer(conf MaintenanceConfig, res *service.Resources, tbl *delta.Table, uri string, onCompacted func(delta.OptimizeResult)) *maintainer {
	m := res.Metrics()
	return &maintainer{
		conf: conf, log: res.Logger(), tbl: tbl, uri: uri, onCompacted: onCompacted,
		kick:            make(chan struct{}, 1),
		pending:         map[string]map[string]*string{},
		done:            make(chan struct{}),
		mCompactions:    m.NewCounter("delta_compactions_total"),
		mCompactFiles:   m.NewCounter("delta_compaction_files_removed_total"),
		mCompactBytes:   m.NewCounter("delta_compaction_bytes_rewritten_total"),
		mConflicts:      m.NewCounter("delta_compaction_conflicts_total"),
		mCompactLatency: m.NewTimer("delta_compaction_latency_ns"),
		mFiles:          m.NewGauge("delta_table_files"),
		mPartFilesMax:   m.NewGauge("delta_table_partition_files_max"),
		mRuns:           m.NewCounter("delta_maintenance_runs_total", "task"),
		mErrors:         m.NewCounter("delta_maintenance_errors_total", "task"),
		mVacuumFiles:    m.NewCounter("delta_vacuum_files_deleted_total"),
		mVacuumBytes:    m.NewCounter("delta_vacuum_bytes_deleted_total"),
		mLogFiles:       m.NewCounter("delta_log_files_deleted_total"),
		mExpiredFiles:   m.NewCounter("delta_retention_files_expired_total"),
	}
}

// start launches the compaction loop and the schedule.
func (m *maintainer) start() error {
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go m.compactLoop(ctx)
	if m.conf.Schedule != "" {
		m.cron = cron.New()
		if _, err := m.cron.AddFunc(m.conf.Schedule, func() { m.Upkeep(ctx) }); err != nil {
			cancel()
			<-m.done
			return fmt.Errorf("scheduling the upkeep of Delta table %s: %w", m.uri, err)
		}
		m.cron.Start()
	}
	m.updateFileGauges()
	return nil
}

// stop cancels what runs and waits for it: an interrupted compaction leaves
// only unreferenced files, which vacuum deletes.
func (m *maintainer) stop() {
	if m.cron != nil {
		<-m.cron.Stop().Done()
	}
	m.cancel()
	<-m.done
}

func (m *maintainer) autoCompactOn() bool {
	switch m.conf.AutoCompact {
	case AutoCompactOn:
		return true
	case AutoCompactOff:
		return false
	}
	return delta.AutoCompactEnabled(m.tbl.Properties())
}

// touched records the partitions a commit wrote to and wakes the
// compaction loop; it never blocks the writer.
func (m *maintainer) touched(files []delta.AddFile) {
	m.lastCommit.Store(time.Now().UnixNano())
	if len(files) == 0 {
		return
	}
	m.mu.Lock()
	for _, f := range files {
		m.pending[delta.PartitionKey(f.PartitionValues)] = f.PartitionValues
	}
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *maintainer) takePending() []map[string]*string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]map[string]*string, 0, len(m.pending))
	for _, pv := range m.pending {
		out = append(out, pv)
	}
	clear(m.pending)
	return out
}

func (m *maintainer) requeue(parts []map[string]*string) {
	m.mu.Lock()
	for _, pv := range parts {
		k := delta.PartitionKey(pv)
		if _, ok := m.pending[k]; !ok {
			m.pending[k] = pv
		}
	}
	m.mu.Unlock()
}

// compactLoop compacts the partitions commits touched, one run at a time.
// A failure of storage backs off (doubling to a minute) and keeps the
// partitions for the next run; it never reaches the write path.
func (m *maintainer) compactLoop(ctx context.Context) {
	defer close(m.done)
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		}
		m.running.Store(1)
		backoff = m.compactPending(ctx, backoff)
		m.running.Store(0)
		if ctx.Err() != nil {
			return
		}
	}
}

// compactPending is one wake-up of compactLoop; it returns the backoff for
// the next.
func (m *maintainer) compactPending(ctx context.Context, backoff time.Duration) time.Duration {
	if backoff > 0 {
		select {
		case <-ctx.Done():
			return backoff
		case <-time.After(backoff):
		}
	}
	if !m.autoCompactOn() {
		m.takePending()
		return backoff
	}
	if !m.waitForLull(ctx) {
		return backoff
	}
	parts := m.takePending()
	if len(parts) == 0 {
		return backoff
	}
	err := m.compact(ctx, delta.OptimizeOptions{Tiered: true, MinFiles: m.conf.CompactMinFiles, Partitions: parts}, "auto_compact")
	switch {
	case ctx.Err() != nil:
		return backoff
	case errors.Is(err, delta.ErrConflict):
		// Another writer removed or rewrote a file first; the next
		// commit to the partition tries again.
		m.requeue(parts)
		backoff = 0
	case err != nil:
		m.requeue(parts)
		backoff = min(max(2*backoff, time.Second), time.Minute)
		select {
		case m.kick <- struct{}{}:
		default:
		}
	default:
		backoff = 0
	}
	return backoff
}

// compactCapFactor × compact_min_files files in one partition make auto
// compaction run without waiting for a lull.
const compactCapFactor = 4

// waitForLull waits until no commit happened for CompactIdle, or a
// partition holds compactCapFactor × CompactMinFiles files; false when ctx
// ends first. Commits arriving meanwhile re-check the cap.
func (m *maintainer) waitForLull(ctx context.Context) bool {
	for {
		since := time.Since(time.Unix(0, m.lastCommit.Load()))
		if since >= m.conf.CompactIdle {
			return true
		}
		if _, perPart := m.tbl.FileCounts(); perPart >= compactCapFactor*m.conf.CompactMinFiles {
			return true
		}
		t := time.NewTimer(m.conf.CompactIdle - since)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-m.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// compact runs one Optimize and accounts for it.
func (m *maintainer) compact(ctx context.Context, opts delta.OptimizeOptions, task string) error {
	start := time.Now()
	res, err := m.tbl.Optimize(ctx, opts)
	m.mRuns.Incr(1, task)
	switch {
	case errors.Is(err, delta.ErrConflict):
		m.mConflicts.Incr(1)
		m.log.With("table", m.uri, "task", task, "reason", err.Error()).Debug("compaction lost to a concurrent change; it will run again")
		return err
	case err != nil:
		if ctx.Err() == nil {
			m.mErrors.Incr(1, task)
			m.log.With("table", m.uri, "task", task, "error", err.Error()).Warn("compaction failed; the table is unchanged and it will run again")
		}
		return err
	}
	if !res.NoOp {
		m.mCompactLatency.Timing(time.Since(start).Nanoseconds())
		m.mCompactions.Incr(1)
		m.mCompactFiles.Incr(int64(res.FilesRemoved))
		m.mCompactBytes.Incr(res.BytesAdded)
		if m.onCompacted != nil {
			m.onCompacted(res)
		}
		m.log.With("table", m.uri, "task", task, "version", res.Version, "partitions", res.Partitions, "files_removed", res.FilesRemoved, "files_added", res.FilesAdded, "bytes_rewritten", res.BytesAdded).Debug("compacted small files")
		if res.CheckpointErr != nil {
			m.log.With("table", m.uri, "version", res.Version, "error", res.CheckpointErr.Error()).Warn("checkpoint failed after a compaction; the next open makes it up")
		}
	}
	m.updateFileGauges()
	return nil
}

// expire removes what the retention policy no longer keeps, in one commit.
func (m *maintainer) expire(ctx context.Context) error {
	res, err := m.tbl.Expire(ctx, delta.ExpireOptions{Column: m.conf.RetentionColumn, Keep: m.conf.keep})
	if err != nil {
		return err
	}
	if !res.NoOp {
		m.mExpiredFiles.Incr(int64(res.Files))
		m.log.With("table", m.uri, "version", res.Version, "cutoff", res.Cutoff.Format(time.RFC3339), "partitions", len(res.Partitions), "files", res.Files, "rows", res.Rows).Info("expired data past the retention; vacuum deletes its files after delta.deletedFileRetentionDuration")
	}
	return nil
}

func (m *maintainer) updateFileGauges() {
	files, perPart := m.tbl.FileCounts()
	m.mFiles.Set(int64(files))
	m.mPartFilesMax.Set(int64(perPart))
}

// Upkeep runs the scheduled maintenance once: retention, compaction,
// checkpoint, log cleanup, vacuum. A step that fails is logged and counted;
// the next steps still run (each is safe on its own) and the next run
// tries again.
func (m *maintainer) Upkeep(ctx context.Context) {
	step := func(task string, f func() error) {
		if ctx.Err() != nil {
			return
		}
		m.mRuns.Incr(1, task)
		if err := f(); err != nil && ctx.Err() == nil {
			m.mErrors.Incr(1, task)
			m.log.With("table", m.uri, "task", task, "error", err.Error()).Warn("table upkeep step failed; the next run tries again")
		}
	}
	if m.conf.Retention != "" {
		step("retention", func() error { return m.expire(ctx) })
	}
	if m.conf.Optimize {
		// compact counts its own run and errors.
		_ = m.compact(ctx, delta.OptimizeOptions{}, "optimize")
	}
	step("checkpoint", func() error { return m.tbl.Checkpoint(ctx) })
	step("log_cleanup", func() error {
		del, err := m.tbl.CleanupLog(ctx, delta.LogCleanupOptions{})
		m.mLogFiles.Incr(int64(len(del)))
		if len(del) > 0 {
			m.log.With("table", m.uri, "files", len(del)).Info("deleted expired log files")
		}
		return err
	})
	if m.conf.Vacuum {
		step("vacuum", func() error {
			res, err := m.tbl.Vacuum(ctx, delta.VacuumOptions{})
			m.mVacuumFiles.Incr(int64(len(res.Deleted)))
			m.mVacuumBytes.Incr(res.Bytes)
			if len(res.Deleted) > 0 {
				m.log.With("table", m.uri, "files", len(res.Deleted), "bytes", res.Bytes).Info("vacuumed unreferenced data files")
			}
			return err
		})
	}
	m.updateFileGauges()
}
