package storage

import (
	"os"
	"path/filepath"

	"github.com/google/uuid"
)

// pendingFile is the file of a local write in progress. Where the system
// allows (Linux, a file system with O_TMPFILE), it has no name until it is
// published, so a process killed mid-write leaves nothing behind: the
// kernel frees the unnamed file. Elsewhere it is a hidden temporary file
// beside the object (".name.<uuid>.tmp", which List leaves out) that a kill
// can leave behind.
type pendingFile struct {
	*os.File
	// named is the temporary file's path; "" while the file has no name.
	named string
}

// unnamedFiles lets tests take the named-file path where unnamed files work.
var unnamedFiles = true

// createPending opens a pending file in the directory of full.
func createPending(full string) (*pendingFile, error) {
	dir := filepath.Dir(full)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if unnamedFiles {
		if f, err := openUnnamed(dir); err == nil {
			return &pendingFile{File: f}, nil
		}
	}
	// Not supported here: fall back to a named temporary file.
	tmp := tempName(full)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return &pendingFile{File: f, named: tmp}, nil
}

// tempName is a unique hidden name beside full.
func tempName(full string) string {
	return filepath.Join(filepath.Dir(full), "."+filepath.Base(full)+"."+uuid.NewString()+".tmp")
}

// abort discards the write.
func (p *pendingFile) abort() {
	p.Close()
	if p.named != "" {
		os.Remove(p.named)
	}
}

// publish makes the complete, synced file the object at full, replacing
// any object there; the file is closed either way.
func (p *pendingFile) publish(full string) error {
	defer p.abort()
	if p.named == "" {
		// linkat cannot replace: give the file a temporary name, then
		// rename it over the object (a kill between the two leaves a
		// named temporary file, a window of two system calls).
		tmp := tempName(full)
		if err := linkUnnamed(p.File, tmp); err != nil {
			return err
		}
		p.named = tmp
	}
	if err := os.Rename(p.named, full); err != nil {
		return err
	}
	p.named = ""
	return nil
}

// publishIfAbsent makes the complete, synced file the object at full only
// if there is none, atomically across processes: linkat and link(2) fail
// with EEXIST. The error wraps fs.ErrExist when an object was there.
func (p *pendingFile) publishIfAbsent(full string) error {
	defer p.abort()
	var err error
	if p.named == "" {
		err = linkUnnamed(p.File, full)
	} else {
		err = os.Link(p.named, full)
	}
	return err // a *LinkError, which errors.Is matches to fs.ErrExist
}
