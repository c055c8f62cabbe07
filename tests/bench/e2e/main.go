// Command e2e measures the worker stream end to end on real Kafka (issue 6,
// item 5): N ClaimX tracking messages of about 1 KB go through a fresh topic
// into the worker (`claimx-connect run` of pipelines/worker.yaml, a child
// process) with the ClaimX simulator in this process and every lookup a cache
// hit, and into the Delta table.
//
//	make bench-e2e            (scripts/bench-e2e.sh: starts Kafka if needed)
//	go run ./tests/bench/e2e -records 20000 -brokers 127.0.0.1:29092
//
// How it measures:
//   - warm-up: one message per assignment (-assignments, few) is written and
//     processed first, with CLAIMX_CACHE_TTL=1h, so that every lookup of the
//     measured records is served from the cache;
//   - the N measured records are then produced as fast as the producer goes
//     (the worker is already running, idle); records/s is N divided by the
//     time from the first produce to the Delta commit of the last row;
//   - CPU s/1k records: the worker's utime+stime (/proc/<pid>/stat) over the
//     measured records, per 1,000; peak RSS: VmHWM of /proc/<pid>/status at
//     the end (the whole life, warm-up included);
//   - event-to-table latency of a record: from its produce timestamp to the
//     commitInfo timestamp of the table version its success message names;
//   - the floor: our kafka_franz input (new consumer group) into `drop`, in
//     this process, over the same topic (N + warm-up records), timed until
//     drop has sent every record, as tests/bench/kafkainput does; the ratio
//     is worker records/s over floor records/s (best of three floor runs);
//   - CPU per record of each, and floor/worker of those: the same ratio on
//     CPU time, steadier than wall time on a shared machine;
//   - the lower bounds (-bounds, on by default), in this process over the
//     same topic, one run each, each a new consumer group with the worker's
//     input settings (batches of 250; a batching period of 100ms instead of
//     2s, which only flushes the last partial batch) and timed as the floor,
//     until its output has sent every record: the publish bound replaces
//     each message's bytes with a success message of the worker read above,
//     prebuilt (the first one of the message's assignment, its Kafka key),
//     and publishes it with our kafka_franz output as the worker's success
//     output does (max_in_flight 10, key set) to a fresh topic; the delta
//     bound sets each message's content to the row of that success message
//     (its enriched_data, parsed once, with an event_id of its own) and
//     appends it with the worker's delta_lake settings to a fresh table,
//     into drop. Each is what one of the two outputs DOMAIN.md §4
//     requires costs alone, with no transformation, validation or lookup;
//     printed with bound/floor on wall time and floor/bound on CPU per record.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/claimx/claimx-connect/claimxsim"
	"github.com/claimx/claimx-connect/tests/internal/benchfloor"
)

const clockTicks = 100 // USER_HZ on Linux

func main() {
	var o opts
	flag.IntVar(&o.records, "records", 20_000, "tracking messages to measure")
	flag.StringVar(&o.brokers, "brokers", "127.0.0.1:29092", "Kafka bootstrap servers")
	flag.IntVar(&o.partitions, "partitions", 3, "partitions of the tracking topic (DOMAIN.md §7: 3)")
	flag.IntVar(&o.assignments, "assignments", 20, "distinct assignments (each looked up once, in the warm-up)")
	flag.StringVar(&o.bin, "bin", "", "claimx-connect binary (default: build one)")
	flag.StringVar(&o.batchCount, "batch-count", "", "WORKER_BATCH_COUNT for the worker (default: the pipeline's)")
	flag.StringVar(&o.batchPeriod, "batch-period", "", "WORKER_BATCH_PERIOD for the worker (default: the pipeline's)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a 10 s CPU profile of the worker during the measured run to this file (via /debug/pprof)")
	flag.StringVar(&deltaBoundProfile, "delta-bound-cpuprofile", "", "write a CPU profile of the delta bound (this process) to this file")
	flag.StringVar(&o.heapProfile, "heapprofile", "", "write a heap profile of the worker, taken 5 s into the measured run, to this file (via /debug/pprof)")
	flag.IntVar(&o.rate, "rate", 0, "produce at this many records/s (0: as fast as the producer goes); below the worker's capacity, the latency is that of a steady flow instead of a backlog")
	flag.BoolVar(&o.bounds, "bounds", true, "also measure the lower bounds: input -> publish the success message, and input -> delta_lake (about as long as the worker's run)")
	flag.BoolVar(&o.keep, "keep", false, "keep the table and the worker log (printed)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "bench-e2e: %v\n", err)
		os.Exit(1)
	}
}

type opts struct {
	records, partitions, assignments int
	rate                             int
	brokers, bin, batchCount         string
	batchPeriod, cpuProfile          string
	heapProfile                      string
	keep, bounds                     bool
}

func run(o opts) error {
	ctx := context.Background()
	root, err := repoRoot()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.brokers), kgo.ClientID("claimx-bench-e2e"),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = cl.Ping(pctx)
	cancel()
	if err != nil {
		return fmt.Errorf("no Kafka at %s (scripts/kafka.sh start): %w", o.brokers, err)
	}
	adm := kadm.NewClient(cl)

	dir, err := os.MkdirTemp("", "claimx-bench-e2e-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Printf("keeping %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := o.bin
	if bin == "" {
		bin = filepath.Join(dir, "claimx-connect")
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}

	suffix := strconv.FormatInt(time.Now().UnixNano(), 10)
	tracking, success, errorsTopic := "bench-e2e-tracking-"+suffix, "bench-e2e-success-"+suffix, "bench-e2e-errors-"+suffix
	boundTopic := "bench-e2e-bound-success-" + suffix // the publish bound's output
	topics := []struct {
		name string
		p    int32
	}{{tracking, int32(o.partitions)}, {success, 1}, {errorsTopic, 1}}
	if o.bounds {
		topics = append(topics, struct {
			name string
			p    int32
		}{boundTopic, 1})
	}
	for _, t := range topics {
		if _, err := adm.CreateTopic(ctx, t.p, -1, nil, t.name); err != nil {
			return fmt.Errorf("creating %s: %w", t.name, err)
		}
		defer func() {
			c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _ = adm.DeleteTopics(c, t.name)
		}()
	}

	const token = "bench-e2e-token"
	sim, err := claimxsim.New(claimxsim.Config{Seed: 3, Assignments: 400, Token: token})
	if err != nil {
		return err
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer sim.Close()
	var itel []claimxsim.Assignment
	for _, a := range sim.Assignments() {
		if a.TaskID == claimxsim.ITelTemplateID && len(itel) < o.assignments {
			itel = append(itel, a)
		}
	}
	if len(itel) == 0 {
		return errors.New("the simulator has no iTel assignment")
	}

	// The worker.
	table := filepath.Join(dir, "itel_cabinet_task_tracking")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	httpAddr := ln.Addr().String()
	ln.Close()
	env := append(os.Environ(),
		"KAFKA_BOOTSTRAP_SERVERS="+o.brokers,
		"ITEL_TRACKING_TOPIC="+tracking, "ITEL_SUCCESS_TOPIC="+success, "ITEL_ERRORS_TOPIC="+errorsTopic,
		"WORKER_CONSUMER_GROUP=bench-e2e-worker-"+suffix,
		"CLAIMX_API_BASE_URL="+sim.URL(), "CLAIMX_API_AUTH_TYPE=bearer", "CLAIMX_API_TOKEN="+token,
		"CLAIMX_CACHE_TTL=1h", "CLAIMX_RATE_LIMIT_PER_SECOND=1000",
		"DELTA_TABLE_URI="+table,
		"ITEL_SCHEMA_FILE="+filepath.Join(root, "schemas/itel_cabinet_task_tracking.yaml"),
	)
	if o.batchCount != "" {
		env = append(env, "WORKER_BATCH_COUNT="+o.batchCount)
	}
	if o.batchPeriod != "" {
		env = append(env, "WORKER_BATCH_PERIOD="+o.batchPeriod)
	}
	logPath := filepath.Join(dir, "worker.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	worker := exec.Command(bin, "run",
		"-r", filepath.Join(root, "pipelines/resources/claimx.yaml"),
		"-r", filepath.Join(root, "pipelines/resources/errors.yaml"),
		"-s", "http.address="+httpAddr, "-s", "http.debug_endpoints=true",
		"-s", "logger.level=warn",
		filepath.Join(root, "pipelines/worker.yaml"))
	worker.Dir, worker.Env, worker.Stdout, worker.Stderr = root, env, logf, logf
	if err := worker.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- worker.Wait() }()
	defer func() {
		_ = worker.Process.Kill()
		<-exited
	}()
	pid := worker.Process.Pid

	// Warm-up: one message per assignment; every lookup afterwards is a hit.
	var warm []*kgo.Record
	for i, a := range itel {
		warm = append(warm, trackingRecord(tracking, fmt.Sprintf("warm_%04d", i), a, time.Now()))
	}
	if err := cl.ProduceSync(ctx, warm...).FirstErr(); err != nil {
		return fmt.Errorf("producing the warm-up: %w", err)
	}
	rd, err := newReader(o.brokers, success)
	if err != nil {
		return err
	}
	defer rd.cl.Close()
	if _, err := rd.read(ctx, len(warm), 2*time.Minute, exited, logPath); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	lookups0 := sim.Stats()
	cpu0, err := procCPU(pid)
	if err != nil {
		return err
	}

	// The measured records, produced as fast as the producer goes.
	recs := make([]*kgo.Record, o.records)
	var size int64
	now := time.Now()
	for i := range recs {
		recs[i] = trackingRecord(tracking, fmt.Sprintf("evt_%08d", i), itel[i%len(itel)], now)
		size += int64(len(recs[i].Value))
	}
	fmt.Printf("worker pid %d; %d records of %d bytes on average to %s (%d partitions), %d assignments (cache TTL 1h, warmed)\n",
		pid, o.records, size/int64(o.records), tracking, o.partitions, len(itel))
	produced := map[string]time.Time{}
	var failed atomic.Pointer[error]
	t0 := time.Now()
	var profDone chan error
	if o.cpuProfile != "" {
		profDone = make(chan error, 1)
		go func() { profDone <- fetchProfile(httpAddr, o.cpuProfile, 10) }()
	}
	if o.heapProfile != "" {
		go func() {
			time.Sleep(5 * time.Second)
			url := fmt.Sprintf("http://%s/debug/pprof/heap", httpAddr)
			if out, err := exec.Command("curl", "-sf", "-o", o.heapProfile, url).CombinedOutput(); err != nil {
				fmt.Printf("heap profile: %v: %s\n", err, out)
				return
			}
			fmt.Printf("heap profile of the worker: %s (go tool pprof -sample_index=inuse_space -top %s)\n", o.heapProfile, o.heapProfile)
		}()
	}
	for i, r := range recs {
		if o.rate > 0 && i%100 == 0 {
			// Paced in steps of 100 records.
			if d := time.Until(t0.Add(time.Duration(float64(i) / float64(o.rate) * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if p := failed.Load(); p != nil {
		return fmt.Errorf("producing: %w", *p)
	}
	tProduced := time.Now()
	for _, r := range recs {
		produced[string(r.Key)+"/"+eventID(r)] = r.Timestamp
	}
	msgs, err := rd.read(ctx, o.records, 10*time.Minute, exited, logPath)
	if err != nil {
		return err
	}
	tSeen := time.Now()
	cpu1, err := procCPU(pid)
	if err != nil {
		return err
	}
	hwm, err := procHWM(pid)
	if err != nil {
		return err
	}
	lookups1 := sim.Stats()
	if profDone != nil {
		if err := <-profDone; err != nil {
			fmt.Printf("cpu profile: %v\n", err)
		} else {
			fmt.Printf("cpu profile of the worker: %s (go tool pprof -top %s)\n", o.cpuProfile, o.cpuProfile)
		}
	}

	// Latency: produce timestamp → commit time of the row's table version.
	commits := map[int64]time.Time{}
	var lat []time.Duration
	var lastCommit time.Time
	statuses := map[string]int{}
	rowsAt := map[int64]int{} // rows per table version
	for _, m := range msgs {
		var s struct {
			Data struct {
				EventID      string `json:"event_id"`
				AssignmentID int64  `json:"assignment_id"`
			} `json:"enriched_data"`
			Version int64  `json:"table_version"`
			Status  string `json:"write_status"`
		}
		if err := json.Unmarshal(m.Value, &s); err != nil {
			return fmt.Errorf("success message: %w", err)
		}
		statuses[s.Status]++
		rowsAt[s.Version]++
		ct, ok := commits[s.Version]
		if !ok {
			if ct, err = commitTime(table, s.Version); err != nil {
				return err
			}
			commits[s.Version] = ct
		}
		pt, ok := produced[strconv.FormatInt(s.Data.AssignmentID, 10)+"/"+s.Data.EventID]
		if !ok {
			return fmt.Errorf("success message for %s, not a measured record", s.Data.EventID)
		}
		lat = append(lat, ct.Sub(pt))
		if ct.After(lastCommit) {
			lastCommit = ct
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }

	errCount, err := topicCount(ctx, adm, errorsTopic)
	if err != nil {
		return err
	}

	elapsed := lastCommit.Sub(t0)
	steady, steadyD := steadyRate(commits, rowsAt, o.records)
	rate := float64(o.records) / elapsed.Seconds()
	cpuPer1k := (cpu1 - cpu0).Seconds() / float64(o.records) * 1000

	// The floor: our input into drop on the same topic.
	total := o.records + len(warm)
	// Best of three (each a new group reading the whole topic): one run
	// is a fraction of a second and easily caught by a stall of the broker
	// or of the shared machine, which would flatter the ratio.
	var floorD, floorCPU time.Duration
	var floorRuns []string
	for run := 0; run < 3; run++ {
		d, c, err := timeInputToDrop(o.brokers, tracking, fmt.Sprintf("bench-e2e-floor-%s-%d", suffix, run), total)
		if err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		floorRuns = append(floorRuns, d.Round(time.Millisecond).String())
		if floorD == 0 || d < floorD {
			floorD, floorCPU = d, c
		}
	}
	floor := float64(total) / floorD.Seconds()

	// The lower bounds, on the same topic.
	var bounds []boundRun
	var bm *boundMessages
	var boundPublished int64
	if o.bounds {
		if bm, err = newBoundMessages(msgs); err != nil {
			return err
		}
		if bounds, err = runBounds(o.brokers, tracking, boundTopic, suffix, dir, root, total, bm); err != nil {
			return err
		}
		if boundPublished, err = topicCount(ctx, adm, boundTopic); err != nil {
			return err
		}
	}

	if o.rate > 0 {
		fmt.Printf("paced at %d records/s: records/s below is bounded by the pace\n", o.rate)
	}
	fmt.Printf("produced in %v; last success message read %v after the first produce\n", tProduced.Sub(t0).Round(time.Millisecond), tSeen.Sub(t0).Round(time.Millisecond))
	fmt.Printf("table versions: %d commits for %d rows (write_status %v); errors topic: %d records; ClaimX API requests during the run: %d\n",
		len(commits), len(msgs), statuses, errCount, lookups1.Total-lookups0.Total)
	fmt.Printf("worker:            %10.0f records/s (first produce -> last row's commit: %v)\n", rate, elapsed.Round(time.Millisecond))
	fmt.Printf("worker steady:     %10.0f records/s (rows committed from the 10%% to the 90%% point of the run, %v: without the start and the last partial batches' batching period)\n", steady, steadyD.Round(time.Millisecond))
	fmt.Printf("worker CPU:        %10.3f s per 1,000 records (%.2f s for %d)\n", cpuPer1k, (cpu1 - cpu0).Seconds(), o.records)
	fmt.Printf("worker peak RSS:   %10.1f MiB (VmHWM) — under 256 MiB: %v\n", float64(hwm)/(1<<20), hwm < 256<<20)
	fmt.Printf("event-to-table:    p50 %v  p90 %v  p99 %v  max %v\n", pct(0.5).Round(time.Millisecond), pct(0.9).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	fmt.Printf("floor (input->drop): %8.0f records/s (%d records in %v, cpu %v, same topic; best of %s)\n", floor, total, floorD.Round(time.Millisecond), floorCPU.Round(time.Millisecond), strings.Join(floorRuns, ", "))
	fmt.Printf("ratio worker/floor: %.3f (target 0.5 or better: %v)\n", rate/floor, rate/floor >= 0.5)
	workerCPUPerRec := (cpu1 - cpu0).Seconds() / float64(o.records)
	floorCPUPerRec := floorCPU.Seconds() / float64(total)
	fmt.Printf("CPU per record:    worker %.1f µs, floor %.1f µs; floor/worker %.3f\n", workerCPUPerRec*1e6, floorCPUPerRec*1e6, floorCPUPerRec/workerCPUPerRec)
	if bm != nil {
		fmt.Printf("bounds: the worker's success messages of %d assignments, %.0f bytes on average (%d to %d)\n", len(bm.success), bm.mean, bm.min, bm.max)
	}
	for _, b := range bounds {
		what := fmt.Sprintf("input -> the worker's success message of its assignment -> kafka_franz output; %d records on its topic", boundPublished)
		if b.name == "delta" {
			what = "input -> the row of its assignment -> delta_lake -> drop; every row written"
		}
		cpuPerRec := b.cpu.Seconds() / float64(b.records)
		fmt.Printf("%-19s%10.0f records/s (%s; %d records in %v, cpu %v, same topic)\n", b.name+" bound:", b.rate(), what, b.records, b.elapsed.Round(time.Millisecond), b.cpu.Round(time.Millisecond))
		fmt.Printf("  %s bound/floor: %.3f; CPU per record %s bound %.1f µs, floor %.1f µs; floor/%s bound %.3f\n",
			b.name, b.rate()/floor, b.name, cpuPerRec*1e6, floorCPUPerRec*1e6, b.name, floorCPUPerRec/cpuPerRec)
	}
	return nil
}

// steadyRate is the rate of rows committed between the commits that bring
// the table past 10% and past 90% of n rows.
func steadyRate(commits map[int64]time.Time, rowsAt map[int64]int, n int) (float64, time.Duration) {
	versions := make([]int64, 0, len(commits))
	for v := range commits {
		versions = append(versions, v)
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	var t10, t90 time.Time
	var r10, r90, sum int
	for _, v := range versions {
		sum += rowsAt[v]
		if t10.IsZero() && sum >= n/10 {
			t10, r10 = commits[v], sum
		}
		if t90.IsZero() && sum >= n*9/10 {
			t90, r90 = commits[v], sum
		}
	}
	d := t90.Sub(t10)
	if d <= 0 {
		return 0, 0
	}
	return float64(r90-r10) / d.Seconds(), d
}

func eventID(r *kgo.Record) string {
	var m struct {
		EventID string `json:"event_id"`
	}
	_ = json.Unmarshal(r.Value, &m)
	return m.EventID
}

// trackingRecord is a tracking message of DOMAIN.md §3 (about 1 KB), keyed
// by its assignment id.
func trackingRecord(topic, id string, a claimxsim.Assignment, now time.Time) *kgo.Record {
	ts := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	m := map[string]any{
		"trigger_name":  "iTel Cabinet Repair Form Task",
		"event_id":      id,
		"event_type":    "CUSTOM_TASK_COMPLETED",
		"project_id":    strconv.FormatInt(a.ProjectID, 10),
		"task_id":       a.TaskID,
		"assignment_id": a.AssignmentID,
		"task_name":     a.TaskName,
		"task_status":   a.Status,
		"timestamp":     now.UTC().Format("2006-01-02T15:04:05.000Z"),
		"published_at":  now.UTC().Format("2006-01-02T15:04:05.000Z"),
		"task": map[string]any{
			"assignment_id": a.AssignmentID, "task_id": a.TaskID, "status": a.Status,
			"assignee_id": 88121, "assignor_id": 10234, "assignor_email": "adjuster@carrier.example",
			"date_assigned": ts(a.DateAssigned), "date_completed": ts(a.DateCompleted), "cancelled_date": ts(a.CancelledDate),
			"form_id": "69417fcfa5e6b152c25253d0", "form_response_id": "6962d069f8c664c2706b0bd0",
		},
		"project": map[string]any{
			"projectId": a.ProjectID, "projectNumber": fmt.Sprintf("CLM-%d", a.ProjectID), "status": "OPEN",
			"typeOfLoss": "Water", "causeOfLoss": "Pipe burst", "dateOfLoss": "2026-01-02",
			"address":             map[string]any{"street": "1452 Oak St", "city": "Austin", "state": "TX", "zip": "78701"},
			"customerInformation": map[string]any{"firstName": "Maria", "lastName": "Garcia", "email": "maria.garcia@example.com", "phone": "512-555-0142"},
		},
	}
	b, _ := json.Marshal(m)
	return &kgo.Record{Topic: topic, Key: []byte(strconv.FormatInt(a.AssignmentID, 10)), Value: b}
}

type reader struct{ cl *kgo.Client }

func newReader(brokers, topic string) (*reader, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	return &reader{cl: cl}, nil
}

// read returns the next n records of the success topic.
func (r *reader) read(ctx context.Context, n int, timeout time.Duration, exited <-chan error, logPath string) ([]*kgo.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("the worker exited (%v); log:\n%s", err, tailText(string(b), 3000))
		default:
		}
		fs := r.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%d of %d success messages after %v; worker log:\n%s", len(out), n, timeout, tailText(string(b), 3000))
		}
		fs.EachRecord(func(rec *kgo.Record) { out = append(out, rec) })
	}
	return out, nil
}

func tailText(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func topicCount(ctx context.Context, adm *kadm.Client, topic string) (int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, nil
}

// commitTime is the commitInfo timestamp of a table version (else the
// mtime of its log file).
func commitTime(table string, version int64) (time.Time, error) {
	p := filepath.Join(table, "_delta_log", fmt.Sprintf("%020d.json", version))
	b, err := os.ReadFile(p)
	if err != nil {
		return time.Time{}, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		var a struct {
			CommitInfo *struct {
				Timestamp int64 `json:"timestamp"`
			} `json:"commitInfo"`
		}
		if json.Unmarshal([]byte(line), &a) == nil && a.CommitInfo != nil && a.CommitInfo.Timestamp > 0 {
			return time.UnixMilli(a.CommitInfo.Timestamp), nil
		}
	}
	st, err := os.Stat(p)
	if err != nil {
		return time.Time{}, err
	}
	return st.ModTime(), nil
}

// procCPU is utime+stime of a process, from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (in parentheses, may hold spaces).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// procHWM is the peak resident set size (VmHWM) of a process in bytes.
func procHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

func fetchProfile(addr, path string, seconds int) error {
	cmd := exec.Command("curl", "-sf", "-o", path, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/claimx/claimx-connect\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of github.com/claimx/claimx-connect above the working directory")
		}
		dir = parent
	}
}

// ---- the floor: kafka_franz input -> drop, as tests/bench/kafkainput ----

func timeInputToDrop(brokers, topic, group string, records int) (time.Duration, time.Duration, error) {
	res, err := benchfloor.InputToDrop(benchfloor.Config{
		Brokers: brokers, Topic: topic, Group: group, Records: records,
		// The worker's fetch_max_wait (pipelines/worker.yaml): with the
		// default 5s the input itself stalls whenever it pauses a partition.
		InputExtra: "fetch_max_wait: 500ms",
		LogLevel:   "warn", Timeout: 5 * time.Minute,
	})
	return res.Elapsed, res.CPU, err // an error stopping the stream afterwards does not matter here
}
