package deltasink

import (
	"fmt"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

const rowsConf = `
table_uri: %s
create_if_missing: true
schema:
  - { name: key, type: string, nullable: false }
  - { name: form, type: string }
  - { name: size, type: long }
idempotency: { app_id: w, dedupe_column: key }
rows: 'root = this.items.or([]).map_each(i -> i.merge({"form": this.form}))'
`

// A message with several rows: each row is written and de-duplicated on
// its own; a message without rows still advances its offset; a bad row
// rejects its message whole, naming the row.
func TestRowsMapping(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, fmt.Sprintf(rowsConf, dir))
	ctx := t.Context()
	letters := func(rs []Result) string {
		s := ""
		for _, r := range rs {
			s += map[Status]string{Written: "w", Duplicate: "d", Rejected: "r", Empty: "e", Replayed: "p"}[r.Status]
		}
		return s
	}
	rs, err := w.Write(ctx, service.MessageBatch{
		kmsg(`{"form":"f1","items":[{"key":"f1:1","size":10},{"key":"f1:2","size":20}]}`, 0, 0),
		kmsg(`{"form":"f2"}`, 0, 1),
		kmsg(`{"form":"f3","items":[{"key":"f3:1","size":1},{"key":"f3:2","size":"big"}]}`, 0, 2),
		kmsg(`{"form":"f4","items":[{"key":"f4:1"}, 7]}`, 0, 3),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := letters(rs); got != "werr" {
		t.Fatalf("statuses %q, want werr", got)
	}
	if msg := rs[2].Err.Error(); !strings.Contains(msg, "row 1 of 2") || !strings.Contains(msg, `"size"`) {
		t.Errorf("bad row error %q should name row 1 of 2 and the column", msg)
	}
	if msg := rs[3].Err.Error(); !strings.Contains(msg, "mapping the message to rows") || !strings.Contains(msg, "(w-t-0 offset 3)") {
		t.Errorf("failed mapping error %q should say so and name the record", msg)
	}

	// Redelivered at new offsets: f1's rows are duplicates; f1 with one new
	// item writes only that item.
	rs, err = w.Write(ctx, service.MessageBatch{
		kmsg(`{"form":"f1","items":[{"key":"f1:1","size":10},{"key":"f1:2","size":20}]}`, 0, 4),
		kmsg(`{"form":"f1","items":[{"key":"f1:2","size":20},{"key":"f1:3","size":30}]}`, 0, 5),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := letters(rs); got != "dw" {
		t.Fatalf("redelivery statuses %q, want dw", got)
	}

	tbl := openRO(t, dir)
	snap := tbl.Snapshot()
	keys := map[string]string{}
	n := 0
	for _, f := range snap.Files() {
		rows, err := snap.ReadFile(ctx, tbl.Store(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			keys[fmt.Sprint(r[0])] = fmt.Sprint(r[1])
			n++
		}
	}
	want := map[string]string{"f1:1": "f1", "f1:2": "f1", "f1:3": "f1"}
	if fmt.Sprint(keys) != fmt.Sprint(want) || n != 3 {
		t.Errorf("table keys %v (%d rows), want %v", keys, n, want)
	}
	if v, ok := tbl.TxnVersion("w-t-0"); !ok || v != 5 {
		t.Errorf("txn offset %d %v, want 5", v, ok)
	}
}
