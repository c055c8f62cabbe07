// Package storage is the object storage a Delta table lives in: one small
// interface with put-if-absent as a first-class operation, and one backend per
// URI scheme (local paths and file://, s3://, abfss:// and az://, gs://).
//
// Every path given to a Store is relative to the table root and uses forward
// slashes, for example "_delta_log/00000000000000000000.json".
package storage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrNotFound is returned (wrapped) by Get, Stat and Delete when no object
// exists at the path.
var ErrNotFound = errors.New("object not found")

// ErrExists is returned (wrapped) by PutIfAbsent when an object already exists
// at the path. For the Delta log it means another writer won that version.
var ErrExists = errors.New("object already exists")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	// Path is relative to the table root, with forward slashes.
	Path    string
	Size    int64
	ModTime time.Time
}

// Store is the storage a Delta table is read from and written to.
type Store interface {
	// Get returns the whole object at path, or an error wrapping ErrNotFound.
	Get(ctx context.Context, path string) ([]byte, error)
	// Put writes the object at path, replacing any object already there.
	Put(ctx context.Context, path string, data []byte) error
	// PutIfAbsent writes the object at path only if none exists, atomically
	// across processes and hosts; otherwise it returns an error wrapping
	// ErrExists and leaves the existing object untouched.
	PutIfAbsent(ctx context.Context, path string, data []byte) error
	// List returns every object whose path starts with prefix, sorted by path.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Stat returns the object's info, or an error wrapping ErrNotFound.
	Stat(ctx context.Context, path string) (ObjectInfo, error)
	// Delete removes the object at path; deleting a missing object returns an
	// error wrapping ErrNotFound.
	Delete(ctx context.Context, path string) error
	// URI is the table root this store was opened on, for messages.
	URI() string
}

// Opener opens a Store rooted at a parsed table URI.
type Opener func(ctx context.Context, u *url.URL, opts Options) (Store, error)

// Options tunes how a backend is opened. Credentials never come from here:
// backends read them from the environment (the cloud SDKs' own chains).
type Options struct {
	// Endpoint overrides the service endpoint, for S3-compatible stores and
	// local emulators (MinIO, Azurite, fake-gcs-server).
	Endpoint string
	// Region is the S3 region, when the environment does not name one.
	Region string
	// Extra carries backend-specific settings (for example "s3.force_path_style").
	Extra map[string]string
}

var (
	openersMu sync.RWMutex
	openers   = map[string]Opener{}
)

// Register makes a backend available for a URI scheme. Backends call it from
// init.
func Register(scheme string, o Opener) {
	openersMu.Lock()
	defer openersMu.Unlock()
	openers[strings.ToLower(scheme)] = o
}

// Schemes lists the URI schemes with a registered backend.
func Schemes() []string {
	openersMu.RLock()
	defer openersMu.RUnlock()
	out := make([]string, 0, len(openers))
	for s := range openers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Open returns the Store for a table URI. A URI without a scheme, or with
// file://, is a local directory.
func Open(ctx context.Context, uri string, opts Options) (Store, error) {
	if uri == "" {
		return nil, errors.New("opening table storage: empty table URI")
	}
	scheme := "file"
	var u *url.URL
	if i := strings.Index(uri, "://"); i > 0 {
		var err error
		if u, err = url.Parse(uri); err != nil {
			return nil, fmt.Errorf("opening table storage: parsing URI %q: %w", uri, err)
		}
		scheme = strings.ToLower(u.Scheme)
	} else {
		u = &url.URL{Scheme: "file", Path: uri}
	}
	openersMu.RLock()
	o, ok := openers[scheme]
	openersMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("opening table storage %q: no backend for scheme %q (known: %s)", uri, scheme, strings.Join(Schemes(), ", "))
	}
	return o(ctx, u, opts)
}
