package kafka

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// TestKafkaFranzSASL writes and reads through a cluster requiring SASL, for
// each mechanism kfake supports, and checks that a wrong password fails to
// connect.
func TestKafkaFranzSASL(t *testing.T) {
	for _, mechanism := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mechanism, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "sasl"),
				kfake.EnableSASL(), kfake.Superuser(mechanism, "claimx", "s3cret"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			addr := c.ListenAddrs()[0]
			auth := func(pass string) string {
				return fmt.Sprintf("sasl:\n  - mechanism: %s\n    username: claimx\n    password: %s\n", mechanism, pass)
			}

			w := newTestWriter(t, fmt.Sprintf("seed_brokers: [ %s ]\ntopic: sasl\n%s", addr, auth("s3cret")))
			if err := w.WriteBatch(t.Context(), service.MessageBatch{service.NewMessage([]byte("hello"))}); err != nil {
				t.Fatalf("writing: %v", err)
			}
			rdr := newTestReader(t, fmt.Sprintf("seed_brokers: [ %s ]\ntopics: [ sasl ]\nconsumer_group: sasl\n%s", addr, auth("s3cret")))
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			batch, _, err := rdr.ReadBatch(ctx)
			if err != nil {
				t.Fatalf("reading: %v", err)
			}
			if b, _ := batch[0].AsBytes(); string(b) != "hello" {
				t.Errorf("read %q", b)
			}

			pConf, err := franzKafkaOutputSpec().ParseYAML(fmt.Sprintf("seed_brokers: [ %s ]\ntopic: sasl\n%s", addr, auth("wrong")), nil)
			if err != nil {
				t.Fatal(err)
			}
			bad, err := newFranzWriterFromConfig(pConf, service.MockResources())
			if err != nil {
				t.Fatal(err)
			}
			connectCtx, cancelConnect := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancelConnect()
			err = bad.Connect(connectCtx)
			if err == nil {
				_ = bad.Close(context.Background())
				t.Fatal("connected with a wrong password")
			}
			if strings.Contains(err.Error(), "wrong") {
				t.Errorf("connection error reveals the password: %v", err)
			}
		})
	}
}
