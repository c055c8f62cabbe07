package delta

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

const (
	childEnv      = "CLAIMX_DELTA_CHILD"
	childDirEnv   = "CLAIMX_DELTA_CHILD_DIR"
	procBatches   = 6
	procRowsBatch = 25
)

func simpleSchema() *Schema {
	return MustSchema(
		Field{Name: "id", Type: "string"},
		Field{Name: "proc", Type: "integer"},
		Field{Name: "batch", Type: "integer"},
		Field{Name: "part", Type: "string", Nullable: true},
	)
}

// runChild is the body of one appending process.
func runChild(t *testing.T, proc int, dir string) {
	ctx := context.Background()
	st, err := storage.NewLocal(dir)
	must(t, err)
	tbl, err := Open(ctx, st, OpenOptions{CheckpointInterval: 4, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 50 * time.Millisecond, MaxCommitAttempts: 100})
	must(t, err)
	app := fmt.Sprintf("proc-%d", proc)
	for b := 0; b < procBatches; b++ {
		if tbl.TxnApplied(app, int64(b)) {
			continue
		}
		rows := make([]Row, procRowsBatch)
		for i := range rows {
			rows[i] = Row{fmt.Sprintf("p%d-b%d-r%d", proc, b, i), int32(proc), int32(b), []any{"even", "odd"}[i%2]}
		}
		if _, err := tbl.Append(ctx, AppendRequest{Rows: rows, Txns: []Txn{{AppID: app, Version: int64(b)}}}); err != nil {
			t.Fatalf("proc %d batch %d: %v", proc, b, err)
		}
	}
}

// TestConcurrentProcesses has four OS processes append to one local table
// at once: versions must be contiguous and every row present exactly once.
func TestConcurrentProcesses(t *testing.T) {
	if p := os.Getenv(childEnv); p != "" {
		n, _ := strconv.Atoi(p)
		runChild(t, n, os.Getenv(childDirEnv))
		return
	}
	const procs = 4
	st := newLocal(t)
	mustCreate(t, st, simpleSchema(), []string{"part"}, nil, OpenOptions{})
	runChildren(t, "TestConcurrentProcesses", procs, childEnv, childDirEnv, st.Root())
	// Versions 0..N contiguous, nothing else.
	objs, err := st.List(context.Background(), "_delta_log/")
	must(t, err)
	var versions []int64
	for _, o := range objs {
		if lf := parseLogName(o.Path); lf.kind == logCommit {
			versions = append(versions, lf.version)
		}
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	want := int64(procs * procBatches)
	eq(t, "commits", len(versions), int(want+1))
	for i, v := range versions {
		if v != int64(i) {
			t.Fatalf("versions not contiguous: %v", versions)
		}
	}
	snap, rows := readAll(t, st)
	eq(t, "version", snap.Version(), want)
	eq(t, "rows", len(rows), procs*procBatches*procRowsBatch)
	seen := map[string]int{}
	for _, r := range rows {
		seen[r[0].(string)]++
	}
	for p := 0; p < procs; p++ {
		for b := 0; b < procBatches; b++ {
			for i := 0; i < procRowsBatch; i++ {
				if n := seen[fmt.Sprintf("p%d-b%d-r%d", p, b, i)]; n != 1 {
					t.Fatalf("row p%d-b%d-r%d present %d times", p, b, i, n)
				}
			}
		}
		v, ok := snap.TxnVersion(fmt.Sprintf("proc-%d", p))
		if !ok || v != procBatches-1 {
			t.Errorf("txn proc-%d = %d %v", p, v, ok)
		}
	}
	if snap.CheckpointVersion() < 4 {
		t.Errorf("no checkpoint written by the concurrent writers (newest %d)", snap.CheckpointVersion())
	}
}

// runChildren runs the test binary's test `name` as procs OS processes at
// once, each with idEnv set to its index and dirEnv to dir, and returns
// their output once all have exited successfully.
func runChildren(t *testing.T, name string, procs int, idEnv, dirEnv, dir string) []string {
	t.Helper()
	cmds := make([]*exec.Cmd, procs)
	outs := make([]*strings.Builder, procs)
	for p := 0; p < procs; p++ {
		cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), idEnv+"="+strconv.Itoa(p), dirEnv+"="+dir)
		outs[p] = &strings.Builder{}
		cmd.Stdout, cmd.Stderr = outs[p], outs[p]
		must(t, cmd.Start())
		cmds[p] = cmd
	}
	res := make([]string, procs)
	for p, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", p, err, outs[p])
		}
		res[p] = outs[p].String()
	}
	return res
}

// TestConflicts: a losing writer must read the winners and either retry
// (blind appends) or fail without committing (conflicts).
func TestConflicts(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		winner   func(t *testing.T, w *Table)
		loser    AppendRequest
		conflict bool
	}{
		{
			name: "blind appends renumber",
			winner: func(t *testing.T, w *Table) {
				_, err := w.Append(ctx, AppendRequest{Rows: []Row{{"w", int32(0), int32(0), nil}}})
				must(t, err)
			},
			loser: AppendRequest{Rows: []Row{{"l", int32(1), int32(0), nil}}},
		},
		{
			name: "different appIds renumber",
			winner: func(t *testing.T, w *Table) {
				_, err := w.Append(ctx, AppendRequest{Rows: []Row{{"w", int32(0), int32(0), nil}}, Txns: []Txn{{AppID: "a", Version: 1}}})
				must(t, err)
			},
			loser: AppendRequest{Rows: []Row{{"l", int32(1), int32(0), nil}}, Txns: []Txn{{AppID: "b", Version: 1}}},
		},
		{
			name: "same appId conflicts",
			winner: func(t *testing.T, w *Table) {
				_, err := w.Append(ctx, AppendRequest{Rows: []Row{{"w", int32(0), int32(0), nil}}, Txns: []Txn{{AppID: "a", Version: 1}}})
				must(t, err)
			},
			loser:    AppendRequest{Rows: []Row{{"l", int32(1), int32(0), nil}}, Txns: []Txn{{AppID: "a", Version: 1}}},
			conflict: true,
		},
		{
			name: "metadata change conflicts",
			winner: func(t *testing.T, w *Table) {
				wide := MustSchema(append(simpleSchema().Fields(), Field{Name: "extra", Type: "long", Nullable: true})...)
				_, err := w.Append(ctx, AppendRequest{Schema: wide, Mode: SchemaMerge, Rows: []Row{{"w", int32(0), int32(0), nil, int64(1)}}})
				must(t, err)
			},
			loser:    AppendRequest{Rows: []Row{{"l", int32(1), int32(0), nil}}},
			conflict: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newLocal(t)
			mustCreate(t, st, simpleSchema(), nil, nil, OpenOptions{})
			loser, err := Open(ctx, st, OpenOptions{})
			must(t, err)
			winner, err := Open(ctx, st, OpenOptions{})
			must(t, err)
			tc.winner(t, winner)
			res, err := loser.Append(ctx, tc.loser)
			if tc.conflict {
				if !errors.Is(err, ErrConflict) {
					t.Fatalf("want ErrConflict, got %v", err)
				}
				_, err := st.Get(ctx, commitPath(2))
				if !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("a conflicting commit was written: %v", err)
				}
				return
			}
			must(t, err)
			eq(t, "renumbered version", res.Version, int64(2))
			eq(t, "attempts", res.Attempts, 2)
			_, rows := readAll(t, st)
			eq(t, "rows", len(rows), 2)
		})
	}
}

func TestCommitAttemptsBounded(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	mustCreate(t, st, simpleSchema(), nil, nil, OpenOptions{})
	tbl, err := Open(ctx, st, OpenOptions{MaxCommitAttempts: 3, RetryBaseDelay: time.Microsecond})
	must(t, err)
	// A store where every commit version is already taken by an empty
	// (blind) commit: the writer must give up after 3 attempts.
	racing := &racingStore{Store: st}
	tbl.store = racing
	_, err = tbl.Append(ctx, AppendRequest{Rows: []Row{{"x", int32(0), int32(0), nil}}})
	if !errors.Is(err, ErrTooManyAttempts) {
		t.Fatalf("want ErrTooManyAttempts, got %v", err)
	}
	eq(t, "attempts", racing.lost, 3)
}

// racingStore makes another "writer" win every commit version just before
// ours.
type racingStore struct {
	storage.Store
	lost int
}

func (r *racingStore) PutIfAbsent(ctx context.Context, p string, data []byte) error {
	if strings.HasPrefix(p, "_delta_log/") && strings.HasSuffix(p, ".json") {
		r.lost++
		blind := `{"commitInfo":{"timestamp":1,"operation":"WRITE"}}` + "\n"
		if err := r.Store.PutIfAbsent(ctx, p, []byte(blind)); err != nil {
			return err
		}
	}
	return r.Store.PutIfAbsent(ctx, p, data)
}
