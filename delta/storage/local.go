package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func init() {
	Register("file", openLocal)
}

// Local is a Store on a local (or mounted) file system. Every write goes to
// a pending file (see pendingFile: unnamed on Linux, so a killed writer
// leaves nothing) published only once complete. PutIfAbsent links it to the
// final name: the link fails with EEXIST atomically, so two processes can
// never both create one commit.
type Local struct {
	root string
}

// NewLocal returns a Store rooted at dir, creating dir if needed.
func NewLocal(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("opening local table directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("creating local table directory %q: %w", abs, err)
	}
	return &Local{root: abs}, nil
}

func openLocal(_ context.Context, u *url.URL, _ Options) (Store, error) {
	p := u.Path
	if u.Host != "" && u.Host != "localhost" {
		// file://relative/dir is a common slip; treat host as the first segment.
		p = u.Host + u.Path
	}
	if p == "" {
		return nil, errors.New("opening local table storage: empty path")
	}
	return NewLocal(p)
}

// URI returns the table root as a file:// URI.
func (l *Local) URI() string { return "file://" + filepath.ToSlash(l.root) }

// Root returns the absolute directory of the table.
func (l *Local) Root() string { return l.root }

func (l *Local) abs(p string) (string, error) {
	clean := filepath.FromSlash(strings.TrimPrefix(p, "/"))
	full := filepath.Join(l.root, clean)
	if full != l.root && !strings.HasPrefix(full, l.root+string(filepath.Separator)) {
		return "", fmt.Errorf("path %q leaves the table root", p)
	}
	return full, nil
}

// Get reads the whole object.
func (l *Local) Get(_ context.Context, p string) ([]byte, error) {
	full, err := l.abs(p)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(full)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", p, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return b, nil
}

// writePending writes data to a pending file beside full and syncs it.
func writePending(full string, data []byte) (*pendingFile, error) {
	f, err := createPending(full)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(data); err != nil {
		f.abort()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.abort()
		return nil, err
	}
	return f, nil
}

// Put writes the object through a pending file published by a rename, so
// readers never see a partial object.
func (l *Local) Put(_ context.Context, p string, data []byte) error {
	full, err := l.abs(p)
	if err != nil {
		return err
	}
	f, err := writePending(full, data)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := f.publish(full); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// PutIfAbsent creates the object only if it does not exist, atomically
// across processes (a link of a complete pending file).
func (l *Local) PutIfAbsent(_ context.Context, p string, data []byte) error {
	full, err := l.abs(p)
	if err != nil {
		return err
	}
	f, err := writePending(full, data)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := f.publishIfAbsent(full); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("creating %s: %w", p, ErrExists)
		}
		return fmt.Errorf("creating %s: %w", p, err)
	}
	return nil
}

// List returns every file under the root whose relative path starts with
// prefix, sorted. Temporary files of writes in progress are left out.
func (l *Local) List(_ context.Context, prefix string) ([]ObjectInfo, error) {
	// Walk only the deepest directory the prefix names, not the whole table.
	dir := l.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		d, err := l.abs(prefix[:i])
		if err != nil {
			return nil, err
		}
		dir = d
	}
	var out []ObjectInfo
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") && strings.HasSuffix(d.Name(), ".tmp") {
			return nil
		}
		rel, err := filepath.Rel(l.root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !strings.HasPrefix(rel, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		out = append(out, ObjectInfo{Path: rel, Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %q: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Stat returns the object's size and modification time.
func (l *Local) Stat(_ context.Context, p string) (ObjectInfo, error) {
	full, err := l.abs(p)
	if err != nil {
		return ObjectInfo{}, err
	}
	info, err := os.Stat(full)
	if errors.Is(err, fs.ErrNotExist) {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", p, ErrNotFound)
	}
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", p, err)
	}
	return ObjectInfo{Path: p, Size: info.Size(), ModTime: info.ModTime()}, nil
}

// Delete removes the object.
func (l *Local) Delete(_ context.Context, p string) error {
	full, err := l.abs(p)
	if err != nil {
		return err
	}
	if err := os.Remove(full); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("deleting %s: %w", p, ErrNotFound)
		}
		return fmt.Errorf("deleting %s: %w", p, err)
	}
	return nil
}
