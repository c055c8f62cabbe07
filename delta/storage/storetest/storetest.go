// Package storetest is a backend-agnostic conformance suite for
// storage.Store implementations. Every backend runs it: the local one always,
// the cloud ones against an emulator (or a real account) when one is set up.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

// Writers is the number of concurrent PutIfAbsent callers in the race test.
const Writers = 8

// RunStoreConformance checks Get/Put/PutIfAbsent/List/Stat/Delete semantics
// of s. The store must be rooted at an empty location that the suite may fill
// (use a fresh, uniquely named prefix per run).
func RunStoreConformance(t *testing.T, s storage.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	if got, err := s.List(ctx, ""); err != nil {
		t.Fatalf("List(\"\") on a fresh store: %v", err)
	} else if len(got) != 0 {
		t.Fatalf("store %s is not empty at the start (%d objects, first %q): give the suite a fresh root", s.URI(), len(got), got[0].Path)
	}
	if s.URI() == "" {
		t.Errorf("URI() is empty")
	}

	t.Run("Missing", func(t *testing.T) { testMissing(ctx, t, s) })
	t.Run("PutGetStat", func(t *testing.T) { testPutGetStat(ctx, t, s) })
	t.Run("Overwrite", func(t *testing.T) { testOverwrite(ctx, t, s) })
	t.Run("PutIfAbsent", func(t *testing.T) { testPutIfAbsent(ctx, t, s) })
	t.Run("SpecialNames", func(t *testing.T) { testSpecialNames(ctx, t, s) })
	t.Run("List", func(t *testing.T) { testList(ctx, t, s) })
	t.Run("Delete", func(t *testing.T) { testDelete(ctx, t, s) })
	t.Run("ConcurrentPutIfAbsent", func(t *testing.T) { testConcurrentPutIfAbsent(ctx, t, s) })
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random bytes: %v", err)
	}
	return b
}

// mustWrapPath checks err wraps want and names the object path.
func mustWrapPath(t *testing.T, op string, err, want error, path string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s(%q): got nil error, want one wrapping %v", op, path, want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s(%q): error %q does not wrap %v", op, path, err, want)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("%s(%q): error %q does not name the path", op, path, err)
	}
}

func testMissing(ctx context.Context, t *testing.T, s storage.Store) {
	const p = "missing/_delta_log/00000000000000000000.json"
	_, err := s.Get(ctx, p)
	mustWrapPath(t, "Get", err, storage.ErrNotFound, p)
	_, err = s.Stat(ctx, p)
	mustWrapPath(t, "Stat", err, storage.ErrNotFound, p)
	err = s.Delete(ctx, p)
	mustWrapPath(t, "Delete", err, storage.ErrNotFound, p)
	if errors.Is(err, storage.ErrExists) {
		t.Errorf("Delete of a missing object wraps ErrExists too: %v", err)
	}
	got, err := s.List(ctx, "missing/")
	if err != nil {
		t.Fatalf("List of a missing prefix: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("List of a missing prefix returned %v", got)
	}
}

func testPutGetStat(ctx context.Context, t *testing.T, s storage.Store) {
	cases := map[string][]byte{
		"pgs/small.json":   []byte("{\"add\":{}}\n"),
		"pgs/empty":        {},
		"pgs/binary.bin":   randomBytes(t, 300*1024+7),
		"pgs/deep/a/b/c/d": []byte("deep"),
	}
	before := time.Now().Add(-time.Hour)
	for p, data := range cases {
		if err := s.Put(ctx, p, data); err != nil {
			t.Fatalf("Put(%q): %v", p, err)
		}
		got, err := s.Get(ctx, p)
		if err != nil {
			t.Fatalf("Get(%q): %v", p, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("Get(%q): %d bytes differ from the %d written", p, len(got), len(data))
		}
		info, err := s.Stat(ctx, p)
		if err != nil {
			t.Fatalf("Stat(%q): %v", p, err)
		}
		if info.Path != p {
			t.Errorf("Stat(%q).Path = %q", p, info.Path)
		}
		if info.Size != int64(len(data)) {
			t.Errorf("Stat(%q).Size = %d, want %d", p, info.Size, len(data))
		}
		if info.ModTime.Before(before) || info.ModTime.After(time.Now().Add(time.Hour)) {
			t.Errorf("Stat(%q).ModTime = %v, not within an hour of now", p, info.ModTime)
		}
	}
}

func testOverwrite(ctx context.Context, t *testing.T, s storage.Store) {
	const p = "overwrite/_last_checkpoint"
	if err := s.Put(ctx, p, []byte(`{"version":10,"size":3}`)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	second := []byte(`{"version":20,"size":12345}`)
	if err := s.Put(ctx, p, second); err != nil {
		t.Fatalf("Put over an existing object: %v", err)
	}
	got, err := s.Get(ctx, p)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !bytes.Equal(got, second) {
		t.Fatalf("Get after overwrite = %q, want %q", got, second)
	}
}

func testPutIfAbsent(ctx context.Context, t *testing.T, s storage.Store) {
	const p = "pia/_delta_log/00000000000000000000.json"
	first := []byte("{\"commitInfo\":{\"writer\":\"first\"}}\n")
	if err := s.PutIfAbsent(ctx, p, first); err != nil {
		t.Fatalf("PutIfAbsent on a new path: %v", err)
	}
	err := s.PutIfAbsent(ctx, p, []byte("{\"commitInfo\":{\"writer\":\"second\"}}\n"))
	mustWrapPath(t, "PutIfAbsent", err, storage.ErrExists, p)
	if errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PutIfAbsent conflict also wraps ErrNotFound: %v", err)
	}
	// The same bytes again are still a conflict: the object exists.
	err = s.PutIfAbsent(ctx, p, first)
	mustWrapPath(t, "PutIfAbsent (same bytes)", err, storage.ErrExists, p)
	got, err := s.Get(ctx, p)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !bytes.Equal(got, first) {
		t.Fatalf("PutIfAbsent conflict changed the object: %q, want %q", got, first)
	}
	// An object written by Put blocks PutIfAbsent too.
	const q = "pia/_delta_log/00000000000000000001.json"
	if err := s.Put(ctx, q, []byte("put")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	mustWrapPath(t, "PutIfAbsent over Put", s.PutIfAbsent(ctx, q, []byte("pia")), storage.ErrExists, q)
	// After a delete the path is free again.
	if err := s.Delete(ctx, q); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.PutIfAbsent(ctx, q, []byte("again")); err != nil {
		t.Fatalf("PutIfAbsent after Delete: %v", err)
	}
	if got, err := s.Get(ctx, q); err != nil || string(got) != "again" {
		t.Fatalf("Get after PutIfAbsent = %q, %v", got, err)
	}
	// Empty content is a valid object.
	const e = "pia/empty"
	if err := s.PutIfAbsent(ctx, e, nil); err != nil {
		t.Fatalf("PutIfAbsent of empty content: %v", err)
	}
	if info, err := s.Stat(ctx, e); err != nil || info.Size != 0 {
		t.Fatalf("Stat of empty object = %+v, %v", info, err)
	}
}

func testSpecialNames(ctx context.Context, t *testing.T, s storage.Store) {
	names := []string{
		// Hive-escaped partition values, as a Delta writer makes them.
		"special/ts=2024-01-01 10%3A00%3A00/part-00000-1b2c.c000.snappy.parquet",
		"special/name=a+b&c=d/x.parquet",
		"special/city=Zürich/é.parquet",
		"special/q=what?/hash#frag.json",
	}
	for i, p := range names {
		data := []byte(fmt.Sprintf("object %d", i))
		if err := s.PutIfAbsent(ctx, p, data); err != nil {
			t.Fatalf("PutIfAbsent(%q): %v", p, err)
		}
		got, err := s.Get(ctx, p)
		if err != nil {
			t.Fatalf("Get(%q): %v", p, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("Get(%q) = %q, want %q", p, got, data)
		}
		if _, err := s.Stat(ctx, p); err != nil {
			t.Fatalf("Stat(%q): %v", p, err)
		}
	}
	got, err := s.List(ctx, "special/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := append([]string(nil), names...)
	sort.Strings(want)
	if g := paths(got); !equal(g, want) {
		t.Fatalf("List(special/) = %q, want %q", g, want)
	}
}

func paths(infos []storage.ObjectInfo) []string {
	out := make([]string, len(infos))
	for i, o := range infos {
		out[i] = o.Path
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func testList(ctx context.Context, t *testing.T, s storage.Store) {
	objects := map[string]string{
		"list/_delta_log/00000000000000000000.json":               "v0",
		"list/_delta_log/00000000000000000001.json":               "v1-longer",
		"list/_delta_log/00000000000000000010.checkpoint.parquet": "cp",
		"list/_delta_log/_last_checkpoint":                        "{}",
		"list/date=2024-01-01/part-0.parquet":                     "p0",
		"list/date=2024-01-02/part-1.parquet":                     "p1",
		"list/part-2.parquet":                                     "p2",
		"list2/other":                                             "x",
	}
	for p, d := range objects {
		if err := s.Put(ctx, p, []byte(d)); err != nil {
			t.Fatalf("Put(%q): %v", p, err)
		}
	}
	check := func(prefix string, want []string) {
		t.Helper()
		got, err := s.List(ctx, prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		if g := paths(got); !equal(g, want) {
			t.Fatalf("List(%q) = %q, want %q", prefix, g, want)
		}
		for _, o := range got {
			if o.Size != int64(len(objects[o.Path])) {
				t.Errorf("List(%q): %s has size %d, want %d", prefix, o.Path, o.Size, len(objects[o.Path]))
			}
			if o.ModTime.IsZero() {
				t.Errorf("List(%q): %s has no modification time", prefix, o.Path)
			}
		}
	}
	check("list/_delta_log/", []string{
		"list/_delta_log/00000000000000000000.json",
		"list/_delta_log/00000000000000000001.json",
		"list/_delta_log/00000000000000000010.checkpoint.parquet",
		"list/_delta_log/_last_checkpoint",
	})
	// A prefix that ends inside a name, as a log listing "from version N" does.
	check("list/_delta_log/0000000000000000000", []string{
		"list/_delta_log/00000000000000000000.json",
		"list/_delta_log/00000000000000000001.json",
	})
	check("list/", []string{
		"list/_delta_log/00000000000000000000.json",
		"list/_delta_log/00000000000000000001.json",
		"list/_delta_log/00000000000000000010.checkpoint.parquet",
		"list/_delta_log/_last_checkpoint",
		"list/date=2024-01-01/part-0.parquet",
		"list/date=2024-01-02/part-1.parquet",
		"list/part-2.parquet",
	})
	check("list", []string{
		"list/_delta_log/00000000000000000000.json",
		"list/_delta_log/00000000000000000001.json",
		"list/_delta_log/00000000000000000010.checkpoint.parquet",
		"list/_delta_log/_last_checkpoint",
		"list/date=2024-01-01/part-0.parquet",
		"list/date=2024-01-02/part-1.parquet",
		"list/part-2.parquet",
		"list2/other",
	})
	check("list/date=2024-01-02/", []string{"list/date=2024-01-02/part-1.parquet"})
	check("list/nothing-here/", nil)

	// The whole store lists everything written so far, relative to the root
	// and sorted.
	all, err := s.List(ctx, "")
	if err != nil {
		t.Fatalf("List(\"\"): %v", err)
	}
	if !sort.SliceIsSorted(all, func(i, j int) bool { return all[i].Path < all[j].Path }) {
		t.Fatalf("List(\"\") is not sorted: %q", paths(all))
	}
	seen := map[string]bool{}
	for _, o := range all {
		if strings.HasPrefix(o.Path, "/") {
			t.Errorf("List(\"\") path %q is not relative", o.Path)
		}
		seen[o.Path] = true
	}
	for p := range objects {
		if !seen[p] {
			t.Errorf("List(\"\") misses %q", p)
		}
	}
}

func testDelete(ctx context.Context, t *testing.T, s storage.Store) {
	const p = "del/data.parquet"
	const keep = "del/data.parquet.keep"
	for _, x := range []string{p, keep} {
		if err := s.Put(ctx, x, []byte(x)); err != nil {
			t.Fatalf("Put(%q): %v", x, err)
		}
	}
	if err := s.Delete(ctx, p); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := s.Get(ctx, p)
	mustWrapPath(t, "Get after Delete", err, storage.ErrNotFound, p)
	_, err = s.Stat(ctx, p)
	mustWrapPath(t, "Stat after Delete", err, storage.ErrNotFound, p)
	mustWrapPath(t, "second Delete", s.Delete(ctx, p), storage.ErrNotFound, p)
	got, err := s.List(ctx, "del/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if g := paths(got); !equal(g, []string{keep}) {
		t.Fatalf("List after Delete = %q, want only %q", g, keep)
	}
}

func testConcurrentPutIfAbsent(ctx context.Context, t *testing.T, s storage.Store) {
	for round := 0; round < 3; round++ {
		p := fmt.Sprintf("race/_delta_log/%020d.json", round)
		contents := make([][]byte, Writers)
		for i := range contents {
			// Distinct content per writer; some size so uploads overlap.
			contents[i] = append([]byte(fmt.Sprintf("{\"commitInfo\":{\"writer\":%d}}\n", i)), randomBytes(t, 16*1024)...)
		}
		errs := make([]error, Writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < Writers; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				errs[i] = s.PutIfAbsent(ctx, p, contents[i])
			}(i)
		}
		close(start)
		wg.Wait()

		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: writers %d and %d both won PutIfAbsent(%q)", round, winner, i, p)
				}
				winner = i
			case errors.Is(err, storage.ErrExists):
			default:
				t.Fatalf("round %d: writer %d: unexpected error: %v", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer won PutIfAbsent(%q): %v", round, p, errs)
		}
		got, err := s.Get(ctx, p)
		if err != nil {
			t.Fatalf("round %d: Get: %v", round, err)
		}
		if !bytes.Equal(got, contents[winner]) {
			for i, c := range contents {
				if bytes.Equal(got, c) {
					t.Fatalf("round %d: stored content is writer %d's, but writer %d was told it won", round, i, winner)
				}
			}
			t.Fatalf("round %d: stored content (%d bytes) is nobody's", round, len(got))
		}
	}
}
