package delta

import (
	"context"
	"encoding/json"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// checkStats recomputes a file's statistics from its rows and compares them
// with the add action's stats string.
func checkStats(t testing.TB, sc *Schema, partCols []string, add AddFile, rows []Row, numIndexed int) {
	t.Helper()
	st := parseStats(t, add.Stats)
	if n, _ := st["numRecords"].(json.Number).Int64(); n != int64(len(rows)) {
		t.Fatalf("%s: numRecords %v, file has %d rows", add.Path, st["numRecords"], len(rows))
	}
	mins, _ := st["minValues"].(map[string]any)
	maxs, _ := st["maxValues"].(map[string]any)
	nulls, _ := st["nullCount"].(map[string]any)
	isPart := map[string]bool{}
	for _, p := range partCols {
		isPart[p] = true
	}
	indexed := 0
	for ci, f := range sc.fields {
		if isPart[f.Name] {
			if _, ok := nulls[f.Name]; ok {
				t.Errorf("%s: partition column %q has stats", add.Path, f.Name)
			}
			continue
		}
		indexed++
		if indexed > numIndexed {
			if _, ok := nulls[f.Name]; ok {
				t.Errorf("%s: column %q beyond the indexed columns has stats", add.Path, f.Name)
			}
			continue
		}
		var vals []any
		var nn int64
		for _, r := range rows {
			if r[ci] == nil {
				nn++
			} else {
				vals = append(vals, r[ci])
			}
		}
		if got, _ := nulls[f.Name].(json.Number).Int64(); got != nn {
			t.Errorf("%s: nullCount.%s = %v, want %d", add.Path, f.Name, nulls[f.Name], nn)
		}
		k := sc.types[ci].Kind
		if len(vals) == 0 || k == KindBoolean || k == KindBinary {
			if _, ok := mins[f.Name]; ok {
				t.Errorf("%s: minValues.%s present for an all-null or %s column", add.Path, f.Name, k)
			}
			continue
		}
		lo, hi := vals[0], vals[0]
		for _, v := range vals[1:] {
			if less(v, lo) {
				lo = v
			}
			if less(hi, v) {
				hi = v
			}
		}
		wantMin, wantMax := statRender(k, lo, false), statRender(k, hi, true)
		if !statEqual(mins[f.Name], wantMin) {
			t.Errorf("%s: minValues.%s = %v, want %v", add.Path, f.Name, mins[f.Name], wantMin)
		}
		if !statEqual(maxs[f.Name], wantMax) {
			t.Errorf("%s: maxValues.%s = %v, want %v", add.Path, f.Name, maxs[f.Name], wantMax)
		}
	}
}

func less(a, b any) bool {
	switch x := a.(type) {
	case string:
		return x < b.(string)
	case int64:
		return x < b.(int64)
	case int32:
		return x < b.(int32)
	case int16:
		return x < b.(int16)
	case int8:
		return x < b.(int8)
	case float32:
		return x < b.(float32)
	case float64:
		return x < b.(float64)
	case time.Time:
		return x.Before(b.(time.Time))
	case Decimal:
		return new(big.Rat).SetFrac(x.Unscaled, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(x.Scale)), nil)).Cmp(
			new(big.Rat).SetFrac(b.(Decimal).Unscaled, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(b.(Decimal).Scale)), nil))) < 0
	}
	panic("less: unsupported")
}

// statRender is the expected JSON value (as a string) of a bound.
func statRender(k Kind, v any, isMax bool) string {
	switch x := v.(type) {
	case string:
		if isMax {
			return truncateMax(x, 32)
		}
		return truncateMin(x, 32)
	case time.Time:
		if k == KindDate {
			return x.Format("2006-01-02")
		}
		ms := x.Truncate(time.Millisecond)
		if isMax && !ms.Equal(x) {
			ms = ms.Add(time.Millisecond)
		}
		return ms.UTC().Format("2006-01-02T15:04:05.000Z")
	case Decimal:
		return x.String()
	default:
		return norm(v)[strings.Index(norm(v), ":")+1:]
	}
}

func statEqual(got any, want string) bool {
	switch g := got.(type) {
	case string:
		return g == want
	case json.Number:
		a, ok1 := new(big.Rat).SetString(string(g))
		b, ok2 := new(big.Rat).SetString(strings.TrimLeft(want, "fd"))
		if !ok1 || !ok2 {
			return false
		}
		if a.Cmp(b) == 0 {
			return true
		}
		// float32 bounds print with 32-bit precision.
		fa, _ := a.Float32()
		fb, _ := b.Float32()
		return fa == fb
	}
	return false
}

func TestRoundtrip(t *testing.T) {
	type batch struct{ n int }
	tests := []struct {
		name     string
		parts    []string
		props    map[string]string
		writer   WriterOptions
		batches  int
		rows     int
		interval int
		indexed  int
	}{
		{name: "unpartitioned snappy", batches: 3, rows: 500, interval: 10, indexed: 32},
		{name: "partitioned with escaping and nulls, zstd", parts: []string{"region"}, writer: WriterOptions{Compression: "zstd"}, batches: 4, rows: 300, interval: 2, indexed: 32},
		{name: "small files and row groups", parts: []string{"region"}, writer: WriterOptions{TargetFileSize: 8 << 10, RowGroupBytes: 4 << 10}, batches: 2, rows: 2000, interval: 1, indexed: 32},
		{name: "dataSkippingNumIndexedCols", props: map[string]string{"delta.dataSkippingNumIndexedCols": "5"}, batches: 1, rows: 100, interval: 10, indexed: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := newLocal(t)
			sc := wideSchema()
			tbl := mustCreate(t, st, sc, tc.parts, tc.props, OpenOptions{CheckpointInterval: tc.interval, Writer: tc.writer})
			r := rand.New(rand.NewPCG(1, 2))
			var all []Row
			nfiles := 0
			for b := 0; b < tc.batches; b++ {
				rows := make([]Row, tc.rows)
				for i := range rows {
					rows[i] = wideRow(r, len(all)+i)
				}
				all = append(all, rows...)
				res, err := tbl.Append(ctx, AppendRequest{Rows: rows, Txns: []Txn{{AppID: "app-1", Version: int64(100 + b)}}})
				must(t, err)
				must(t, res.CheckpointErr)
				eq(t, "version", res.Version, int64(b+1))
				eq(t, "rows", res.Rows, int64(tc.rows))
				nfiles += len(res.Files)
				if tc.writer.TargetFileSize > 0 && len(res.Files) <= len(wideRegions) {
					t.Errorf("a small target file size must split partitions into several files, got %d files", len(res.Files))
				}
			}
			snap, got := readAll(t, st)
			eq(t, "version", snap.Version(), int64(tc.batches))
			if !snap.Schema().Equal(sc) {
				t.Fatalf("schema %s, want %s", snap.Schema(), sc)
			}
			eq(t, "files", snap.NumFiles(), nfiles)
			v, ok := snap.TxnVersion("app-1")
			eq(t, "txn found", ok, true)
			eq(t, "txn", v, int64(100+tc.batches-1))
			if tc.interval <= tc.batches {
				if snap.CheckpointVersion() < 0 {
					t.Errorf("no checkpoint read although interval %d <= %d versions", tc.interval, tc.batches)
				}
			}
			sameRows(t, got, all)
			for _, f := range snap.Files() {
				rows, err := snap.ReadFile(ctx, st, f)
				must(t, err)
				checkStats(t, sc, tc.parts, f, rows, tc.indexed)
				if !f.DataChange {
					t.Errorf("%s: dataChange false on an append", f.Path)
				}
				if len(tc.parts) > 0 {
					pv := f.PartitionValues["region"]
					want := "region=" + hiveDefaultPartition + "/"
					if pv != nil {
						want = "region=" + hiveEscape(*pv) + "/"
					}
					if !strings.HasPrefix(pathKey(f.Path), want) {
						t.Errorf("file %s (decoded %s) not under %s", f.Path, pathKey(f.Path), want)
					}
				}
			}
			d := tbl.Describe()
			eq(t, "describe rows", d.NumRows, int64(len(all)))
			eq(t, "describe exact", d.RowsExact, true)
		})
	}
}

func TestTrackingTableRoundtrip(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	sc := trackingSchema(t)
	tbl := mustCreate(t, st, sc, trackingPartitions, map[string]string{"delta.enableChangeDataFeed": "true"}, OpenOptions{})
	eq(t, "writer version with CDF", tbl.Snapshot().Protocol().MinWriterVersion, 4)
	rows := make([]Row, 5000)
	for i := range rows {
		rows[i] = trackingRow(i)
	}
	_, err := tbl.Append(ctx, AppendRequest{Rows: rows, Operation: OperationStreamingUpdate, OperationParameters: map[string]string{"outputMode": "Append"}})
	must(t, err)
	snap, got := readAll(t, st)
	sameRows(t, got, rows)
	days := map[string]bool{}
	for _, f := range snap.Files() {
		days[*f.PartitionValues["year"]+"-"+*f.PartitionValues["month"]+"-"+*f.PartitionValues["day"]] = true
		if !strings.HasPrefix(f.Path, "year=2026/month=1/day=") {
			t.Errorf("unexpected path %s", f.Path)
		}
	}
	if len(days) < 2 {
		t.Errorf("want rows over several days, got %v", days)
	}
	h, err := tbl.History(ctx, 0)
	must(t, err)
	eq(t, "history", len(h), 2)
	eq(t, "op", h[0].Operation, OperationStreamingUpdate)
	eq(t, "op0", h[1].Operation, "CREATE TABLE")
	eq(t, "engine", h[0].CommitInfo["engineInfo"], any(EngineInfo))
}
