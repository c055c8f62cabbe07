package processors

import (
	"context"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/claimxsim"
)

// BenchmarkLookupBatch is a batch of 50 lookups answered by the cache, in
// error mode (the baseline) and in hold mode: what holding costs a healthy
// stream. `make bench-claimx` prints both; compare their ratio.
func BenchmarkLookupBatch(b *testing.B) {
	sim, srv := newSim(b, claimxsim.Config{Seed: 3})
	hs := srv.URL
	var docs [][]byte
	for _, a := range sim.Assignments()[:50] {
		docs = append(docs, []byte(eventFor(a.AssignmentID)))
	}
	for _, mode := range []string{"error", "hold"} {
		b.Run(mode, func(b *testing.B) {
			over := holdOver(map[string]string{"on_unavailable": mode, "cache": "claimx_cache", "cache_ttl": "1h"})
			res := service.MockResources(service.MockResourcesOptAddCache("claimx_cache"))
			cconf, err := claimxConnectionConfigSpec().ParseYAML(connectionYAML(hs, over), nil)
			if err != nil {
				b.Fatal(err)
			}
			conn, err := newClaimxConnectionFromConfig(cconf, res)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(context.Background())
			proc, _ := lookupYAML(hs, over)
			lconf, err := claimxLookupConfigSpec().ParseYAML(proc[len("claimx_lookup:\n"):], nil)
			if err != nil {
				b.Fatal(err)
			}
			c, err := parseClaimxLookupConfig(lconf)
			if err != nil {
				b.Fatal(err)
			}
			p := newClaimxLookup(c, conn, res)
			defer p.Close(context.Background())
			batch := func() service.MessageBatch {
				mb := make(service.MessageBatch, len(docs))
				for i, d := range docs {
					mb[i] = service.NewMessage(d)
				}
				return mb
			}
			if _, err := p.ProcessBatch(context.Background(), batch()); err != nil { // fills the cache
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				out, err := p.ProcessBatch(context.Background(), batch())
				if err != nil || len(out) != 1 || out[0][0].GetError() != nil {
					b.Fatalf("lookup failed: %v", err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(docs)), "ns/lookup")
		})
	}
}
