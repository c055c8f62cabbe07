package inputs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/quality"
)

// claimRetention is how long run claims are kept: far longer than any
// replica's clock skew or a run's retry, short enough that the claims
// directory stays a few hundred objects at a 15-minute schedule.
const claimRetention = 7 * 24 * time.Hour

// claimName matches the objects claim creates, and nothing else the sweep
// could meet (a Delta table's "_delta_log/….json", say).
var claimName = regexp.MustCompile(`^(start-)?\d{8}T\d{6}Z-[0-9a-f]{8}\.json$`)

// runClaims lets one replica of several run each scheduled tick: a run is
// claimed by creating an object named for it with PutIfAbsent, which every
// backend makes atomic, so the replicas of a stream (or the same stream in
// every process of a streams-mode deployment) evaluate and append each run
// once. Claims are named for the tick and the expectations run, so two
// streams checking different expectations do not take each other's runs.
type runClaims struct {
	store     storage.Store
	lastSweep time.Time
}

// selectionHash names a set of expectations in 8 hex digits.
func selectionHash(exps []*quality.Expectation) string {
	names := make([]string, len(exps))
	for i, e := range exps {
		names[i] = e.Name
	}
	h := sha256.Sum256([]byte(strings.Join(names, "\n")))
	return hex.EncodeToString(h[:4])
}

// tickRunID is the run id of a scheduled tick: the same on every replica
// whose schedule has that tick, so their results share result ids too.
func tickRunID(tick time.Time, selection string) string {
	return tick.UTC().Format("20060102T150405Z") + "-" + selection
}

// claim tries to take the run named name: won is false with a nil error
// when another replica has it, and an error means the store failed.
func (c *runClaims) claim(ctx context.Context, name string, now time.Time) (won bool, err error) {
	host, _ := os.Hostname()
	body, err := json.Marshal(map[string]any{"run": name, "host": host, "pid": os.Getpid(), "claimed_at": now.UTC()})
	if err != nil {
		return false, err
	}
	err = c.store.PutIfAbsent(ctx, name+".json", body)
	if errors.Is(err, storage.ErrExists) {
		return false, nil
	}
	return err == nil, err
}

// sweep deletes claims older than claimRetention, at most once an hour.
func (c *runClaims) sweep(ctx context.Context, now time.Time) error {
	if now.Sub(c.lastSweep) < time.Hour {
		return nil
	}
	c.lastSweep = now
	objs, err := c.store.List(ctx, "")
	if err != nil {
		return err
	}
	for _, o := range objs {
		// Only claims: the store may be a prefix shared with other data.
		if claimName.MatchString(o.Path) && now.Sub(o.ModTime) > claimRetention {
			if err := c.store.Delete(ctx, o.Path); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}

// alignedEvery is an @every schedule whose ticks are multiples of its
// interval since the zero time, the same whenever and wherever it is asked.
type alignedEvery time.Duration

// Next returns the first multiple of the interval after t.
func (a alignedEvery) Next(t time.Time) time.Time {
	d := time.Duration(a)
	return t.Truncate(d).Add(d)
}
