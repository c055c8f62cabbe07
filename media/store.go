package media

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/internal/hold"
)

// Store writes f at key in st, once: a key that already holds an object of
// the same size is left alone (StatusAlreadyStored); one of another size is
// a Rejection, since the key is deterministic and overwriting could replace
// a good photo with a different one. Storage failures are dependency
// failures (reason "storage").
func Store(ctx context.Context, st storage.Store, key string, f *File) (string, error) {
	sp, ok := st.(storage.StreamPutter)
	if !ok {
		return "", fmt.Errorf("storing media %d: the store %s cannot stream writes", f.MediaID, st.URI())
	}
	info, err := st.Stat(ctx, key)
	switch {
	case err == nil:
		if info.Size == f.Size {
			return StatusAlreadyStored, nil
		}
		return "", Reject(f.MediaID, "object %s exists with another size (%d bytes stored, %d downloaded); not overwritten", key, info.Size, f.Size)
	case !errors.Is(err, storage.ErrNotFound):
		return "", hold.Unavailable("storage", 0, fmt.Errorf("media %d: checking %s in %s: %w", f.MediaID, key, st.URI(), err))
	}
	file, err := os.Open(f.Path)
	if err != nil {
		return "", hold.Unavailable("spool", 0, fmt.Errorf("media %d: reopening the spool file: %w", f.MediaID, err))
	}
	defer file.Close()
	if err := sp.PutStream(ctx, key, file, f.Size, f.ContentType); err != nil {
		return "", hold.Unavailable("storage", 0, fmt.Errorf("media %d: writing %s in %s: %w", f.MediaID, key, st.URI(), err))
	}
	return StatusStored, nil
}

// Process downloads one media and stores it under <keyPrefix>/<id><ext>.
// A Rejection becomes a result with StatusRejected and a nil error; a
// dependency failure is returned as the error (hold.UnavailableError) with
// no result worth keeping.
func (d *Downloader) Process(ctx context.Context, st storage.Store, keyPrefix string, entry Entry, refresh Refresher) (Result, error) {
	res := Result{MediaID: entry.MediaID, FileName: entry.MediaName}
	f, err := d.Fetch(ctx, entry, refresh)
	if err != nil {
		if r, ok := AsRejection(err); ok {
			res.Status, res.Reason, res.LinkRefreshes = StatusRejected, r.Error(), r.Refreshes
			return res, nil
		}
		return res, err
	}
	defer f.Remove()
	res.FileName = f.Name
	res.ContentType, res.SizeBytes, res.SHA256 = f.ContentType, f.Size, f.SHA256
	res.LinkRefreshes, res.DownloadMs = f.Refreshes, f.Took.Milliseconds()
	res.ObjectKey = ObjectKey(keyPrefix, f.MediaID, f.ContentType)
	status, err := Store(ctx, st, res.ObjectKey, f)
	if err != nil {
		if r, ok := AsRejection(err); ok {
			res.Status, res.Reason = StatusRejected, r.Error()
			return res, nil
		}
		return res, err
	}
	res.Status = status
	res.ObjectURI = ObjectURI(st.URI(), res.ObjectKey)
	return res, nil
}

// Rejected is the result of a media rejected before any download (say,
// missing from the project's list).
func Rejected(id int64, why string) Result {
	return Result{MediaID: id, Status: StatusRejected, Reason: (&Rejection{MediaID: id, Why: why}).Error()}
}
