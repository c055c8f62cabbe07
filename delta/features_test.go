package delta

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2/roaring64"
	"github.com/claimx/claimx-connect/delta/storage"
)

func TestZ85Vectors(t *testing.T) {
	raw := []byte{0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B}
	enc, err := Z85Encode(raw)
	must(t, err)
	eq(t, "encode", enc, "HelloWorld")
	dec, err := Z85Decode("HelloWorld")
	must(t, err)
	eq(t, "decode", string(dec), string(raw))
	for _, bad := range []string{"Hello", "Hell~World", "%%%%%"} {
		if _, err := Z85Decode(bad); err == nil && bad != "Hello" {
			t.Errorf("Z85Decode(%q): want an error", bad)
		}
	}
	if _, err := Z85Decode("Hell"); err == nil {
		t.Error("a length not a multiple of 5 must fail")
	}
	if _, err := Z85Encode([]byte{1, 2, 3}); err == nil {
		t.Error("a length not a multiple of 4 must fail")
	}
}

func TestDeletionVectorDescriptor(t *testing.T) {
	tests := []struct {
		dv       DeletionVector
		path     string
		uniqueID string
	}{
		{DeletionVector{StorageType: "u", PathOrInlineDv: "ab^-aqEH.-t@S}K{vb[*k^", Offset: ptr(int32(4)), SizeInBytes: 40, Cardinality: 6},
			"ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin", "uab^-aqEH.-t@S}K{vb[*k^@4"},
		{DeletionVector{StorageType: "u", PathOrInlineDv: "^-aqEH.-t@S}K{vb[*k^", SizeInBytes: 40, Cardinality: 6},
			"deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin", "u^-aqEH.-t@S}K{vb[*k^"},
	}
	for _, tc := range tests {
		p, err := tc.dv.RelativePath()
		must(t, err)
		eq(t, "path", p, tc.path)
		eq(t, "unique id", tc.dv.UniqueID(), tc.uniqueID)
	}
	abs := DeletionVector{StorageType: "p", PathOrInlineDv: "file:///tmp/tbl/x%20y/deletion_vector_1.bin"}
	p, err := absoluteToStorePath("/tmp/tbl", abs.PathOrInlineDv)
	must(t, err)
	eq(t, "absolute path", p, "x y/deletion_vector_1.bin")
	if _, err := absoluteToStorePath("/tmp/other", abs.PathOrInlineDv); err == nil {
		t.Error("a DV outside the table must be refused")
	}
}

func TestInlineDeletionVector(t *testing.T) {
	bitmap, err := EncodeRoaringBitmapArray(roaring64.BitmapOf(3, 4, 7, 11, 18, 29))
	must(t, err)
	size := len(bitmap)
	for len(bitmap)%4 != 0 { // Z85 pads to whole groups; sizeInBytes cuts
		bitmap = append(bitmap, 0)
	}
	enc, err := Z85Encode(bitmap)
	must(t, err)
	dv := &DeletionVector{StorageType: "i", PathOrInlineDv: enc, SizeInBytes: int32(size), Cardinality: 6}
	bm, err := ReadDeletionVector(context.Background(), newLocal(t), dv)
	must(t, err)
	eq(t, "rows", slicesString(bm.ToArray()), "[3 4 7 11 18 29]")
	// PROTOCOL.md's inline example (native format): the same rows.
	spec := &DeletionVector{StorageType: "i", PathOrInlineDv: "wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L", SizeInBytes: 40, Cardinality: 6}
	bm, err = ReadDeletionVector(context.Background(), newLocal(t), spec)
	must(t, err)
	eq(t, "spec example rows", slicesString(bm.ToArray()), "[3 4 7 11 18 29]")
	dv.Cardinality = 5
	if _, err := ReadDeletionVector(context.Background(), newLocal(t), dv); err == nil {
		t.Error("a wrong cardinality must fail")
	}
}

func slicesString(v []uint64) string {
	b, _ := json.Marshal(v)
	return strings.ReplaceAll(string(b), ",", " ")
}

func TestDeletionVectorFile(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	bm := roaring64.BitmapOf(0, 5, 1<<33) // a key above 32 bits too
	data, off, size, err := EncodeDeletionVectorFile(bm)
	must(t, err)
	raw := []byte{0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B, 1, 2, 3, 4, 5, 6, 7, 8}
	id, _ := Z85Encode(raw)
	dv := &DeletionVector{StorageType: "u", PathOrInlineDv: "zz" + id, Offset: &off, SizeInBytes: size, Cardinality: 3}
	p, err := dv.RelativePath()
	must(t, err)
	must(t, st.Put(ctx, p, data))
	got, err := ReadDeletionVector(ctx, st, dv)
	must(t, err)
	eq(t, "equal", got.Equals(bm), true)
	bad := slices.Clone(data)
	bad[len(bad)-6] ^= 0xFF // inside the bitmap: the checksum must catch it
	must(t, st.Put(ctx, p, bad))
	if _, err := ReadDeletionVector(ctx, st, dv); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("want a checksum error, got %v", err)
	}
}

func TestProtocolFeatures(t *testing.T) {
	tests := []struct {
		p   Protocol
		bad string
	}{
		{Protocol{MinReaderVersion: 1, MinWriterVersion: 6}, ""},
		{Protocol{MinReaderVersion: 2, MinWriterVersion: 5}, ""},
		{Protocol{MinReaderVersion: 3, MinWriterVersion: 7, ReaderFeatures: []string{"deletionVectors", "v2Checkpoint", "vacuumProtocolCheck"},
			WriterFeatures: []string{"deletionVectors", "v2Checkpoint", "rowTracking", "domainMetadata", "inCommitTimestamp", "clustering"}}, ""},
		{Protocol{MinReaderVersion: 3, MinWriterVersion: 7, ReaderFeatures: []string{"deletionVectors"}, WriterFeatures: []string{"icebergCompatV2", "allowColumnDefaults"}}, "icebergCompatV2, writer feature allowColumnDefaults"},
		{Protocol{MinReaderVersion: 3, MinWriterVersion: 7, ReaderFeatures: []string{"collations"}}, "reader feature collations"},
		{Protocol{MinReaderVersion: 4, MinWriterVersion: 7}, "minReaderVersion 4"},
	}
	for _, tc := range tests {
		err := tc.p.CheckSupported()
		if tc.bad == "" {
			must(t, err)
			continue
		}
		if !errors.Is(err, ErrUnsupportedFeature) || !strings.Contains(err.Error(), tc.bad) {
			t.Errorf("%+v: want ErrUnsupportedFeature naming %q, got %v", tc.p, tc.bad, err)
		}
	}
	eq(t, "legacy identity", Protocol{MinReaderVersion: 1, MinWriterVersion: 6}.Supports(FeatureIdentityColumns), true)
	eq(t, "legacy cm", Protocol{MinReaderVersion: 2, MinWriterVersion: 5}.Supports(FeatureColumnMapping), true)
	eq(t, "legacy no cm", Protocol{MinReaderVersion: 1, MinWriterVersion: 4}.Supports(FeatureColumnMapping), false)
	eq(t, "writer 7 explicit only", Protocol{MinReaderVersion: 1, MinWriterVersion: 7, WriterFeatures: []string{"appendOnly"}}.Supports(FeatureInvariants), false)
}

func TestApplyDVOrder(t *testing.T) {
	dv1 := &DeletionVector{StorageType: "i", PathOrInlineDv: "aaaaa", SizeInBytes: 4, Cardinality: 1}
	dv2 := &DeletionVector{StorageType: "i", PathOrInlineDv: "bbbbb", SizeInBytes: 4, Cardinality: 2}
	for _, removeFirst := range []bool{true, false} {
		s := newEmptySnapshot()
		must(t, s.apply(0, []Action{{Add: &AddFile{Path: "f.parquet", DeletionVector: dv1}}}))
		rm := Action{Remove: &RemoveFile{Path: "f.parquet", DeletionVector: dv1}}
		add := Action{Add: &AddFile{Path: "f.parquet", DeletionVector: dv2}}
		acts := []Action{add, rm}
		if removeFirst {
			acts = []Action{rm, add}
		}
		must(t, s.apply(1, acts))
		eq(t, "files", len(s.files), 1)
		eq(t, "live DV", s.files["f.parquet"].DeletionVector.UniqueID(), dv2.UniqueID())
		eq(t, "tombstones", len(s.tombstones), 1)
	}
}

// upgrade commits version 1 of a fresh table: a new protocol and the table
// properties conf.
func upgrade(t *testing.T, st storage.Store, tbl *Table, p Protocol, conf map[string]string) {
	t.Helper()
	md := tbl.Snapshot().Metadata()
	md.Configuration = conf
	data, err := EncodeCommit([]Action{{CommitInfo: map[string]any{"timestamp": 1, "operation": "SET TBLPROPERTIES"}}, {Protocol: &p}, {MetaData: &md}})
	must(t, err)
	must(t, st.PutIfAbsent(context.Background(), commitPath(tbl.Version()+1), data))
	must(t, tbl.Refresh(context.Background()))
}

var fullProtocol = Protocol{MinReaderVersion: 3, MinWriterVersion: 7,
	ReaderFeatures: []string{"deletionVectors", "v2Checkpoint"},
	WriterFeatures: []string{"deletionVectors", "v2Checkpoint", "domainMetadata", "rowTracking", "inCommitTimestamp", "vacuumProtocolCheck"}}

func simpleRows(prefix string, n int) []Row {
	rows := make([]Row, n)
	for i := range rows {
		rows[i] = Row{prefix + string(rune('a'+i)), int32(i), int32(0), nil}
	}
	return rows
}

func TestRowTrackingAndICT(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	clock := time.UnixMilli(1_000_000)
	now := func() time.Time { return clock }
	tbl := mustCreate(t, st, simpleSchema(), nil, nil, OpenOptions{Now: now, CheckpointInterval: 1000})
	upgrade(t, st, tbl, fullProtocol, map[string]string{"delta.enableInCommitTimestamps": "true"})
	res, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("x", 3)})
	must(t, err)
	f := res.Files[0]
	eq(t, "base row id", *f.BaseRowID, int64(0))
	eq(t, "commit version", *f.DefaultRowCommitVersion, res.Version)
	hwm, err := tbl.Snapshot().RowIDHighWaterMark()
	must(t, err)
	eq(t, "hwm", hwm, int64(2))
	ict1, ok := tbl.Snapshot().InCommitTimestamp()
	eq(t, "ict", ok, true)
	eq(t, "ict value", ict1, int64(1_000_000))
	// The clock goes back: the ICT still increases.
	clock = clock.Add(-time.Hour)
	_, err = tbl.Append(ctx, AppendRequest{Rows: simpleRows("y", 2)})
	must(t, err)
	ict2, _ := tbl.Snapshot().InCommitTimestamp()
	eq(t, "ict monotonic", ict2, ict1+1)
	b, err := st.Get(ctx, commitPath(tbl.Version()))
	must(t, err)
	acts, err := ParseCommit(b)
	must(t, err)
	eq(t, "commitInfo first", acts[0].CommitInfo != nil, true)
	h, err := tbl.History(ctx, 1)
	must(t, err)
	eq(t, "history uses ICT", h[0].InCommitTimestamp && h[0].Timestamp.UnixMilli() == ict2, true)

	// A concurrent winner takes row ids: the loser rebases on its mark.
	loser, err := Open(ctx, st, OpenOptions{Now: now, CheckpointInterval: 1000})
	must(t, err)
	winner, err := Open(ctx, st, OpenOptions{Now: now, CheckpointInterval: 1000})
	must(t, err)
	_, err = winner.Append(ctx, AppendRequest{Rows: simpleRows("w", 4)})
	must(t, err)
	wict, _ := winner.Snapshot().InCommitTimestamp()
	lres, err := loser.Append(ctx, AppendRequest{Rows: simpleRows("l", 2)})
	must(t, err)
	eq(t, "attempts", lres.Attempts, 2)
	eq(t, "rebased base row id", *lres.Files[0].BaseRowID, int64(9))
	eq(t, "rebased commit version", *lres.Files[0].DefaultRowCommitVersion, lres.Version)
	lict, _ := loser.Snapshot().InCommitTimestamp()
	eq(t, "ict after winner", lict, wict+1)
	hwm, _ = loser.Snapshot().RowIDHighWaterMark()
	eq(t, "hwm after rebase", hwm, int64(10))
	// Reopen from a checkpoint: the ICT is read back from the commit.
	must(t, loser.Checkpoint(ctx))
	re, err := Open(ctx, st, OpenOptions{ReadOnly: true})
	must(t, err)
	rict, ok := re.Snapshot().InCommitTimestamp()
	eq(t, "ict after checkpoint", ok && rict == lict, true)
	hwm, _ = re.Snapshot().RowIDHighWaterMark()
	eq(t, "hwm after checkpoint", hwm, int64(10))
	eq(t, "base row ids in checkpoint", re.Snapshot().files[pathKey(lres.Files[0].Path)].BaseRowID != nil, true)
}

func TestDomainConflict(t *testing.T) {
	ours := map[string]bool{"com.example": true, DomainRowTracking: true}
	w := []Action{{DomainMetadata: &DomainMetadata{Domain: DomainRowTracking, Configuration: `{"rowIdHighWaterMark":5}`}}}
	must(t, conflictWith(3, w, nil, nil, ours, false, nil))
	w = append(w, Action{DomainMetadata: &DomainMetadata{Domain: "com.example", Configuration: "{}"}})
	if err := conflictWith(3, w, nil, nil, ours, false, nil); !errors.Is(err, ErrConflict) {
		t.Fatalf("want ErrConflict, got %v", err)
	}
}
