package storage

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// FilesUnder lists every regular file under dir relative to it, hidden ones
// included (exported for the package's external tests).
func FilesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLocalWritesWithNamedTemporaryFiles runs Put, PutIfAbsent and
// PutStream on the fallback path (no unnamed files), for systems without
// O_TMPFILE: same results, and no temporary file left by a finished write.
func TestLocalWritesWithNamedTemporaryFiles(t *testing.T) {
	for _, unnamed := range []bool{true, false} {
		t.Run(map[bool]string{true: "unnamed", false: "named"}[unnamed], func(t *testing.T) {
			defer func(v bool) { unnamedFiles = v }(unnamedFiles)
			unnamedFiles = unnamed
			ctx := context.Background()
			dir := t.TempDir()
			l, err := NewLocal(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Put(ctx, "a/x.json", []byte("one")); err != nil {
				t.Fatal(err)
			}
			if err := l.Put(ctx, "a/x.json", []byte("two")); err != nil {
				t.Fatal(err)
			}
			if err := l.PutIfAbsent(ctx, "a/y.json", []byte("first")); err != nil {
				t.Fatal(err)
			}
			if err := l.PutIfAbsent(ctx, "a/y.json", []byte("second")); !errors.Is(err, ErrExists) {
				t.Fatalf("second PutIfAbsent = %v, want ErrExists", err)
			}
			if err := l.PutStream(ctx, "b/z.bin", bytes.NewReader([]byte("streamed")), 8, ""); err != nil {
				t.Fatal(err)
			}
			if err := l.PutStream(ctx, "b/short.bin", bytes.NewReader([]byte("abc")), 8, ""); err == nil {
				t.Fatal("a reader shorter than the size was published")
			}
			for p, want := range map[string]string{"a/x.json": "two", "a/y.json": "first", "b/z.bin": "streamed"} {
				got, err := l.Get(ctx, p)
				if err != nil || string(got) != want {
					t.Errorf("%s = %q, %v; want %q", p, got, err, want)
				}
			}
			got := strings.Join(FilesUnder(t, dir), " ")
			if want := filepath.Join("a", "x.json") + " " + filepath.Join("a", "y.json") + " " + filepath.Join("b", "z.bin"); got != want {
				t.Errorf("files after the writes: %s; want %s", got, want)
			}
		})
	}
}

// killHelperEnv names the directory the helper process writes into.
const killHelperEnv = "STORAGE_KILL_HELPER_DIR"

// stallingReader yields half of a large object, says so on stdout and then
// blocks, so the parent can kill the process mid-write.
type stallingReader struct {
	left, half int
	said       bool
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if s.left <= s.half {
		if !s.said {
			os.Stdout.WriteString("halfway\n")
			s.said = true
		}
		select {}
	}
	n := min(len(p), s.left-s.half)
	clear(p[:n])
	s.left -= n
	return n, nil
}

func (s *stallingReader) Seek(int64, int) (int64, error) { return 0, nil }

// TestLocalKilledWriterLeavesNoFile is the fault a forms worker met: a
// process SIGKILLed while it streams an object must leave nothing in the
// store's directory, so a redelivery that writes the object again leaves
// exactly one file. Unnamed files make this hold on Linux.
func TestLocalKilledWriterLeavesNoFile(t *testing.T) {
	if dir := os.Getenv(killHelperEnv); dir != "" {
		l, err := NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		const size = 8 << 20
		_ = l.PutStream(context.Background(), "media/17.jpg", &stallingReader{left: size, half: size / 2}, size, "image/jpeg")
		t.Fatal("the stalled write returned")
	}
	if runtime.GOOS != "linux" {
		t.Skip("a killed writer can leave a named temporary file where the system has no unnamed files")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLocalKilledWriterLeavesNoFile$")
	cmd.Env = append(os.Environ(), killHelperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	said := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "halfway" {
				said <- true
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
		close(said)
	}()
	select {
	case ok := <-said:
		if !ok {
			t.Fatal("the helper process ended before it was half way")
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the helper process never reached half way")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if left := FilesUnder(t, dir); len(left) != 0 {
		t.Fatalf("a writer killed mid-write left %v", left)
	}
	// The redelivery writes it again: exactly one file.
	l, err := NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.PutStream(context.Background(), "media/17.jpg", bytes.NewReader(make([]byte, 100)), 100, ""); err != nil {
		t.Fatal(err)
	}
	if files := FilesUnder(t, dir); len(files) != 1 || files[0] != filepath.Join("media", "17.jpg") {
		t.Fatalf("after the rewrite: %v, want only media/17.jpg", files)
	}
}
