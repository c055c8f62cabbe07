package deltasink

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/delta"
)

// A record violating a CHECK constraint is rejected alone, with the
// constraint in its reason; the other records of the batch are written.
func TestConstraintViolationRejectsOneRecord(t *testing.T) {
	dir := t.TempDir()
	schema := `{"type":"struct","fields":[{"name":"event_id","type":"string","nullable":true,"metadata":{}},` +
		`{"name":"amount","type":"long","nullable":true,"metadata":{}},` +
		`{"name":"ts","type":"timestamp","nullable":true,"metadata":{}},` +
		`{"name":"day","type":"date","nullable":true,"metadata":{"delta.generationExpression":"CAST(ts AS DATE)"}}]}`
	md := delta.Metadata{ID: "11111111-1111-1111-1111-111111111111", Format: delta.Format{Provider: "parquet", Options: map[string]string{}},
		SchemaString: schema, PartitionColumns: []string{"day"}, Configuration: map[string]string{"delta.constraints.positive_amount": "amount > 0"}}
	proto := delta.Protocol{MinReaderVersion: 1, MinWriterVersion: 4}
	data, err := delta.EncodeCommit([]delta.Action{{CommitInfo: map[string]any{"timestamp": 1}}, {Protocol: &proto}, {MetaData: &md}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "_delta_log"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "_delta_log", fmt.Sprintf("%020d.json", 0)), data, 0o644); err != nil {
		t.Fatal(err)
	}
	w := newTestWriter(t, "table_uri: "+dir+"\n")
	rs, err := w.Write(t.Context(), service.MessageBatch{
		service.NewMessage([]byte(`{"event_id":"a","amount":5,"ts":"2024-05-06T10:00:00Z"}`)),
		service.NewMessage([]byte(`{"event_id":"b","amount":-3,"ts":"2024-05-06T11:00:00Z"}`)),
		service.NewMessage([]byte(`{"event_id":"c","amount":7,"ts":"2024-05-07T10:00:00Z","day":"2024-05-07"}`)),
		service.NewMessage([]byte(`{"event_id":"d","amount":7,"ts":"2024-05-07T10:00:00Z","day":"2024-05-01"}`)),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(rs); got != "wrwr" {
		t.Fatalf("statuses %q, want wrwr", got)
	}
	var ce *delta.ConstraintError
	if !errors.As(rs[1].Err, &ce) || !strings.Contains(rs[1].Err.Error(), "row violates CHECK constraint positive_amount (amount > 0): amount = -3") {
		t.Errorf("reason of message 1: %v", rs[1].Err)
	}
	if !strings.Contains(rs[3].Err.Error(), "column day is generated as (CAST(ts AS DATE))") {
		t.Errorf("reason of message 3: %v", rs[3].Err)
	}
	snap := w.table.Snapshot()
	days := map[string]bool{}
	for _, f := range snap.Files() {
		days[*f.PartitionValues["day"]] = true
	}
	if !days["2024-05-06"] || !days["2024-05-07"] || len(days) != 2 {
		t.Errorf("partitions %v", days)
	}
}
