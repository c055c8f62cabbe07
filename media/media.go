// Package media downloads ClaimX media (the photos of a form) from their
// signed, expiring download links and stores them in object storage under
// deterministic keys. It knows neither benthos nor Kafka.
//
// Every failure is one of two kinds (docs/FAILURES.md): a *Rejection
// belongs to the media itself (0 bytes, too large, a type not allowed, not
// in the project's list, 404) and would fail again however long we waited;
// a dependency failure (the media server answering 5xx or timing out after
// the retries, object storage failing) is a hold.UnavailableError, which a
// caller waits out.
package media

import (
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"
)

// Status of one media after Process.
const (
	StatusStored        = "stored"
	StatusAlreadyStored = "already_stored"
	StatusRejected      = "rejected"
)

// Entry is one element of the ClaimX media list
// (GET /export/project/{projectId}/media?mediaIds=…).
type Entry struct {
	MediaID          int64  `json:"mediaID"`
	MediaType        string `json:"mediaType"`
	MediaName        string `json:"mediaName"`
	FullDownloadLink string `json:"fullDownloadLink"`
	// ExpiresAt is when the link stops working (RFC 3339); empty when the
	// API did not say.
	ExpiresAt string `json:"expiresAt"`
}

// Expires parses ExpiresAt; ok is false when it is empty or unreadable.
func (e Entry) Expires() (t time.Time, ok bool) {
	if e.ExpiresAt == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, e.ExpiresAt)
	return t, err == nil
}

// Result is the outcome for one media id, as stored in the message (the
// JSON keys are the attachment's columns).
type Result struct {
	MediaID     int64  `json:"media_id"`
	FileName    string `json:"file_name"`
	ContentType string `json:"content_type"`
	SizeBytes   int64  `json:"size_bytes"`
	// SHA256 is the lower-case hex SHA-256 of the bytes.
	SHA256    string `json:"sha256"`
	ObjectKey string `json:"object_key"`
	// ObjectURI is the store's URI joined with ObjectKey.
	ObjectURI string `json:"object_uri"`
	// Status is StatusStored, StatusAlreadyStored or StatusRejected.
	Status string `json:"status"`
	// Reason says why a media was rejected, naming its id; empty otherwise.
	Reason        string `json:"reason"`
	LinkRefreshes int    `json:"link_refreshes"`
	DownloadMs    int64  `json:"download_ms"`
}

// Rejection is a failure of the media itself: it is reported in the
// result (status rejected), never retried and never held.
type Rejection struct {
	MediaID int64
	// Why is the reason without the media id ("0 bytes").
	Why string
	// Refreshes counts the fresh links asked for before the rejection.
	Refreshes int
}

func (r *Rejection) Error() string { return fmt.Sprintf("media %d: %s", r.MediaID, r.Why) }

// Reject returns a Rejection of id.
func Reject(id int64, format string, args ...any) error {
	return &Rejection{MediaID: id, Why: fmt.Sprintf(format, args...)}
}

// AsRejection returns the Rejection in err's chain, if any.
func AsRejection(err error) (*Rejection, bool) {
	var r *Rejection
	if errors.As(err, &r) {
		return r, true
	}
	return nil, false
}

// DefaultAllowedTypes are the photo types a form may carry.
var DefaultAllowedTypes = []string{"image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "image/heif"}

// extensions of the usual photo types; others come from the mime package.
var extensions = map[string]string{
	"image/jpeg": ".jpg",
	"image/png":  ".png",
	"image/gif":  ".gif",
	"image/webp": ".webp",
	"image/heic": ".heic",
	"image/heif": ".heif",
	"image/tiff": ".tiff",
	"image/bmp":  ".bmp",
}

// Extension is the file extension of a content type ("" when unknown).
func Extension(contentType string) string {
	if e, ok := extensions[contentType]; ok {
		return e
	}
	if exts, err := mime.ExtensionsByType(contentType); err == nil && len(exts) > 0 {
		return exts[0]
	}
	return ""
}

// ObjectKey is the deterministic key of a media: <prefix>/<id><ext>, so a
// replayed record finds what an earlier run stored.
func ObjectKey(prefix string, id int64, contentType string) string {
	name := fmt.Sprintf("%d%s", id, Extension(contentType))
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return name
	}
	return prefix + "/" + name
}

// ObjectURI joins a store URI and a key.
func ObjectURI(storeURI, key string) string {
	return strings.TrimSuffix(storeURI, "/") + "/" + key
}

// mediaType is the bare type of a Content-Type header value, lower case.
func mediaType(v string) string {
	if v == "" {
		return ""
	}
	t, _, err := mime.ParseMediaType(v)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(strings.Split(v, ";")[0]))
	}
	return t
}
