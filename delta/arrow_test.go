package delta

import (
	"bytes"
	"context"
	"math/big"
	"testing"
	"time"

	pq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

// TestDataFilesReadByArrow reads every data file with arrow-go's Parquet
// reader, an implementation independent of parquet-go: physical and
// logical types, data page version 1, repetition, and every value.
func TestDataFilesReadByArrow(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	sc := wideSchema()
	tbl := mustCreate(t, st, sc, []string{"region"}, nil, OpenOptions{Writer: WriterOptions{RowGroupBytes: 16 << 10}})
	var rows []Row
	r := newRand(7)
	for i := 0; i < 1500; i++ {
		rows = append(rows, wideRow(r, i))
	}
	_, err := tbl.Append(ctx, AppendRequest{Rows: rows})
	must(t, err)
	snap := tbl.Snapshot()
	var all []Row
	for _, f := range snap.Files() {
		data, err := st.Get(ctx, pathKey(f.Path))
		must(t, err)
		rdr, err := file.NewParquetReader(bytes.NewReader(data))
		must(t, err)
		md := rdr.MetaData()
		fs := md.Schema
		if rdr.NumRowGroups() < 2 && md.NumRows > 300 {
			t.Errorf("%s: %d rows in %d row group(s); RowGroupBytes must bound row groups", f.Path, md.NumRows, rdr.NumRowGroups())
		}
		for c := 0; c < fs.NumColumns(); c++ {
			col := fs.Column(c)
			i := sc.Index(col.Name())
			if i < 0 {
				t.Fatalf("%s: unexpected column %q (partition columns must not be stored)", f.Path, col.Name())
			}
			checkArrowColumnType(t, col, sc.Type(i), sc.Field(i).Nullable)
		}
		if fs.NumColumns() != sc.Len()-1 {
			t.Errorf("%s: %d columns, want %d", f.Path, fs.NumColumns(), sc.Len()-1)
		}
		for g := 0; g < rdr.NumRowGroups(); g++ {
			rg := rdr.RowGroup(g)
			for c := 0; c < rg.NumColumns(); c++ {
				// parquet-mr (Spark) resolves every column chunk by its
				// path_in_schema; a wrong one fails the whole read.
				cc, err := md.RowGroup(g).ColumnChunk(c)
				must(t, err)
				if p := cc.PathInSchema(); len(p) != 1 || p[0] != fs.Column(c).Name() {
					t.Fatalf("%s: row group %d column %d: path_in_schema %q, want [%s]", f.Path, g, c, p, fs.Column(c).Name())
				}
				pr, err := rg.GetColumnPageReader(c)
				must(t, err)
				pages := 0
				for pr.Next() {
					switch pr.Page().Type() {
					case file.PageTypeDataPage:
						pages++
					case file.PageTypeDictionaryPage:
					default:
						t.Fatalf("%s: column %d: page type %v, want DATA_PAGE (v1)", f.Path, c, pr.Page().Type())
					}
				}
				must(t, pr.Err())
				if pages == 0 {
					t.Errorf("%s: column %d has no data page", f.Path, c)
				}
			}
		}
		// Values through arrow-go's column chunk readers.
		pv, err := ParsePartitionValue(sc.Type(sc.Index("region")), f.PartitionValues["region"])
		must(t, err)
		n := int(md.NumRows)
		fileRows := make([]Row, n)
		for k := range fileRows {
			fileRows[k] = make(Row, sc.Len())
			fileRows[k][sc.Index("region")] = pv
		}
		base := 0
		for g := 0; g < rdr.NumRowGroups(); g++ {
			rg := rdr.RowGroup(g)
			rgRows := int(rg.NumRows())
			for c := 0; c < fs.NumColumns(); c++ {
				i := sc.Index(fs.Column(c).Name())
				cr, err := rg.Column(c)
				must(t, err)
				vals := readArrowColumn(t, cr, rgRows, sc.Type(i))
				for k, v := range vals {
					fileRows[base+k][i] = v
				}
			}
			base += rgRows
		}
		eq(t, "rows read", base, n)
		all = append(all, fileRows...)
	}
	sameRows(t, all, rows)
}

func checkArrowColumnType(t *testing.T, col *schema.Column, dt DataType, nullable bool) {
	t.Helper()
	if got := col.MaxDefinitionLevel() == 1; got != nullable {
		t.Errorf("column %s: optional=%v, want %v", col.Name(), got, nullable)
	}
	lt := col.LogicalType()
	phys := col.PhysicalType()
	intLT := func(bits int8) {
		il, ok := lt.(schema.IntLogicalType)
		if !ok || il.BitWidth() != bits || !il.IsSigned() {
			t.Errorf("column %s: logical type %v, want INT(%d, signed)", col.Name(), lt, bits)
		}
	}
	switch dt.Kind {
	case KindString:
		_, ok := lt.(schema.StringLogicalType)
		if phys != pq.Types.ByteArray || !ok {
			t.Errorf("column %s: %v %v, want BYTE_ARRAY STRING", col.Name(), phys, lt)
		}
	case KindLong:
		if phys != pq.Types.Int64 {
			t.Errorf("column %s: physical %v, want INT64", col.Name(), phys)
		}
		intLT(64)
	case KindInteger, KindShort, KindByte:
		if phys != pq.Types.Int32 {
			t.Errorf("column %s: physical %v, want INT32", col.Name(), phys)
		}
		intLT(map[Kind]int8{KindInteger: 32, KindShort: 16, KindByte: 8}[dt.Kind])
	case KindDate:
		_, ok := lt.(schema.DateLogicalType)
		if phys != pq.Types.Int32 || !ok {
			t.Errorf("column %s: %v %v, want INT32 DATE", col.Name(), phys, lt)
		}
	case KindTimestamp:
		tl, ok := lt.(schema.TimestampLogicalType)
		if phys != pq.Types.Int64 || !ok || tl.TimeUnit() != schema.TimeUnitMicros || !tl.IsAdjustedToUTC() {
			t.Errorf("column %s: %v %v, want INT64 TIMESTAMP(MICROS, UTC)", col.Name(), phys, lt)
		}
	case KindDecimal:
		dl, ok := lt.(schema.DecimalLogicalType)
		if !ok || int(dl.Precision()) != dt.Precision || int(dl.Scale()) != dt.Scale {
			t.Errorf("column %s: logical %v, want DECIMAL(%d,%d)", col.Name(), lt, dt.Precision, dt.Scale)
		}
		want := pq.Types.FixedLenByteArray
		if dt.Precision <= 9 {
			want = pq.Types.Int32
		} else if dt.Precision <= 18 {
			want = pq.Types.Int64
		}
		if phys != want {
			t.Errorf("column %s: physical %v, want %v", col.Name(), phys, want)
		}
	case KindDouble:
		if phys != pq.Types.Double {
			t.Errorf("column %s: physical %v", col.Name(), phys)
		}
	case KindFloat:
		if phys != pq.Types.Float {
			t.Errorf("column %s: physical %v", col.Name(), phys)
		}
	case KindBoolean:
		if phys != pq.Types.Boolean {
			t.Errorf("column %s: physical %v", col.Name(), phys)
		}
	case KindBinary:
		if phys != pq.Types.ByteArray {
			t.Errorf("column %s: physical %v", col.Name(), phys)
		}
	}
}

// readArrowColumn reads n values of a flat column chunk, nil for nulls.
func readArrowColumn(t *testing.T, cr file.ColumnChunkReader, n int, dt DataType) []any {
	t.Helper()
	def := make([]int16, n)
	out := make([]any, n)
	spread := func(valuesRead int, get func(j int) any) {
		j := 0
		for k := 0; k < n; k++ {
			if cr.Descriptor().MaxDefinitionLevel() > 0 && def[k] == 0 {
				continue
			}
			out[k] = get(j)
			j++
		}
		if j != valuesRead {
			t.Fatalf("column %s: %d values for %d non-null levels", cr.Descriptor().Name(), valuesRead, j)
		}
	}
	var err error
	var total int64
	var read int
	switch r := cr.(type) {
	case *file.Int64ColumnChunkReader:
		v := make([]int64, n)
		total, read, err = r.ReadBatch(int64(n), v, def, nil)
		spread(read, func(j int) any {
			switch dt.Kind {
			case KindTimestamp:
				return time.UnixMicro(v[j]).UTC()
			case KindDecimal:
				return Decimal{Unscaled: big.NewInt(v[j]), Scale: dt.Scale}
			}
			return v[j]
		})
	case *file.Int32ColumnChunkReader:
		v := make([]int32, n)
		total, read, err = r.ReadBatch(int64(n), v, def, nil)
		spread(read, func(j int) any {
			switch dt.Kind {
			case KindShort:
				return int16(v[j])
			case KindByte:
				return int8(v[j])
			case KindDate:
				return time.Unix(int64(v[j])*86400, 0).UTC()
			case KindDecimal:
				return Decimal{Unscaled: big.NewInt(int64(v[j])), Scale: dt.Scale}
			}
			return v[j]
		})
	case *file.Float32ColumnChunkReader:
		v := make([]float32, n)
		total, read, err = r.ReadBatch(int64(n), v, def, nil)
		spread(read, func(j int) any { return v[j] })
	case *file.Float64ColumnChunkReader:
		v := make([]float64, n)
		total, read, err = r.ReadBatch(int64(n), v, def, nil)
		spread(read, func(j int) any { return v[j] })
	case *file.BooleanColumnChunkReader:
		v := make([]bool, n)
		total, read, err = r.ReadBatch(int64(n), v, def, nil)
		spread(read, func(j int) any { return v[j] })
	case *file.ByteArrayColumnChunkReader:
		v := make([]pq.ByteArray, n)
		total, read, err = r.ReadBatch(int64(n), v, def, nil)
		spread(read, func(j int) any {
			if dt.Kind == KindString {
				return string(v[j])
			}
			return bytes.Clone(v[j])
		})
	case *file.FixedLenByteArrayColumnChunkReader:
		v := make([]pq.FixedLenByteArray, n)
		total, read, err = r.ReadBatch(int64(n), v, def, nil)
		spread(read, func(j int) any {
			u := new(big.Int).SetBytes(v[j])
			if len(v[j]) > 0 && v[j][0]&0x80 != 0 {
				u.Sub(u, new(big.Int).Lsh(big.NewInt(1), uint(8*len(v[j]))))
			}
			return Decimal{Unscaled: u, Scale: dt.Scale}
		})
	default:
		t.Fatalf("unexpected column reader %T", cr)
	}
	must(t, err)
	if int(total) != n {
		t.Fatalf("column %s: read %d levels, want %d", cr.Descriptor().Name(), total, n)
	}
	return out
}
