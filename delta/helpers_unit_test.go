package delta

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestHiveEscapeAndPaths(t *testing.T) {
	tests := []struct{ value, dir, logPath string }{
		{"plain", "p=plain/", "p=plain/f.parquet"},
		{"a/b", "p=a%2Fb/", "p=a%252Fb/f.parquet"},
		{"a b", "p=a b/", "p=a%20b/f.parquet"},
		{"x=y:z", "p=x%3Dy%3Az/", "p=x%253Dy%253Az/f.parquet"},
		{"100%", "p=100%25/", "p=100%2525/f.parquet"},
		{"q?#*'\"[]^{\\", "p=q%3F%23%2A%27%22%5B%5D%5E%7B%5C/", ""},
		{"tab\there\x7f", "p=tab%09here%7F/", ""},
		{"été", "p=été/", "p=%C3%A9t%C3%A9/f.parquet"},
	}
	for _, tc := range tests {
		v := tc.value
		dir := partitionDir([]string{"p"}, []*string{&v})
		eq(t, "dir "+tc.value, dir, tc.dir)
		if tc.logPath != "" {
			eq(t, "log path "+tc.value, encodeLogPath(dir+"f.parquet"), tc.logPath)
			eq(t, "decoded", pathKey(encodeLogPath(dir+"f.parquet")), dir+"f.parquet")
		}
	}
	eq(t, "null", partitionDir([]string{"p", "q"}, []*string{nil, ptr("1")}), "p=__HIVE_DEFAULT_PARTITION__/q=1/")
}

func TestStatsStringTruncation(t *testing.T) {
	long := strings.Repeat("a", 40)
	tests := []struct {
		name, in, min, max string
	}{
		{"short kept", "abc", "abc", "abc"},
		{"exactly 32", strings.Repeat("b", 32), strings.Repeat("b", 32), strings.Repeat("b", 32)},
		// Delta Spark's bound: the prefix and U+007F (checked on a
		// Spark-written table's stats).
		{"long ascii", long, long[:32], long[:32] + "\x7f"},
		{"cut char at or above U+007F", strings.Repeat("a", 32) + "\x7f", strings.Repeat("a", 32), strings.Repeat("a", 32) + "\uFFFD"},
		{"multibyte counted as characters", strings.Repeat("é", 40), strings.Repeat("é", 32), strings.Repeat("é", 32) + "\uFFFD"},
		{"cut char above tie-breaker moves the cut", strings.Repeat("a", 32) + "\U0001F600" + "b", strings.Repeat("a", 32), strings.Repeat("a", 32) + "\U0001F600" + "\uFFFD"},
		{"only high chars left keeps all", strings.Repeat("a", 32) + "\U0001F600\uFFFF", strings.Repeat("a", 32), strings.Repeat("a", 32) + "\U0001F600\uFFFF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mn, mx := truncateMin(tc.in, 32), truncateMax(tc.in, 32)
			eq(t, "min", mn, tc.min)
			eq(t, "max", mx, tc.max)
			if mn > tc.in || mx < tc.in {
				t.Errorf("bounds do not contain the value: %q <= %q <= %q", mn, tc.in, mx)
			}
			if !utf8.ValidString(mn) || !utf8.ValidString(mx) {
				t.Error("invalid UTF-8")
			}
		})
	}
}

func TestParseLogName(t *testing.T) {
	tests := []struct {
		path        string
		kind        logFileKind
		version     int64
		part, parts int
	}{
		{"_delta_log/00000000000000000010.json", logCommit, 10, 0, 0},
		{"_delta_log/00000000000000000010.checkpoint.parquet", logCheckpoint, 10, 0, 0},
		{"_delta_log/00000000000000000010.checkpoint.0000000001.0000000002.parquet", logCheckpointPart, 10, 1, 2},
		{"_delta_log/00000000000000000010.checkpoint.0000000003.0000000002.parquet", logOther, 10, 0, 0},
		{"_delta_log/00000000000000000010.crc", logOther, 10, 0, 0},
		{"_delta_log/_last_checkpoint", logOther, 0, 0, 0},
		{"_delta_log/0000000000000000001x.json", logOther, 0, 0, 0},
	}
	for _, tc := range tests {
		lf := parseLogName(tc.path)
		if lf.kind != tc.kind || (tc.kind != logOther && (lf.version != tc.version || lf.part != tc.part || lf.parts != tc.parts)) {
			t.Errorf("%s: %+v", tc.path, lf)
		}
	}
}

func TestParseInterval(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"interval 7 days", 7 * 24 * time.Hour, false},
		{"interval 1 week", 7 * 24 * time.Hour, false},
		{"30 days", 30 * 24 * time.Hour, false},
		{"interval 2 hours 30 minutes", 150 * time.Minute, false},
		{"168h", 168 * time.Hour, false},
		{"interval seven days", 0, true},
		{"interval 3 fortnights", 0, true},
	}
	for _, tc := range tests {
		d, err := parseInterval(tc.in)
		if (err != nil) != tc.err || d != tc.want {
			t.Errorf("%q: %v %v", tc.in, d, err)
		}
	}
}

func TestMultiPartCheckpointRead(t *testing.T) {
	// Split a checkpoint's actions across two part files, as Spark's
	// multi-part checkpoints do, and read the table from them alone.
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), []string{"part"}, nil, OpenOptions{CheckpointInterval: 100})
	for b := 1; b <= 3; b++ {
		appendSimple(t, tbl, b, 3, &Txn{AppID: "m", Version: int64(b)})
	}
	_, want := readAll(t, st)
	rows := checkpointRows(tbl.Snapshot(), time.Now(), time.Hour)
	p1, err := encodeCheckpoint(rows[:3])
	must(t, err)
	p2, err := encodeCheckpoint(rows[3:])
	must(t, err)
	ctx := t.Context()
	must(t, st.Put(ctx, "_delta_log/00000000000000000003.checkpoint.0000000001.0000000002.parquet", p1))
	must(t, st.Put(ctx, "_delta_log/00000000000000000003.checkpoint.0000000002.0000000002.parquet", p2))
	must(t, st.Put(ctx, lastCheckpointPath, []byte(`{"version":3,"size":9,"parts":2}`)))
	for v := int64(0); v <= 3; v++ {
		must(t, st.Delete(ctx, commitPath(v)))
	}
	snap, got := readAll(t, st)
	eq(t, "checkpoint", snap.CheckpointVersion(), int64(3))
	v, _ := snap.TxnVersion("m")
	eq(t, "txn", v, int64(3))
	sameRows(t, got, want)
}
