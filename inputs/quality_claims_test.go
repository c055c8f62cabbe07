package inputs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

// A claim is won once; claims older than claimRetention are swept, at most
// once an hour; @every ticks are aligned.
func TestRunClaims(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := &runClaims{store: st}
	now := time.Date(2026, 12, 6, 10, 15, 0, 0, time.UTC)
	for i, want := range []bool{true, false} {
		if got, err := c.claim(ctx, "20261206T101500Z-0010473a", now); got != want || err != nil {
			t.Fatalf("claim %d = %v, %v; want %v", i, got, err, want)
		}
	}
	if _, err := c.claim(ctx, "20261206T103000Z-0010473a", now); err != nil {
		t.Fatal(err)
	}
	if _, err := c.claim(ctx, "start-20261206T101500Z-0010473a", now); err != nil {
		t.Fatal(err)
	}
	// Not claims: the sweep leaves them, however old.
	for _, p := range []string{"_delta_log/00000000000000000000.json", "notes.json", "20261206T101500Z-0010473a.txt"} {
		if err := st.Put(ctx, p, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	week := now.Add(-8 * 24 * time.Hour)
	for _, p := range []string{"_delta_log/00000000000000000000.json", "notes.json", "20261206T101500Z-0010473a.txt", "start-20261206T101500Z-0010473a.json"} {
		if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(p)), week, week); err != nil {
			t.Fatal(err)
		}
	}
	old := filepath.Join(dir, "20261206T101500Z-0010473a.json")
	if err := os.Chtimes(old, now.Add(-8*24*time.Hour), now.Add(-8*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := c.sweep(ctx, now); err != nil {
		t.Fatal(err)
	}
	objs, err := st.List(ctx, "")
	var left []string
	for _, o := range objs {
		left = append(left, o.Path)
	}
	if want := "20261206T101500Z-0010473a.txt 20261206T103000Z-0010473a.json _delta_log/00000000000000000000.json notes.json"; err != nil || strings.Join(left, " ") != want {
		t.Fatalf("after the sweep: %v, %v; want %s (old claims gone, the rest kept)", left, err, want)
	}
	if got, err := c.claim(ctx, "20261206T101500Z-0010473a", now); !got || err != nil {
		t.Fatalf("a swept claim is not won again: %v, %v", got, err)
	}
	if err := os.Chtimes(old, now.Add(-8*24*time.Hour), now.Add(-8*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := c.sweep(ctx, now.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(ctx, "20261206T101500Z-0010473a.json"); err != nil {
		t.Fatalf("a second sweep within the hour listed the claims: %v", err)
	}

	every := alignedEvery(15 * time.Minute)
	for _, at := range []time.Time{now.Add(-time.Nanosecond), now.Add(-14 * time.Minute)} {
		if got := every.Next(at); !got.Equal(now) {
			t.Errorf("Next(%s) = %s, want %s", at, got, now)
		}
	}
	if got := every.Next(now); !got.Equal(now.Add(15 * time.Minute)) {
		t.Errorf("Next on a tick = %s, want the one after", got)
	}
}
