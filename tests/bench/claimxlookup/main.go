// Command claimxlookup measures claimx_lookup throughput against the ClaimX
// simulator: for each concurrency it runs the processor over a
// claimx_connection with rate_limit_per_second for a fixed period and prints
// lookups/s, the ratio to the limit, and the 429s the simulator answered
// (which must be none).
//
//	go run ./tests/bench/claimxlookup -latency 50ms -limit 100 -concurrency 1,8,32 -duration 10s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/claimxsim"
	_ "github.com/claimx/claimx-connect/processors"
)

const token = "bench-token"

type result struct {
	concurrency int
	// inPeriod counts the lookups the simulator answered 200 within the
	// measured period. Lookups still in flight at its end finish afterwards
	// and are left out, so a rate-limit window that opens at the very end
	// does not inflate the rate.
	inPeriod int64
	lookups  int64 // all successful lookups, in the period or after
	failed   int64
	stats    claimxsim.Stats
}

func main() {
	latency := flag.Duration("latency", 50*time.Millisecond, "simulated API latency")
	limit := flag.Int("limit", 100, "requests per second: the simulator's limit and the connection's rate_limit_per_second")
	concurrencies := flag.String("concurrency", "1,8,32", "comma-separated max_concurrency values")
	duration := flag.Duration("duration", 10*time.Second, "measured period of each run")
	flag.Parse()

	var results []result
	for _, f := range strings.Split(*concurrencies, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 {
			fmt.Fprintf(os.Stderr, "bad concurrency %q\n", f)
			os.Exit(2)
		}
		r, err := run(c, *latency, *limit, *duration)
		if err != nil {
			fmt.Fprintf(os.Stderr, "concurrency %d: %v\n", c, err)
			os.Exit(1)
		}
		results = append(results, r)
	}

	fmt.Printf("claimx_lookup against the simulator: latency %v, limit %d/s (simulator: token bucket, burst %d; connection: rate_limit_per_second %d, evenly spaced), %v per run\n\n",
		*latency, *limit, *limit, *limit, *duration)
	fmt.Printf("%-11s %10s %9s %9s %9s %7s %6s %9s %10s\n",
		"concurrency", "in period", "lookups/s", "vs limit", "ceiling/s", "failed", "429s", "requests", "in flight")
	for _, r := range results {
		rate := float64(r.inPeriod) / duration.Seconds()
		// What the run could reach at best: the limit, or what the
		// concurrency allows at this latency.
		ceiling := min(float64(*limit), float64(r.concurrency)/latency.Seconds())
		fmt.Printf("%-11d %10d %9.1f %8.2fx %9.0f %7d %6d %9d %10d\n",
			r.concurrency, r.inPeriod, rate, rate/float64(*limit), ceiling, r.failed,
			r.stats.StatusCount(429), r.stats.Total, r.stats.MaxInFlight)
	}
}

func run(concurrency int, latency time.Duration, limit int, duration time.Duration) (result, error) {
	res := result{concurrency: concurrency}
	sim, err := claimxsim.New(claimxsim.Config{
		Seed: 1, Assignments: int(duration.Seconds()*float64(limit))*2 + 1000, Token: token,
		RateLimit: float64(limit), Faults: claimxsim.Faults{Latency: claimxsim.Duration(latency)},
	})
	if err != nil {
		return res, err
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		return res, err
	}
	defer sim.Close()

	b := service.NewStreamBuilder()
	b.SetLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	// Several batches in flight at once, so that max_concurrency rather than
	// batch boundaries bounds the lookups in flight.
	const producers = 4
	b.SetThreads(producers)
	if err := b.AddResourcesYAML(fmt.Sprintf(`
processor_resources:
  - label: claimx
    claimx_connection:
      base_url: %s
      auth: { type: bearer, token: %s }
      rate_limit_per_second: %d
      max_concurrency: %d
      timeout: 5s
      retries: { max_attempts: 3, initial_interval: 100ms, max_interval: 2s }
`, sim.URL(), token, limit, concurrency)); err != nil {
		return res, err
	}
	if err := b.AddProcessorYAML(`
claimx_lookup:
  connection: claimx
  path: /customTasks/assignment/{assignment_id}
  path_params: { assignment_id: this.task_assignment_id }
  query: { full: "true" }
  result_field: claimx_task_full
`); err != nil {
		return res, err
	}
	send, err := b.AddBatchProducerFunc()
	if err != nil {
		return res, err
	}
	var lookups, failed atomic.Int64
	if err := b.AddBatchConsumerFunc(func(_ context.Context, mb service.MessageBatch) error {
		for _, m := range mb {
			if m.GetError() != nil {
				failed.Add(1)
			} else {
				lookups.Add(1)
			}
		}
		return nil
	}); err != nil {
		return res, err
	}
	stream, err := b.Build()
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- stream.Run(ctx) }()

	assignments := sim.Assignments()
	var next atomic.Int64
	start := time.Now()
	deadline := start.Add(duration)
	// With max_concurrency split over the producers' batches, twice that
	// many messages are queued so no lookup slot waits for a batch.
	batchSize := max(1, concurrency*2/producers)
	var wg sync.WaitGroup
	var sendErr atomic.Value
	for range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				batch := make(service.MessageBatch, batchSize)
				for i := range batch {
					a := assignments[int(next.Add(1))%len(assignments)]
					batch[i] = service.NewMessage(fmt.Appendf(nil, `{"task_assignment_id":"%d"}`, a.AssignmentID))
				}
				if err := send(ctx, batch); err != nil {
					sendErr.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	res.lookups, res.failed = lookups.Load(), failed.Load()
	res.stats = sim.Stats()
	for _, r := range sim.Requests() {
		if r.Status == "200" && !r.Time.After(deadline) {
			res.inPeriod++
		}
	}

	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := stream.Stop(sctx); err != nil {
		return res, fmt.Errorf("stopping the stream: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return res, fmt.Errorf("running the stream: %w", err)
	}
	if err, ok := sendErr.Load().(error); ok {
		return res, fmt.Errorf("sending a batch: %w", err)
	}
	return res, nil
}
