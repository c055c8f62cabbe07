//go:build conformance

package conformance

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/tests/internal/harness"
)

// kafkaScript runs scripts/kafka.sh with one command.
func kafkaScript(t *testing.T, cmd string) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, filepath.Join(repoRoot(t), "scripts", "kafka.sh"), cmd)
	c.Dir = repoRoot(t)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/kafka.sh %s: %v\n%s", cmd, err, out)
	}
	return time.Since(start)
}

// TestFaultBrokerRestart stops the broker (scripts/kafka.sh stop) while
// events flow through both streams, keeps it down for 15 s, and starts it
// again (the data is kept).
func TestFaultBrokerRestart(t *testing.T) {
	began := time.Now()
	seed := faultSeed(t, 1)
	e := faultEnv(t, "broker", harness.Options{})
	// Whatever happens, leave Kafka running for the other tests.
	t.Cleanup(func() {
		if exec.Command(filepath.Join(repoRoot(t), "scripts", "kafka.sh"), "status").Run() != nil {
			_ = exec.Command(filepath.Join(repoRoot(t), "scripts", "kafka.sh"), "start").Run()
		}
	})
	// While the broker is down the trigger's tracking publish fails; the
	// trigger counts it (itel_plugin_publish_errors_total) and nacks the
	// event, which its input delivers again until the publish succeeds. No
	// valid event may end on the errors topic, nor be both there and in the
	// table (Verify fails on either).
	events, x := generate(t, e, seed, 1200)

	trigger := e.TriggerProc()
	trigger.Start()
	worker := e.WorkerProc()
	worker.Start()
	pub := e.Publish(events, 25, 25)

	// Stop the broker once the worker has written something.
	ctx := t.Context()
	for deadline := time.Now().Add(90 * time.Second); ; {
		e.CheckAlive()
		n, err := e.TopicCount(ctx, e.Names.Success)
		if err == nil && n >= 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 100 success messages within 90 s (last: %d, %v)", n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	beforeStop, _ := e.TopicCount(ctx, e.Names.Success)
	sentBefore := pub.Sent()
	stopAt := time.Since(began)
	stopTook := kafkaScript(t, "stop")
	downFor := 15 * time.Second
	time.Sleep(downFor)
	e.CheckAlive()
	startTook := kafkaScript(t, "start")
	upAt := time.Since(began)
	t.Logf("broker stopped at %s (took %s) with %d success messages and %d of %d events published; down %s; started again at %s (took %s)",
		stopAt.Round(time.Millisecond), stopTook.Round(time.Millisecond), beforeStop, sentBefore, len(events), downFor, upAt.Round(time.Millisecond), startTook.Round(time.Millisecond))

	pub.Wait(t)
	drained := e.WaitDrained(pub, 3*time.Second, 4*time.Minute)
	wm, err := worker.Scrape(ctx)
	if err != nil {
		t.Errorf("scraping the worker: %v", err)
	}
	tm, err := trigger.Scrape(ctx)
	if err != nil {
		t.Errorf("scraping the trigger: %v", err)
	}
	e.CheckAlive()
	o := e.Verify(x, pub, worker.Lives())
	e.Report(x, o)
	t.Logf("worker (never restarted): %s", harness.FmtMetrics(wm))
	t.Logf("trigger (never restarted): %s", harness.FmtMetrics(tm))
	t.Logf("tracking messages republished by the trigger: %d; success messages saying duplicate=%d replayed=%d",
		o.TrackingMsgs-o.TrackingUnique, o.Statuses["duplicate"], o.Statuses["replayed"])
	// Not every run has a publish in flight when the broker stops.
	t.Logf("trigger: failed tracking publishes counted and delivered again (itel_plugin_publish_errors_total): %g; valid events on the errors topic: %d, of which also tracked: %d",
		tm["itel_plugin_publish_errors_total"], o.TriggerFailed, o.TrackedAfterError)
	if afterStop := int64(o.SuccessMsgs) - beforeStop; afterStop <= 0 {
		t.Errorf("nothing was written after the broker came back")
	}
	if o.Rows+o.WorkerErrors != o.TrackingUnique {
		t.Errorf("rows %d + worker errors %d != tracked events %d", o.Rows, o.WorkerErrors, o.TrackingUnique)
	}
	t.Logf("timing: drain after restart %s, total %s", drained.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
