package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// condOutcome classifies the result of one conditional-create attempt.
type condOutcome int

const (
	// condDone: the attempt succeeded or failed for good (not retried).
	condDone condOutcome = iota
	// condExists: the service refused the write because an object exists.
	condExists
	// condRetry: the service did not create the object (for example S3's 409
	// ConditionalRequestConflict or a throttling answer); try again.
	condRetry
	// condUnknown: the outcome is unknown (connection lost, 5xx): the write
	// may or may not have happened; try again.
	condUnknown
)

// condRetryPolicy bounds the retries of a conditional create.
type condRetryPolicy struct {
	attempts int
	base     time.Duration
	max      time.Duration
}

var defaultCondRetry = condRetryPolicy{attempts: 8, base: 50 * time.Millisecond, max: 3 * time.Second}

// backoff returns the jittered wait before attempt n (n >= 1).
func (p condRetryPolicy) backoff(n int) time.Duration {
	d := p.base << (n - 1)
	if d > p.max || d <= 0 {
		d = p.max
	}
	// Full jitter in [d/2, d).
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// conditionalCreate runs attempt (one conditional create request with the
// client's own retries switched off) until it succeeds, the object is found to
// exist, or the retries run out.
//
// A retry after an attempt whose outcome was unknown can be refused with
// "exists" because that very attempt created the object. In that case the
// stored object is read back: when it holds exactly our bytes the write is
// ours and succeeds; otherwise another writer won and ErrExists is returned.
// The comparison is made only after an unknown outcome, so a plain "exists"
// answer is always ErrExists, as on the local backend.
func conditionalCreate(ctx context.Context, p condRetryPolicy, path string, data []byte,
	attempt func(context.Context) error,
	classify func(error) condOutcome,
	get func(context.Context) ([]byte, error),
) error {
	uncertain := false
	var last error
	for n := 1; n <= p.attempts; n++ {
		err := attempt(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("creating %s: %w", path, ctx.Err())
		}
		switch classify(err) {
		case condExists:
			if uncertain {
				got, gerr := get(ctx)
				if gerr == nil && bytes.Equal(got, data) {
					return nil
				}
				if gerr != nil && !errors.Is(gerr, ErrNotFound) {
					return fmt.Errorf("creating %s: conflict after an attempt with unknown outcome, and reading the object back failed: %w", path, gerr)
				}
			}
			return fmt.Errorf("creating %s: %w", path, ErrExists)
		case condRetry:
			last = err
		case condUnknown:
			uncertain = true
			last = err
		default:
			return fmt.Errorf("creating %s: %w", path, err)
		}
		if n < p.attempts {
			if err := sleepCtx(ctx, p.backoff(n)); err != nil {
				return fmt.Errorf("creating %s: %w (last error: %v)", path, err, last)
			}
		}
	}
	return fmt.Errorf("creating %s: giving up after %d attempts: %w", path, p.attempts, last)
}

// parseBoolSetting reads a boolean option; empty means unset.
func parseBoolSetting(name, v string) (value, set bool, err error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return false, false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, false, fmt.Errorf("setting %s: %q is not a boolean", name, v)
	}
	return b, true, nil
}

// joinKey joins a store's root prefix and a relative path into an object key.
func joinKey(prefix, p string) string {
	p = strings.TrimPrefix(p, "/")
	if prefix == "" {
		return p
	}
	return prefix + "/" + p
}

// rootPrefix turns a URI path into the key prefix of a table root, without
// leading or trailing slashes.
func rootPrefix(p string) string {
	return strings.Trim(p, "/")
}

// listPrefix is the key prefix to list for a relative prefix under root.
func listPrefix(root, prefix string) string {
	prefix = strings.TrimPrefix(prefix, "/")
	if root == "" {
		return prefix
	}
	return root + "/" + prefix
}

// relKey turns an object key back into a path relative to root; ok is false
// for keys outside the root.
func relKey(root, key string) (string, bool) {
	if root == "" {
		return key, true
	}
	if !strings.HasPrefix(key, root+"/") {
		return "", false
	}
	return key[len(root)+1:], true
}
