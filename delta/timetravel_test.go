package delta

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

// setCommitTime sets the modification time of commit v, the timestamp
// Spark's time travel uses for tables without in-commit timestamps.
func setCommitTime(t *testing.T, st *storage.Local, v int64, ts time.Time) {
	t.Helper()
	must(t, os.Chtimes(filepath.Join(st.Root(), filepath.FromSlash(commitPath(v))), ts, ts))
}

// rowsAt reads every row of the table as of version.
func rowsAt(t *testing.T, st storage.Store, version int64) (*Snapshot, []Row) {
	t.Helper()
	snap, err := LoadSnapshotAt(context.Background(), st, version)
	must(t, err)
	var rows []Row
	for _, f := range snap.Files() {
		r, err := snap.ReadFile(context.Background(), st, f)
		must(t, err)
		rows = append(rows, r...)
	}
	return snap, rows
}

func TestLoadSnapshotAt(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), nil, nil, OpenOptions{CheckpointInterval: 2})
	var want [][]Row // rows as of each version
	want = append(want, nil)
	var all []Row
	for b := 1; b <= 4; b++ {
		rows := simpleRows(string(rune('a'+b)), b)
		all = append(all, rows...)
		_, err := tbl.Append(ctx, AppendRequest{Rows: rows})
		must(t, err)
		want = append(want, append([]Row(nil), all...))
	}
	for v := int64(0); v <= 4; v++ {
		snap, rows := rowsAt(t, st, v)
		eq(t, "version", snap.Version(), v)
		if len(want[v]) > 0 {
			sameRows(t, rows, want[v])
		} else {
			eq(t, "rows at 0", len(rows), 0)
		}
	}
	// Log cleanup removed versions 0 and 1: version 2 still comes from its
	// checkpoint, 1 is gone.
	must(t, st.Delete(ctx, commitPath(0)))
	must(t, st.Delete(ctx, commitPath(1)))
	snap, rows := rowsAt(t, st, 2)
	eq(t, "from checkpoint", snap.CheckpointVersion(), int64(2))
	sameRows(t, rows, want[2])
	_, rows = rowsAt(t, st, 3)
	sameRows(t, rows, want[3])

	for _, tc := range []struct {
		version int64
		msg     string
	}{
		{1, "version 1"},
		{5, "version 5"},
		{-1, "version -1"},
	} {
		_, err := LoadSnapshotAt(ctx, st, tc.version)
		if !errors.Is(err, ErrVersionNotAvailable) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("LoadSnapshotAt(%d) = %v, want ErrVersionNotAvailable naming %q", tc.version, err, tc.msg)
		}
	}
	if _, err := LoadSnapshotAt(ctx, newLocal(t), 0); !errors.Is(err, ErrNotATable) {
		t.Errorf("empty location: %v, want ErrNotATable", err)
	}
}

func TestVersionAsOf(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), nil, nil, OpenOptions{CheckpointInterval: 2})
	for b := 1; b <= 4; b++ {
		_, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("x", 1)})
		must(t, err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for v := int64(0); v <= 4; v++ {
		setCommitTime(t, st, v, t0.Add(time.Duration(v)*10*time.Second))
	}
	// Version 3's file time goes back before version 2's: Spark makes it
	// version 2's plus 1 ms.
	setCommitTime(t, st, 3, t0.Add(5*time.Second))
	cases := []struct {
		name string
		at   time.Time
		want int64
		err  error
	}{
		{"exactly version 0", t0, 0, nil},
		{"between 1 and 2", t0.Add(15 * time.Second), 1, nil},
		{"exactly version 2", t0.Add(20 * time.Second), 2, nil},
		{"monotonized version 3", t0.Add(20*time.Second + time.Millisecond), 3, nil},
		{"just before version 4", t0.Add(40*time.Second - time.Millisecond), 3, nil},
		{"exactly the latest", t0.Add(40 * time.Second), 4, nil},
		{"before the earliest", t0.Add(-time.Millisecond), 0, ErrTimestampOutOfRange},
		{"after the latest", t0.Add(40*time.Second + time.Millisecond), 0, ErrTimestampOutOfRange},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VersionAsOf(ctx, st, tc.at)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("VersionAsOf(%s) = %d, %v; want %v", tc.at, got, err, tc.err)
				}
				return
			}
			must(t, err)
			eq(t, "version", got, tc.want)
		})
	}
	// With versions 0 and 1 cleaned up, the earliest is the checkpoint at 2.
	must(t, st.Delete(ctx, commitPath(0)))
	must(t, st.Delete(ctx, commitPath(1)))
	if v, err := VersionAsOf(ctx, st, t0.Add(15*time.Second)); !errors.Is(err, ErrTimestampOutOfRange) || !strings.Contains(err.Error(), "earliest available version 2") {
		t.Errorf("before the earliest after cleanup: %d, %v", v, err)
	}
	v, err := VersionAsOf(ctx, st, t0.Add(25*time.Second))
	must(t, err)
	eq(t, "after cleanup", v, int64(3))
}

// TestVersionAsOfInCommitTimestamps: with in-commit timestamps the
// commits' own timestamps decide, not the file times.
func TestVersionAsOfInCommitTimestamps(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	clock := time.UnixMilli(1_700_000_000_000)
	tbl := mustCreate(t, st, simpleSchema(), nil, map[string]string{"delta.enableInCommitTimestamps": "true"},
		OpenOptions{Now: func() time.Time { return clock }})
	for b := 1; b <= 3; b++ {
		clock = clock.Add(time.Minute)
		_, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("x", 1)})
		must(t, err)
	}
	// File times that contradict the ICTs are ignored.
	for v := int64(0); v <= 3; v++ {
		setCommitTime(t, st, v, time.Unix(0, 0).Add(time.Duration(3-v)*time.Hour))
	}
	times, err := CommitTimes(ctx, st)
	must(t, err)
	eq(t, "versions", len(times), 4)
	for _, ct := range times {
		eq(t, "ict used", ct.InCommitTimestamp, true)
	}
	base := time.UnixMilli(1_700_000_000_000)
	for _, tc := range []struct {
		at   time.Time
		want int64
	}{{base, 0}, {base.Add(90 * time.Second), 1}, {base.Add(3 * time.Minute), 3}} {
		got, err := VersionAsOf(ctx, st, tc.at)
		must(t, err)
		eq(t, "version as of "+tc.at.String(), got, tc.want)
	}
	if _, err := VersionAsOf(ctx, st, base.Add(4*time.Minute)); !errors.Is(err, ErrTimestampOutOfRange) {
		t.Errorf("after the latest ICT: %v", err)
	}
}
