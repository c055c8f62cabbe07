//go:build linux

package storage

import (
	"errors"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// procFD reports whether /proc/self/fd is there: linkat reaches an unnamed
// file through it (AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
var procFD = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
})

// openUnnamed opens an unnamed file in dir (O_TMPFILE). It fails where the
// file system does not support it (NFS, older overlayfs); the caller then
// uses a named temporary file.
func openUnnamed(dir string) (*os.File, error) {
	if !procFD() {
		return nil, errors.New("no /proc/self/fd to publish an unnamed file through")
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, &os.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir+"/(unnamed)"), nil
}

// linkUnnamed gives the unnamed file f the name target; it fails with
// EEXIST (fs.ErrExist) when target exists.
func linkUnnamed(f *os.File, target string) error {
	src := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	if err := unix.Linkat(unix.AT_FDCWD, src, unix.AT_FDCWD, target, unix.AT_SYMLINK_FOLLOW); err != nil {
		return &os.LinkError{Op: "linkat", Old: f.Name(), New: target, Err: err}
	}
	return nil
}
