package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/claimx/claimx-connect/internal/hold"
)

// Config tunes a Downloader. Zero values take the defaults.
type Config struct {
	// MaxSize is the largest media accepted, in bytes (default 25 MiB).
	MaxSize int64
	// AllowedTypes are the content types accepted (default
	// DefaultAllowedTypes).
	AllowedTypes []string
	// Timeout bounds one download attempt, body included (default 60s).
	Timeout time.Duration
	// MaxAttempts is the download attempts per link, the first included,
	// before a failure of the media server is reported (default 3).
	MaxAttempts int
	// InitialInterval and MaxInterval bound the backoff between attempts
	// (defaults 500ms and 10s).
	InitialInterval, MaxInterval time.Duration
	// MaxRefreshes is how many fresh links one media may ask for when its
	// link has expired (default 3).
	MaxRefreshes int
	// ExpiryMargin: a link expiring within this margin is refreshed before
	// it is used, so a download does not start on a link about to die
	// (default 1s).
	ExpiryMargin time.Duration
	// TempDir holds the spooled downloads (default os.TempDir()).
	TempDir string
	// HTTPClient sends the downloads (default: a client with no overall
	// timeout; Timeout applies per attempt).
	HTTPClient *http.Client
}

func (c Config) withDefaults() Config {
	if c.MaxSize <= 0 {
		c.MaxSize = 25 << 20
	}
	if len(c.AllowedTypes) == 0 {
		c.AllowedTypes = DefaultAllowedTypes
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.InitialInterval <= 0 {
		c.InitialInterval = 500 * time.Millisecond
	}
	if c.MaxInterval <= 0 {
		c.MaxInterval = 10 * time.Second
	}
	if c.MaxRefreshes <= 0 {
		c.MaxRefreshes = 3
	}
	if c.ExpiryMargin <= 0 {
		c.ExpiryMargin = time.Second
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: c.Timeout,
		}}
	}
	return c
}

// Refresher returns a fresh list entry for a media id whose link expired.
// An error that is a Rejection (the id is no longer listed) rejects the
// media; a hold.UnavailableError (the API is down) is a dependency failure.
type Refresher func(ctx context.Context, mediaID int64) (Entry, error)

// Downloader fetches media into temporary files.
type Downloader struct {
	cfg Config
	now func() time.Time
}

// NewDownloader returns a Downloader with cfg's defaults applied.
func NewDownloader(cfg Config) *Downloader {
	return &Downloader{cfg: cfg.withDefaults(), now: time.Now}
}

// Config returns the configuration, defaults applied.
func (d *Downloader) Config() Config { return d.cfg }

// File is a downloaded media spooled to a temporary file. Remove it when
// done.
type File struct {
	MediaID     int64
	Name        string
	Path        string
	Size        int64
	SHA256      string
	ContentType string
	// Refreshes counts the fresh links asked for.
	Refreshes int
	Took      time.Duration
}

// Remove deletes the temporary file.
func (f *File) Remove() {
	if f != nil && f.Path != "" {
		os.Remove(f.Path)
	}
}

// errLinkExpired marks a 403 saying the link expired.
var errLinkExpired = errors.New("the download link expired")

// errLinkDenied marks any other 403 (a signature that does not verify).
var errLinkDenied = errors.New("the download link was refused")

// Fetch downloads entry's media to a temporary file, retrying the media
// server's failures and refreshing an expired link through refresh. The
// error is a *Rejection (the media's fault), a hold.UnavailableError (the
// media server's or the API's) or, when ctx ends, ctx's error wrapped as
// unavailable.
func (d *Downloader) Fetch(ctx context.Context, entry Entry, refresh Refresher) (_ *File, err error) {
	start := d.now()
	id := entry.MediaID
	refreshes := 0
	defer func() {
		if r, ok := AsRejection(err); ok {
			r.Refreshes = refreshes
		}
	}()
	doRefresh := func() error {
		if refresh == nil {
			return hold.Unavailable("link_expired", 0, fmt.Errorf("media %d: %w and no refresh is possible", id, errLinkExpired))
		}
		fresh, err := refresh(ctx, id)
		if err != nil {
			return err
		}
		refreshes++
		entry = fresh
		return nil
	}
	for {
		if exp, ok := entry.Expires(); ok && !d.now().Before(exp.Add(-d.cfg.ExpiryMargin)) && refreshes < d.cfg.MaxRefreshes {
			if err := doRefresh(); err != nil {
				return nil, err
			}
			continue
		}
		var f *File
		f, err = d.fetchWithRetries(ctx, entry)
		switch {
		case err == nil:
			f.Refreshes, f.Took = refreshes, d.now().Sub(start)
			return f, nil
		case errors.Is(err, errLinkExpired):
			if refreshes >= d.cfg.MaxRefreshes {
				// ClaimX keeps issuing dead links (its clock, a fault): not
				// the photo's fault, so wait it out.
				return nil, hold.Unavailable("link_expired", 0, fmt.Errorf("media %d: still expired after %d fresh links: %w", id, refreshes, err))
			}
		case errors.Is(err, errLinkDenied):
			if refreshes > 0 {
				return nil, Reject(id, "the download link signature is invalid even after a fresh link (403)")
			}
		default:
			return nil, err
		}
		if err := doRefresh(); err != nil {
			return nil, err
		}
	}
}

// fetchWithRetries downloads one link, retrying what the media server may
// answer better later (5xx, 408, 429, timeouts, broken connections).
func (d *Downloader) fetchWithRetries(ctx context.Context, entry Entry) (*File, error) {
	bo := backoff.WithContext(backoff.WithMaxRetries(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(d.cfg.InitialInterval),
		backoff.WithMaxInterval(d.cfg.MaxInterval),
		backoff.WithMaxElapsedTime(0),
	), uint64(d.cfg.MaxAttempts-1)), ctx)
	var file *File
	var unavailable error
	err := backoff.Retry(func() error {
		f, err := d.fetchOnce(ctx, entry)
		if err == nil {
			file = f
			return nil
		}
		if u, ok := hold.AsUnavailable(err); ok && ctx.Err() == nil {
			unavailable = u
			return err // retried
		}
		return backoff.Permanent(err)
	}, bo)
	if err == nil {
		return file, nil
	}
	if ctx.Err() != nil {
		return nil, hold.Unavailable("interrupted", 0, fmt.Errorf("media %d: download interrupted: %w", entry.MediaID, ctx.Err()))
	}
	var perm *backoff.PermanentError
	if errors.As(err, &perm) {
		return nil, perm.Err
	}
	if unavailable != nil {
		return nil, unavailable
	}
	return nil, err
}

// fetchOnce is one download attempt, spooled to a temporary file.
func (d *Downloader) fetchOnce(ctx context.Context, entry Entry) (*File, error) {
	id := entry.MediaID
	if entry.FullDownloadLink == "" {
		return nil, Reject(id, "the media list gives no download link")
	}
	actx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, entry.FullDownloadLink, nil)
	if err != nil {
		return nil, Reject(id, "the download link is not a URL: %v", err)
	}
	resp, err := d.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, transportFailure(id, err, actx, ctx)
	}
	defer resp.Body.Close()
	switch st := resp.StatusCode; {
	case st == http.StatusOK:
	case st == http.StatusForbidden:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		if strings.Contains(strings.ToLower(string(body)), "expired") {
			return nil, fmt.Errorf("media %d: %w (403)", id, errLinkExpired)
		}
		return nil, fmt.Errorf("media %d: %w (403): %s", id, errLinkDenied, snippet(body))
	case st == http.StatusNotFound || st == http.StatusGone:
		return nil, Reject(id, "not found on the media server (%d)", st)
	case st == http.StatusBadRequest:
		return nil, Reject(id, "the media server refused the link (400)")
	default:
		// 5xx, 408, 429 and anything unexpected: the server's state, not
		// the photo's.
		var after time.Duration
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			after = time.Duration(s) * time.Second
		}
		return nil, hold.Unavailable(strconv.Itoa(st), after, fmt.Errorf("media %d: download answered HTTP %d", id, st))
	}
	if resp.ContentLength > d.cfg.MaxSize {
		// Refused before reading a byte.
		return nil, Reject(id, "%d bytes exceeds max_size %s", resp.ContentLength, FormatSize(d.cfg.MaxSize))
	}
	if resp.ContentLength == 0 {
		return nil, Reject(id, "0 bytes")
	}
	f, err := d.spool(id, resp.Body)
	if err != nil {
		if _, ok := AsRejection(err); ok {
			return nil, err
		}
		return nil, transportFailure(id, err, actx, ctx)
	}
	f.Name = entry.MediaName
	header := mediaType(resp.Header.Get("Content-Type"))
	f.ContentType = chooseType(f.ContentType, header, mediaType(entry.MediaType))
	if !slices.Contains(d.cfg.AllowedTypes, f.ContentType) {
		f.Remove()
		return nil, Reject(id, "content type %s not allowed", f.ContentType)
	}
	return f, nil
}

// spool copies body to a temporary file while hashing it and keeping its
// first 512 bytes for sniffing; it stops as soon as MaxSize is passed, so
// neither memory nor disk grows with a huge answer. f.ContentType is the
// sniffed type.
func (d *Downloader) spool(id int64, body io.Reader) (f *File, err error) {
	tmp, err := os.CreateTemp(d.cfg.TempDir, fmt.Sprintf("claimx-media-%d-*", id))
	if err != nil {
		// The local disk, not the server: not worth a hold of its own kind.
		return nil, hold.Unavailable("spool", 0, fmt.Errorf("media %d: creating a spool file: %w", id, err))
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	sn := &sniffer{}
	n, err := io.CopyBuffer(io.MultiWriter(tmp, h, sn), io.LimitReader(body, d.cfg.MaxSize+1), make([]byte, 32<<10))
	if err != nil {
		return nil, err
	}
	if n > d.cfg.MaxSize {
		return nil, Reject(id, "more than %d bytes exceeds max_size %s", d.cfg.MaxSize, FormatSize(d.cfg.MaxSize))
	}
	if n == 0 {
		return nil, Reject(id, "0 bytes")
	}
	if err := tmp.Close(); err != nil {
		return nil, hold.Unavailable("spool", 0, fmt.Errorf("media %d: closing the spool file: %w", id, err))
	}
	return &File{
		MediaID:     id,
		Path:        tmp.Name(),
		Size:        n,
		SHA256:      hex.EncodeToString(h.Sum(nil)),
		ContentType: mediaType(http.DetectContentType(sn.buf)),
	}, nil
}

// sniffer keeps the first 512 bytes written to it.
type sniffer struct{ buf []byte }

func (s *sniffer) Write(p []byte) (int, error) {
	if room := 512 - len(s.buf); room > 0 {
		s.buf = append(s.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// chooseType trusts the bytes when they say something specific (an HTML
// error page served as image/jpeg is HTML), else the header, else the list.
// DetectContentType knows no HEIC, so a HEIC photo sniffs as
// application/octet-stream and keeps its declared type.
func chooseType(sniffed, header, listed string) string {
	if sniffed != "" && sniffed != "application/octet-stream" {
		return sniffed
	}
	if header != "" && header != "application/octet-stream" {
		return header
	}
	if listed != "" {
		return listed
	}
	return "application/octet-stream"
}

// transportFailure classifies a failed request or body read: a timeout or
// broken connection is the media server's; the end of ctx is the stream's.
func transportFailure(id int64, err error, attemptCtx, ctx context.Context) error {
	if ctx.Err() != nil {
		return hold.Unavailable("interrupted", 0, fmt.Errorf("media %d: download interrupted: %w", id, ctx.Err()))
	}
	reason := "connection"
	var ne net.Error
	if errors.Is(attemptCtx.Err(), context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		reason = "timeout"
	}
	return hold.Unavailable(reason, 0, fmt.Errorf("media %d: download failed (%s): %v", id, reason, redactURL(err)))
}

// redactURL drops the query (the signature) from a *url.Error's text.
func redactURL(err error) string {
	s := err.Error()
	if i := strings.Index(s, "?"); i >= 0 {
		if j := strings.Index(s[i:], "\""); j >= 0 {
			return s[:i] + s[i+j:]
		}
		if j := strings.Index(s[i:], ":"); j >= 0 {
			return s[:i] + s[i+j:]
		}
		return s[:i]
	}
	return s
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// FormatSize writes a byte count the way configs write it: "25MiB" when
// exact, else the number of bytes.
func FormatSize(n int64) string {
	for _, u := range []struct {
		unit string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.unit
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
