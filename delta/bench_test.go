package delta

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/parquet-go/parquet-go"
)

// bareTracking is the tracking row as a plain parquet-go struct: the
// baseline writes it with parquet-go alone (same compression, V1 pages,
// MICROS timestamps), without partitioning, stats or a log.
type bareTracking struct {
	EventID            string     `parquet:"event_id"`
	EventType          string     `parquet:"event_type"`
	EventTimestamp     time.Time  `parquet:"event_timestamp,timestamp(microsecond)"`
	ProcessedTimestamp time.Time  `parquet:"processed_timestamp,timestamp(microsecond)"`
	TaskID             int32      `parquet:"task_id"`
	AssignmentID       *int64     `parquet:"assignment_id,optional"`
	ProjectID          string     `parquet:"project_id"`
	TaskStatus         string     `parquet:"task_status"`
	TaskName           *string    `parquet:"task_name,optional"`
	AssignedTo         *int64     `parquet:"assigned_to_user_id,optional"`
	AssignedBy         *int64     `parquet:"assigned_by_user_id,optional"`
	TaskCreatedAt      *time.Time `parquet:"task_created_at,optional,timestamp(microsecond)"`
	TaskCompletedAt    *time.Time `parquet:"task_completed_at,optional,timestamp(microsecond)"`
	ClaimxTaskFull     *string    `parquet:"claimx_task_full,optional"`
	OriginalEvent      *string    `parquet:"original_event,optional"`
	ProjectData        *string    `parquet:"project_data,optional"`
	TrackingVersion    *string    `parquet:"tracking_version,optional"`
	Source             *string    `parquet:"source,optional"`
}

func toBare(r Row) bareTracking {
	ps := func(v any) *string {
		if v == nil {
			return nil
		}
		s := v.(string)
		return &s
	}
	pl := func(v any) *int64 {
		if v == nil {
			return nil
		}
		n := v.(int64)
		return &n
	}
	pt := func(v any) *time.Time {
		if v == nil {
			return nil
		}
		t := v.(time.Time)
		return &t
	}
	return bareTracking{
		EventID: r[0].(string), EventType: r[1].(string), EventTimestamp: r[2].(time.Time), ProcessedTimestamp: r[3].(time.Time),
		TaskID: r[4].(int32), AssignmentID: pl(r[5]), ProjectID: r[6].(string), TaskStatus: r[7].(string), TaskName: ps(r[8]),
		AssignedTo: pl(r[9]), AssignedBy: pl(r[10]), TaskCreatedAt: pt(r[11]), TaskCompletedAt: pt(r[12]),
		ClaimxTaskFull: ps(r[13]), OriginalEvent: ps(r[14]), ProjectData: ps(r[15]), TrackingVersion: ps(r[16]), Source: ps(r[17]),
	}
}

// rowBytes approximates the input size of a row (string bytes + 8 per
// other value) for MB/s.
func rowBytes(rows []Row) int64 {
	var n int64
	for _, r := range rows {
		for _, v := range r {
			if s, ok := v.(string); ok {
				n += int64(len(s))
			} else {
				n += 8
			}
		}
	}
	return n
}

const benchBatch = 20000

func benchRows() []Row {
	rows := make([]Row, benchBatch)
	for i := range rows {
		rows[i] = trackingRow(i)
	}
	return rows
}

// writeBare encodes the rows with parquet-go alone; with dir set it also
// lands the file on disk with an fsync, as the local store does for a data
// file.
func writeBare(b *testing.B, dir string, bare []bareTracking, k int) {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[bareTracking](&buf, parquet.Compression(&parquet.Snappy), parquet.DataPageVersion(1))
	if _, err := w.Write(bare); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	if dir == "" {
		return
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("bare-%d.parquet", k)))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// memStore is an in-memory Store, to measure the engine without disk I/O.
type memStore struct {
	mu   sync.Mutex
	objs map[string][]byte
}

func newMemStore() *memStore { return &memStore{objs: map[string][]byte{}} }

func (m *memStore) Get(_ context.Context, p string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[p]
	if !ok {
		return nil, fmt.Errorf("reading %s: %w", p, storage.ErrNotFound)
	}
	return b, nil
}

func (m *memStore) Put(_ context.Context, p string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[p] = bytes.Clone(data)
	return nil
}

func (m *memStore) PutIfAbsent(_ context.Context, p string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[p]; ok {
		return fmt.Errorf("creating %s: %w", p, storage.ErrExists)
	}
	m.objs[p] = bytes.Clone(data)
	return nil
}

func (m *memStore) List(_ context.Context, prefix string) ([]storage.ObjectInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []storage.ObjectInfo
	for p, b := range m.objs {
		if strings.HasPrefix(p, prefix) {
			out = append(out, storage.ObjectInfo{Path: p, Size: int64(len(b)), ModTime: time.Now()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func (m *memStore) Stat(_ context.Context, p string) (storage.ObjectInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[p]
	if !ok {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", p, storage.ErrNotFound)
	}
	return storage.ObjectInfo{Path: p, Size: int64(len(b)), ModTime: time.Now()}, nil
}

func (m *memStore) Delete(_ context.Context, p string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, p)
	return nil
}

func (m *memStore) URI() string { return "mem://" }

// BenchmarkAppendTracking appends 20,000 tracking rows (21 columns, ~1 KB
// each, year/month/day partitions) per op, beside bare parquet-go writing
// the same rows with the same compression (snappy, V1 pages). "mem" keeps
// files in memory (engine cost only); "disk" lands them on local disk with
// an fsync on both sides. Metrics: rows/s, MB/s of input, allocs/row; the
// ratio sub-benchmarks interleave both and report delta/bare throughput.
func BenchmarkAppendTracking(b *testing.B) {
	rows := benchRows()
	bare := make([]bareTracking, len(rows))
	for i, r := range rows {
		bare[i] = toBare(r)
	}
	inBytes := rowBytes(rows)
	report := func(b *testing.B, elapsed time.Duration) {
		n := float64(b.N) * benchBatch
		b.ReportMetric(n/elapsed.Seconds(), "rows/s")
		b.ReportMetric(float64(b.N)*float64(inBytes)/1e6/elapsed.Seconds(), "MB/s")
	}
	allocsPerRow := func(b *testing.B, f func()) {
		m0 := readMem()
		f()
		b.ReportMetric(float64(readMem()-m0)/benchBatch, "allocs/row")
	}
	for _, where := range []string{"mem", "disk"} {
		newStore := func(b *testing.B) storage.Store {
			if where == "mem" {
				return newMemStore()
			}
			st, err := storage.NewLocal(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			return st
		}
		bareDir := func(b *testing.B) string {
			if where == "mem" {
				return ""
			}
			return b.TempDir()
		}
		b.Run("bare-parquet-go/"+where, func(b *testing.B) {
			dir := bareDir(b)
			b.ResetTimer()
			start := time.Now()
			for k := 0; k < b.N; k++ {
				writeBare(b, dir, bare, k)
			}
			report(b, time.Since(start))
			allocsPerRow(b, func() { writeBare(b, dir, bare, -1) })
		})
		b.Run("delta-append/"+where, func(b *testing.B) {
			st := newStore(b)
			tbl := mustCreate(b, st, trackingSchema(b), trackingPartitions, nil, OpenOptions{CheckpointInterval: 1 << 30})
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for k := 0; k < b.N; k++ {
				if _, err := tbl.Append(ctx, AppendRequest{Rows: rows}); err != nil {
					b.Fatal(err)
				}
			}
			report(b, time.Since(start))
			allocsPerRow(b, func() {
				if _, err := tbl.Append(ctx, AppendRequest{Rows: rows}); err != nil {
					b.Fatal(err)
				}
			})
		})
		for _, par := range []int{0, 1} {
			name := "ratio/" + where
			if par == 1 {
				name += "/serial"
			}
			b.Run(name, func(b *testing.B) {
				st := newStore(b)
				dir := bareDir(b)
				tbl := mustCreate(b, st, trackingSchema(b), trackingPartitions, nil, OpenOptions{CheckpointInterval: 1 << 30, Writer: WriterOptions{Parallelism: par}})
				ctx := context.Background()
				var tBare, tDelta, cBare, cDelta time.Duration
				b.ResetTimer()
				for k := 0; k < b.N; k++ {
					s, c := time.Now(), cpuTime()
					writeBare(b, dir, bare, k)
					tBare += time.Since(s)
					cBare += cpuTime() - c
					s, c = time.Now(), cpuTime()
					if _, err := tbl.Append(ctx, AppendRequest{Rows: rows}); err != nil {
						b.Fatal(err)
					}
					tDelta += time.Since(s)
					cDelta += cpuTime() - c
				}
				// Wall-clock throughput ratio, and the ratio of process CPU
				// time, which a machine shared with other work disturbs less.
				b.ReportMetric(tBare.Seconds()/tDelta.Seconds(), "delta/bare")
				b.ReportMetric(cBare.Seconds()/cDelta.Seconds(), "delta/bare-cpu")
			})
		}
	}
}

func readMem() uint64 {
	var ms runtimeMemStats
	readMemStats(&ms)
	return ms.Mallocs
}

// buildLongLog writes a table of n commits of one add each (files are not
// needed to open a table) and, if withCheckpoint, the checkpoint every 10
// versions would leave newest: at the last multiple of 10.
func buildLongLog(b *testing.B, n int, withCheckpoint bool) *storage.Local {
	b.Helper()
	st, err := storage.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	tbl := mustCreate(b, st, trackingSchema(b), trackingPartitions, nil, OpenOptions{})
	snap := tbl.Snapshot()
	for v := 1; v < n; v++ {
		day := fmt.Sprint(1 + v%28)
		add := AddFile{
			Path:             fmt.Sprintf("year=2026/month=1/day=%s/part-00000-%08d.c000.snappy.parquet", day, v),
			PartitionValues:  map[string]*string{"year": ptr("2026"), "month": ptr("1"), "day": &day},
			Size:             123456,
			ModificationTime: int64(1767225600000 + v),
			DataChange:       true,
			Stats:            `{"numRecords":100,"minValues":{"event_id":"evt-00000000"},"maxValues":{"event_id":"evt-00000099"},"nullCount":{"event_id":0}}`,
		}
		acts := []Action{
			{CommitInfo: map[string]any{"timestamp": 1767225600000 + v, "operation": "STREAMING UPDATE"}},
			{Txn: &Txn{AppID: "claimx-" + fmt.Sprint(v%3), Version: int64(v)}},
			{Add: &add},
		}
		data, err := EncodeCommit(acts)
		if err != nil {
			b.Fatal(err)
		}
		// Plain writes: the fixture needs no fsync, and 10,000 of them
		// would dominate the run.
		if err := os.WriteFile(filepath.Join(st.Root(), filepath.FromSlash(commitPath(int64(v)))), data, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := snap.apply(int64(v), acts); err != nil {
			b.Fatal(err)
		}
		if withCheckpoint && v == (n-1)/10*10 {
			if err := writeCheckpoint(ctx, st, snap, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	}
	return st
}

// BenchmarkOpen10kCommits opens a table of 10,000 commits with and without
// a checkpoint.
func BenchmarkOpen10kCommits(b *testing.B) {
	for _, withCP := range []bool{true, false} {
		name := "no-checkpoint"
		if withCP {
			name = "with-checkpoint"
		}
		b.Run(name, func(b *testing.B) {
			st := buildLongLog(b, 10000, withCP)
			ctx := context.Background()
			b.ResetTimer()
			for k := 0; k < b.N; k++ {
				tbl, err := Open(ctx, st, OpenOptions{ReadOnly: true})
				if err != nil {
					b.Fatal(err)
				}
				if tbl.Version() != 9999 || tbl.Snapshot().NumFiles() != 9999 {
					b.Fatalf("version %d files %d", tbl.Version(), tbl.Snapshot().NumFiles())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/open")
		})
	}
}
