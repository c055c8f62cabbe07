package delta

import (
	"context"
	"testing"
)

func TestRoundtripSmoke(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	sc := trackingSchema(t)
	tbl := mustCreate(t, st, sc, trackingPartitions, map[string]string{"delta.enableChangeDataFeed": "true"}, OpenOptions{})
	rows := make([]Row, 3000)
	for i := range rows {
		rows[i] = trackingRow(i)
	}
	res, err := tbl.Append(ctx, AppendRequest{Rows: rows, Txns: []Txn{{AppID: "app-0", Version: 41}}})
	must(t, err)
	eq(t, "version", res.Version, 1)
	t2, err := Open(ctx, st, OpenOptions{})
	must(t, err)
	s := t2.Snapshot()
	eq(t, "version", s.Version(), 1)
	v, ok := s.TxnVersion("app-0")
	eq(t, "txn found", ok, true)
	eq(t, "txn", v, 41)
	t.Log(len(s.Files()), s.Files()[0].Path, s.Files()[0].Stats)
}
