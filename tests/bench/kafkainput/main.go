// Command kafkainput compares the throughput of the kafka_franz input with
// kcat's: both consume the same records from one in-process kfake cluster.
//
//	go run ./tests/bench/kafkainput -records 1000000
//
// It produces the records (not timed), then alternates -runs timed runs of
// (a) a stream kafka_franz (consumer group, default settings) -> drop, timed
// until the drop output has sent every record, and (b) kcat -C -e to
// /dev/null. It prints each run with its CPU time, then the best rate of each
// in records/s and MB/s and their ratio. kfake serves from this process in
// both runs, so on a busy machine the in-process run competes for CPU with
// its own broker while kcat runs in a process of its own.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/claimx/claimx-connect/tests/internal/benchfloor"
)

func main() {
	var (
		records    = flag.Int("records", 1_000_000, "number of records to consume")
		size       = flag.Int("size", 1024, "bytes per record value")
		partitions = flag.Int("partitions", 4, "partitions of the topic")
		runs       = flag.Int("runs", 3, "timed runs of each consumer, alternating; the best of each is reported")
		cpuProfile = flag.String("cpuprofile", "", "write a CPU profile of our input's runs to this file")
		extraYAML  = flag.String("input-extra", "", "extra YAML fields for the kafka_franz input, e.g. 'fetch_max_partition_bytes: 4MiB'")
		brokers    = flag.String("brokers", "", "use this external cluster instead of the embedded one (a topic is created and deleted)")
	)
	flag.Parse()
	if err := run(*records, *size, int32(*partitions), *runs, *cpuProfile, *extraYAML, *brokers); err != nil {
		fmt.Fprintf(os.Stderr, "kafkainput bench: %v\n", err)
		os.Exit(1)
	}
}

func run(records, size int, partitions int32, runs int, cpuProfile, extraYAML, brokers string) error {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		return fmt.Errorf("finding kcat: %w", err)
	}
	topic, addr := "bench", brokers
	if brokers == "" {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
		if err != nil {
			return fmt.Errorf("starting kfake: %w", err)
		}
		defer cluster.Close()
		addr = cluster.ListenAddrs()[0]
	} else {
		topic = fmt.Sprintf("claimx-bench-%d", time.Now().UnixNano())
		cleanup, err := createTopic(addr, topic, partitions)
		if err != nil {
			return err
		}
		defer cleanup()
	}

	start := time.Now()
	if err := produce(addr, topic, records, size); err != nil {
		return err
	}
	fmt.Printf("produced %d records of %d bytes to %d partitions in %v (not timed)\n", records, size, partitions, time.Since(start).Round(time.Millisecond))

	var profile *os.File
	if cpuProfile != "" {
		if profile, err = os.Create(cpuProfile); err != nil {
			return fmt.Errorf("creating cpu profile: %w", err)
		}
		defer profile.Close()
	}

	cpuNote := "in-process broker included"
	if brokers != "" {
		cpuNote = "external broker not included"
	}
	var bestOurs, bestKcat time.Duration
	for i := range runs {
		// Only our input's runs are profiled; kfake serves in this process
		// during both, so its share shows up in the profile too.
		if profile != nil {
			if err := pprof.StartCPUProfile(profile); err != nil {
				return fmt.Errorf("starting cpu profile: %w", err)
			}
		}
		cpu0 := benchfloor.SelfCPU()
		d, err := timeOurInput(addr, topic, fmt.Sprintf("bench-%d", i), records, extraYAML)
		oursCPU := benchfloor.SelfCPU() - cpu0
		if profile != nil {
			pprof.StopCPUProfile()
			profile = nil // one profile file holds one run
		}
		if err != nil {
			return err
		}
		fmt.Printf("run %d: kafka_franz input -> drop: %v (cpu %v, %s)\n", i+1, d.Round(time.Millisecond), oursCPU.Round(time.Millisecond), cpuNote)
		if bestOurs == 0 || d < bestOurs {
			bestOurs = d
		}
		cpu0 = benchfloor.SelfCPU()
		d, kcatCPU, err := timeKcat(kcat, addr, topic)
		brokerCPU := benchfloor.SelfCPU() - cpu0
		if err != nil {
			return err
		}
		fmt.Printf("run %d: kcat -> /dev/null:        %v (cpu %v, %s)\n", i+1, d.Round(time.Millisecond), (kcatCPU + brokerCPU).Round(time.Millisecond), cpuNote)
		if bestKcat == 0 || d < bestKcat {
			bestKcat = d
		}
	}

	mb := float64(records) * float64(size) / 1e6
	oursRate, kcatRate := float64(records)/bestOurs.Seconds(), float64(records)/bestKcat.Seconds()
	fmt.Printf("kafka_franz input: %10.0f records/s %8.1f MB/s\n", oursRate, mb/bestOurs.Seconds())
	fmt.Printf("kcat:              %10.0f records/s %8.1f MB/s\n", kcatRate, mb/bestKcat.Seconds())
	fmt.Printf("ratio ours/kcat:   %.2f (target 0.80)\n", oursRate/kcatRate)
	return nil
}

// createTopic creates a topic on an external cluster and returns a function
// deleting it.
func createTopic(addr, topic string, partitions int32) (func(), error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return nil, fmt.Errorf("creating admin client: %w", err)
	}
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, -1, nil, topic); err != nil {
		cl.Close()
		return nil, fmt.Errorf("creating topic %s: %w", topic, err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopics(ctx, topic); err != nil {
			fmt.Fprintf(os.Stderr, "deleting topic %s: %v\n", topic, err)
		}
		cl.Close()
	}, nil
}

func produce(addr, topic string, records, size int) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
	if err != nil {
		return fmt.Errorf("creating producer: %w", err)
	}
	defer cl.Close()
	value := []byte(strings.Repeat("x", size))
	var failed atomic.Pointer[error]
	for i := range records {
		cl.Produce(context.Background(), &kgo.Record{Topic: topic, Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
		if i%10000 == 0 {
			if p := failed.Load(); p != nil {
				return fmt.Errorf("producing record %d: %w", i, *p)
			}
		}
	}
	if err := cl.Flush(context.Background()); err != nil {
		return fmt.Errorf("flushing producer: %w", err)
	}
	if p := failed.Load(); p != nil {
		return fmt.Errorf("producing: %w", *p)
	}
	return nil
}

// timeOurInput runs kafka_franz (consumer group) -> drop and returns the time
// from the start of the stream until the drop output has sent every record
// (benchfloor.InputToDrop).
func timeOurInput(addr, topic, group string, records int, extraYAML string) (time.Duration, error) {
	res, err := benchfloor.InputToDrop(benchfloor.Config{
		Brokers: addr, Topic: topic, Group: group, Records: records,
		InputExtra: extraYAML, Timeout: 10 * time.Minute,
	})
	if err != nil {
		return 0, err
	}
	if res.StopErr != nil {
		return 0, fmt.Errorf("stopping stream: %w", res.StopErr)
	}
	return res.Elapsed, nil
}

// timeKcat consumes the topic from the beginning to its end with kcat and
// returns the wall time and kcat's CPU time.
func timeKcat(kcat, addr, topic string) (time.Duration, time.Duration, error) {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return 0, 0, err
	}
	defer devNull.Close()
	cmd := exec.Command(kcat, "-b", addr, "-C", "-t", topic, "-o", "beginning", "-e", "-q")
	cmd.Stdout = devNull
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("running kcat: %w: %s", err, stderr.String())
	}
	return time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}
