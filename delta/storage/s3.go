package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func init() {
	Register("s3", openS3)
	Register("s3a", openS3)
}

// Settings and environment variables read by the S3 backend.
const (
	// S3ForcePathStyle (Options.Extra) asks for path-style requests
	// (endpoint/bucket/key) instead of virtual-hosted ones (bucket.endpoint/key).
	S3ForcePathStyle = "s3.force_path_style"
	// envS3ForcePathStyle is the environment form of S3ForcePathStyle.
	envS3ForcePathStyle = "AWS_S3_FORCE_PATH_STYLE"
)

// S3 is a Store in an S3 bucket (or an S3-compatible store) under a key
// prefix. PutIfAbsent is PutObject with If-None-Match: *, which S3 evaluates
// atomically on the server: of concurrent writers exactly one gets 200, the
// others 412 PreconditionFailed (or 409 ConditionalRequestConflict while the
// winner's upload is in flight, which is retried).
type S3 struct {
	client *s3.Client
	bucket string
	root   string // key prefix, no leading/trailing slash
	uri    string
	retry  condRetryPolicy
}

// s3Location is the bucket and key prefix of an s3:// or s3a:// URI.
type s3Location struct {
	Bucket string
	Prefix string
}

func parseS3URI(u *url.URL) (s3Location, error) {
	if u.Host == "" {
		return s3Location{}, fmt.Errorf("s3 URI %q: missing bucket (want s3://bucket/prefix)", u.Redacted())
	}
	if u.User != nil {
		return s3Location{}, fmt.Errorf("s3 URI %q: credentials or user info in the URI are not supported; use the environment", u.Redacted())
	}
	if u.Port() != "" {
		return s3Location{}, fmt.Errorf("s3 URI %q: the host is the bucket name and cannot have a port; set the endpoint instead", u.Redacted())
	}
	return s3Location{Bucket: u.Host, Prefix: rootPrefix(u.Path)}, nil
}

// s3Endpoint is the endpoint override: Options.Endpoint, else
// AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL; empty for AWS itself.
func s3Endpoint(opts Options) string {
	for _, v := range []string{opts.Endpoint, os.Getenv("AWS_ENDPOINT_URL_S3"), os.Getenv("AWS_ENDPOINT_URL")} {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// s3PathStyle decides path-style addressing: the explicit setting (Extra,
// then environment) wins; otherwise path style for endpoints on an IP address
// or localhost (emulators, MinIO), where bucket subdomains cannot resolve.
func s3PathStyle(opts Options, endpoint string) (bool, error) {
	if v, set, err := parseBoolSetting(S3ForcePathStyle, opts.Extra[S3ForcePathStyle]); err != nil || set {
		return v, err
	}
	if v, set, err := parseBoolSetting(envS3ForcePathStyle, os.Getenv(envS3ForcePathStyle)); err != nil || set {
		return v, err
	}
	if endpoint == "" {
		return false, nil
	}
	eu, err := url.Parse(endpoint)
	if err != nil || eu.Hostname() == "" {
		return false, fmt.Errorf("S3 endpoint %q is not a URL (want for example http://127.0.0.1:9000)", endpoint)
	}
	h := eu.Hostname()
	return h == "localhost" || net.ParseIP(h) != nil, nil
}

func openS3(ctx context.Context, u *url.URL, opts Options) (Store, error) {
	loc, err := parseS3URI(u)
	if err != nil {
		return nil, err
	}
	uri := "s3://" + loc.Bucket + "/" + loc.Prefix
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening %s: loading AWS configuration: %w", uri, err)
	}
	endpoint := s3Endpoint(opts)
	if cfg.Region == "" {
		cfg.Region = opts.Region
	}
	if cfg.Region == "" {
		if endpoint == "" {
			return nil, fmt.Errorf("opening %s: no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION) or the region option", uri)
		}
		// S3-compatible stores ignore the region but SigV4 needs one.
		cfg.Region = "us-east-1"
	}
	pathStyle, err := s3PathStyle(opts, endpoint)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", uri, err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			// Many S3-compatible stores reject the SDK's default trailing
			// checksums; send and check them only where the API requires.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
		o.UsePathStyle = pathStyle
	})
	return &S3{client: client, bucket: loc.Bucket, root: loc.Prefix, uri: uri, retry: defaultCondRetry}, nil
}

// URI returns the table root.
func (s *S3) URI() string { return s.uri }

func (s *S3) key(p string) string { return joinKey(s.root, p) }

// s3Status returns the HTTP status of a failed S3 call, or 0 when no response
// was received.
func s3Status(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func s3NotFound(err error) bool {
	if s3Status(err) == 404 {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
			return false // a missing bucket is a configuration error
		}
		return true
	}
	return false
}

// Get reads the whole object.
func (s *S3) Get(ctx context.Context, p string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(p))})
	if err != nil {
		if s3NotFound(err) {
			return nil, fmt.Errorf("reading %s: %w", p, ErrNotFound)
		}
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return b, nil
}

// Put writes the object, replacing any existing one.
func (s *S3) Put(ctx context.Context, p string, data []byte) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           aws.String(s.key(p)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// PutIfAbsent creates the object with PutObject If-None-Match: *.
func (s *S3) PutIfAbsent(ctx context.Context, p string, data []byte) error {
	key := s.key(p)
	attempt := func(ctx context.Context) error {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        &s.bucket,
			Key:           &key,
			Body:          bytes.NewReader(data),
			ContentLength: aws.Int64(int64(len(data))),
			IfNoneMatch:   aws.String("*"),
		}, func(o *s3.Options) {
			// Retries are ours, so that a retry after a lost answer is known.
			o.Retryer = aws.NopRetryer{}
		})
		return err
	}
	return conditionalCreate(ctx, s.retry, p, data, attempt, classifyS3Conditional, func(ctx context.Context) ([]byte, error) {
		return s.Get(ctx, p)
	})
}

func classifyS3Conditional(err error) condOutcome {
	switch st := s3Status(err); {
	case st == 412:
		return condExists
	case st == 409:
		// ConditionalRequestConflict: a concurrent conditional write to the
		// same key is in progress; nothing was written by this request.
		return condRetry
	case st == 429:
		return condRetry
	case st == 408 || st >= 500:
		return condUnknown
	case st != 0:
		return condDone
	}
	var se *smithyhttp.RequestSendError
	if errors.As(err, &se) {
		return condUnknown
	}
	return condDone
}

// List returns the objects under prefix, sorted by path.
func (s *S3) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	lp := listPrefix(s.root, prefix)
	pager := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(lp)})
	var out []ObjectInfo
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing %q: %w", prefix, err)
		}
		for _, o := range page.Contents {
			rel, ok := relKey(s.root, aws.ToString(o.Key))
			if !ok || strings.HasSuffix(rel, "/") {
				continue // outside the root, or a "directory" marker object
			}
			out = append(out, ObjectInfo{Path: rel, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Stat returns the object's size and modification time.
func (s *S3) Stat(ctx context.Context, p string) (ObjectInfo, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(p))})
	if err != nil {
		if s3NotFound(err) {
			return ObjectInfo{}, fmt.Errorf("stat %s: %w", p, ErrNotFound)
		}
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", p, err)
	}
	return ObjectInfo{Path: p, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// Delete removes the object. S3's DeleteObject succeeds on missing keys, so
// the object is looked up first to report ErrNotFound; a concurrent delete
// between the two calls is not detected (both callers then succeed).
func (s *S3) Delete(ctx context.Context, p string) error {
	if _, err := s.Stat(ctx, p); err != nil {
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("deleting %s: %w", p, ErrNotFound)
		}
		return fmt.Errorf("deleting %s: %w", p, err)
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(p))}); err != nil {
		return fmt.Errorf("deleting %s: %w", p, err)
	}
	return nil
}
