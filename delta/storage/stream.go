package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// StreamPutter is implemented by every Store of this package: it writes an
// object from a reader of known size without holding the object in memory
// (photos of tens of MiB, say). Store stays minimal; callers that need it
// assert it, so a Store from elsewhere (a test fake) may leave it out.
type StreamPutter interface {
	// PutStream writes size bytes read from r at path, replacing any object
	// there, with contentType where the backend keeps one ("" leaves the
	// backend's default). r is read from its current offset; a backend may
	// seek back to that offset to retry. Readers never see a partial object:
	// the local backend renames a complete temporary file, the cloud
	// backends publish an object only once its upload completes. A reader
	// that yields other than size bytes fails the write.
	PutStream(ctx context.Context, path string, r io.ReadSeeker, size int64, contentType string) error
}

// Compile-time checks: every backend streams.
var (
	_ StreamPutter = (*Local)(nil)
	_ StreamPutter = (*S3)(nil)
	_ StreamPutter = (*Azure)(nil)
	_ StreamPutter = (*GCS)(nil)
)

// errSizeMismatch is wrapped when the reader yields other than size bytes.
var errSizeMismatch = errors.New("reader size differs from the declared size")

// exactReader reads exactly size bytes from r, failing on fewer or more, so
// that no backend publishes a truncated object.
type exactReader struct {
	r    io.Reader
	left int64
	size int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		// Probe for extra bytes: a longer reader is a caller bug.
		var one [1]byte
		if n, _ := e.r.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%w: more than %d bytes", errSizeMismatch, e.size)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, fmt.Errorf("%w: %d bytes, want %d", errSizeMismatch, e.size-e.left, e.size)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// PutStream copies r into a pending file beside the object, syncs it and
// publishes it by a rename: a reader sees the old object or the whole new
// one, and a writer killed mid-copy leaves no file where the system has
// unnamed files (see pendingFile).
func (l *Local) PutStream(_ context.Context, p string, r io.ReadSeeker, size int64, _ string) error {
	full, err := l.abs(p)
	if err != nil {
		return err
	}
	f, err := createPending(full)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if _, err := io.Copy(f, &exactReader{r: r, left: size, size: size}); err != nil {
		f.abort()
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		f.abort()
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := f.publish(full); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// PutStream uploads with one PutObject of known length (up to 5 GiB, S3's
// single-request limit); the SDK seeks r back to retry.
func (s *S3) PutStream(ctx context.Context, p string, r io.ReadSeeker, size int64, contentType string) error {
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           aws.String(s.key(p)),
		Body:          &limitedSeeker{r: r, size: size},
		ContentLength: aws.Int64(size),
	}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	if _, err := s.client.PutObject(ctx, in); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// PutStream uploads with one Put Blob (up to 5000 MiB); the SDK seeks r
// back to retry.
func (a *Azure) PutStream(ctx context.Context, p string, r io.ReadSeeker, size int64, contentType string) error {
	opts := &blockblob.UploadOptions{}
	if contentType != "" {
		opts.HTTPHeaders = &blob.HTTPHeaders{BlobContentType: &contentType}
	}
	_, err := a.client.NewBlockBlobClient(a.key(p)).Upload(ctx, streaming.NopCloser(&limitedSeeker{r: r, size: size}), opts)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, redactAzureErr(err))
	}
	return nil
}

// limitedSeeker presents exactly size bytes of r from its offset at
// creation, seekable, so the S3 and Azure SDKs measure and rewind it.
type limitedSeeker struct {
	r     io.ReadSeeker
	size  int64
	pos   int64
	start int64
	init  bool
}

func (l *limitedSeeker) begin() error {
	if l.init {
		return nil
	}
	off, err := l.r.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	l.start, l.init = off, true
	return nil
}

func (l *limitedSeeker) Read(p []byte) (int, error) {
	if err := l.begin(); err != nil {
		return 0, err
	}
	if l.pos >= l.size {
		return 0, io.EOF
	}
	if int64(len(p)) > l.size-l.pos {
		p = p[:l.size-l.pos]
	}
	n, err := l.r.Read(p)
	l.pos += int64(n)
	if err == io.EOF && l.pos < l.size {
		return n, fmt.Errorf("%w: %d bytes, want %d", errSizeMismatch, l.pos, l.size)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func (l *limitedSeeker) Seek(offset int64, whence int) (int64, error) {
	if err := l.begin(); err != nil {
		return 0, err
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = l.pos + offset
	case io.SeekEnd:
		abs = l.size + offset
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if abs < 0 || abs > l.size {
		return 0, fmt.Errorf("seek: offset %d outside 0..%d", abs, l.size)
	}
	if _, err := l.r.Seek(l.start+abs, io.SeekStart); err != nil {
		return 0, err
	}
	l.pos = abs
	return abs, nil
}

// PutStream uploads with one media upload (uploadType=media), retrying
// transient failures after seeking r back: a replace is idempotent.
func (g *GCS) PutStream(ctx context.Context, p string, r io.ReadSeeker, size int64, contentType string) error {
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	u := g.uploadURL(g.key(p), false)
	for n := 1; ; n++ {
		err = g.streamOnce(ctx, u, r, size, contentType)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !gcsTransient(err) || n >= g.retry.attempts {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		if serr := sleepCtx(ctx, g.retry.backoff(n)); serr != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		if _, serr := r.Seek(start, io.SeekStart); serr != nil {
			return fmt.Errorf("writing %s: rewinding for a retry: %w", p, serr)
		}
	}
}

func (g *GCS) streamOnce(ctx context.Context, u string, r io.Reader, size int64, contentType string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, io.NopCloser(&exactReader{r: r, left: size, size: size}))
	if err != nil {
		return err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := g.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newGCSError(resp)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}
