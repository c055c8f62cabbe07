package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/parquet-go/parquet-go"
)

// ReadFile reads the live rows of one data file of the snapshot, in the
// order of the snapshot's schema, with partition values filled in from the
// add action and columns the file lacks (added later by schema evolution)
// as null. Rows its deletion vector deletes are dropped. Nested columns
// (struct, array as 3-level or legacy 2-level LIST, map) are assembled into
// the Row representation. Optimize uses it to rewrite files;
// de-duplication and tools use it to inspect them.
func (s *Snapshot) ReadFile(ctx context.Context, store storage.Store, add AddFile) ([]Row, error) {
	rows, _, err := s.readFileRows(ctx, store, add, s.schema)
	return rows, err
}

// readFileRows reads a data file as rows of sc (the snapshot schema, or it
// plus hidden columns such as the materialized row tracking columns), drops
// the rows the file's deletion vector deletes, and returns with each kept
// row its physical index in the file (nil when nothing was dropped).
func (s *Snapshot) readFileRows(ctx context.Context, store storage.Store, add AddFile, sc *Schema) ([]Row, []int64, error) {
	storePath := pathKey(add.Path)
	data, err := store.Get(ctx, storePath)
	if err != nil {
		return nil, nil, fmt.Errorf("reading data file %s: %w", storePath, err)
	}
	rows, err := decodeDataFile(data, sc, s.metadata.PartitionColumns, add.PartitionValues)
	if err != nil {
		return nil, nil, fmt.Errorf("reading data file %s: %w", storePath, err)
	}
	if add.DeletionVector == nil {
		return rows, nil, nil
	}
	dv, err := ReadDeletionVector(ctx, store, add.DeletionVector)
	if err != nil {
		return nil, nil, fmt.Errorf("reading data file %s: %w", storePath, err)
	}
	if !dv.IsEmpty() && dv.Maximum() >= uint64(len(rows)) {
		return nil, nil, fmt.Errorf("reading data file %s: its deletion vector deletes row %d but the file has %d rows", storePath, dv.Maximum(), len(rows))
	}
	kept := rows[:0]
	idx := make([]int64, 0, len(rows)-int(dv.GetCardinality()))
	for i, r := range rows {
		if dv.Contains(uint64(i)) {
			continue
		}
		kept = append(kept, r)
		idx = append(idx, int64(i))
	}
	return kept, idx, nil
}

type readCol struct {
	schemaIdx int
	leaf      int // -1: missing from the file
	tsUnit    int64
	int96     bool
	// What the file stores, for type widening (the table type may be wider
	// than the file's): a DATE leaf, and a decimal's scale (-1: not one).
	fileDate  bool
	fileScale int
}

func decodeDataFile(data []byte, sc *Schema, partCols []string, pvals map[string]*string) ([]Row, error) {
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("opening parquet: %w", err)
	}
	isPart := map[int]any{}
	for _, pc := range partCols {
		i := sc.Index(pc)
		if i < 0 {
			return nil, fmt.Errorf("partition column %q is not in the schema", pc)
		}
		raw, _ := sc.PartitionValue(pvals, pc)
		v, err := ParsePartitionValue(sc.types[i], raw)
		if err != nil {
			return nil, fmt.Errorf("partition column %q: %w", pc, err)
		}
		isPart[i] = v
	}
	fs := f.Schema()
	// Nested table columns are assembled from their leaves; a file with
	// repeated leaves has rows of varying length, so its values are split
	// by column first.
	repeated := false
	for _, lc := range fs.Columns() {
		leaf, _ := fs.Lookup(lc...)
		if leaf.MaxRepetitionLevel > 0 {
			repeated = true
		}
	}
	nested := map[int]*pqNode{}
	next := 0
	top := make([]StructField, len(sc.fields))
	for i, f := range sc.fields {
		top[i] = StructField{Name: f.Name, Type: sc.types[i], Nullable: f.Nullable, Metadata: f.Metadata}
	}
	fileCol := map[int]parquet.Field{} // table column -> file column
	for _, fld := range fs.Fields() {
		i := matchField(top, fld)
		if i >= 0 {
			fileCol[i] = fld
		}
		if i < 0 || !sc.types[i].Kind.grouped() {
			next += countLeaves(fld)
			continue
		}
		if _, part := isPart[i]; part {
			next += countLeaves(fld)
			continue
		}
		nd, err := buildPQNode(fld, sc.types[i], 0, 0, &next)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", sc.fields[i].Name, err)
		}
		nested[i] = nd
	}
	nLeaves := len(fs.Columns())
	var cols []readCol
	for i := range sc.fields {
		if _, ok := isPart[i]; ok {
			continue
		}
		if sc.types[i].Kind.grouped() {
			continue
		}
		rc := readCol{schemaIdx: i, leaf: -1, tsUnit: 1, fileScale: -1}
		if fld, ok := fileCol[i]; !ok {
			// Not in the file (added later by schema evolution): null.
		} else if leaf, ok := fs.Lookup(fld.Name()); ok {
			rc = readColFor(leaf.Node, leaf.ColumnIndex)
			rc.schemaIdx = i
		}
		cols = append(cols, rc)
	}
	var out []Row
	buf := make([]parquet.Row, 128)
	asm := assembler{vals: make([][]parquet.Value, nLeaves), pos: make([]int, nLeaves)}
	for _, rg := range f.RowGroups() {
		rr := rg.Rows()
		for {
			n, err := rr.ReadRows(buf)
			for k := 0; k < n; k++ {
				row := make(Row, len(sc.fields))
				for i, v := range isPart {
					row[i] = v
				}
				if repeated || len(nested) > 0 {
					for l := range asm.vals {
						asm.vals[l], asm.pos[l] = asm.vals[l][:0], 0
					}
					for _, v := range buf[k] {
						asm.vals[v.Column()] = append(asm.vals[v.Column()], v)
					}
					for i, nd := range nested {
						v, err := asm.assemble(nd)
						if err != nil {
							rr.Close()
							return nil, fmt.Errorf("column %q: %w", sc.fields[i].Name, err)
						}
						row[i] = v
					}
				}
				for _, c := range cols {
					if c.leaf < 0 {
						continue
					}
					pv := parquet.Value{}
					if repeated {
						if len(asm.vals[c.leaf]) > 0 {
							pv = asm.vals[c.leaf][0]
						}
					} else {
						pv = buf[k][c.leaf]
					}
					v, err := fromParquet(sc.types[c.schemaIdx], pv, c)
					if err != nil {
						rr.Close()
						return nil, fmt.Errorf("column %q: %w", sc.fields[c.schemaIdx].Name, err)
					}
					row[c.schemaIdx] = v
				}
				out = append(out, row)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rr.Close()
				return nil, fmt.Errorf("reading rows: %w", err)
			}
		}
		rr.Close()
	}
	return out, nil
}

func fromParquet(t DataType, v parquet.Value, c readCol) (any, error) {
	if v.IsNull() {
		return nil, nil
	}
	switch t.Kind {
	case KindString:
		return string(v.ByteArray()), nil
	case KindBinary:
		return bytes.Clone(v.ByteArray()), nil
	case KindLong, KindInteger, KindShort:
		// Type widening: a file may hold a narrower integer than the table.
		var n int64
		switch v.Kind() {
		case parquet.Int32:
			n = int64(v.Int32())
		case parquet.Int64:
			n = v.Int64()
		default:
			return nil, fmt.Errorf("file stores %s where the table has %s", v.Kind(), t)
		}
		switch t.Kind {
		case KindLong:
			return n, nil
		case KindInteger:
			return int32(n), nil
		}
		return int16(n), nil
	case KindByte:
		return int8(v.Int32()), nil
	case KindFloat:
		return v.Float(), nil
	case KindDouble:
		// Widening from float and from integers (int -> double).
		switch v.Kind() {
		case parquet.Float:
			return float64(v.Float()), nil
		case parquet.Int32:
			return float64(v.Int32()), nil
		case parquet.Int64:
			return float64(v.Int64()), nil
		}
		return v.Double(), nil
	case KindBoolean:
		return v.Boolean(), nil
	case KindDate:
		return time.Unix(int64(v.Int32())*86400, 0).UTC(), nil
	case KindTimestamp, KindTimestampNTZ:
		if c.fileDate && v.Kind() == parquet.Int32 {
			// Widened from date: midnight of that day.
			return time.Unix(int64(v.Int32())*86400, 0).UTC(), nil
		}
		if c.int96 {
			// INT96: nanoseconds of the day, then the Julian day.
			i := v.Int96()
			nanos := int64(uint64(i[0]) | uint64(i[1])<<32)
			days := int64(i[2]) - 2440588
			return time.Unix(days*86400, nanos).UTC(), nil
		}
		n := v.Int64()
		switch {
		case c.tsUnit == 1000:
			return time.UnixMilli(n).UTC(), nil
		case c.tsUnit == -1000:
			return time.Unix(0, n).UTC(), nil
		}
		return time.UnixMicro(n).UTC(), nil
	case KindDecimal:
		var u *big.Int
		switch v.Kind() {
		case parquet.Int32:
			u = big.NewInt(int64(v.Int32()))
		case parquet.Int64:
			u = big.NewInt(v.Int64())
		default:
			b := v.ByteArray()
			u = new(big.Int).SetBytes(b)
			if len(b) > 0 && b[0]&0x80 != 0 {
				u.Sub(u, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
			}
		}
		if c.fileScale >= 0 && c.fileScale < t.Scale {
			// Widened decimal: same value at the table's larger scale.
			u.Mul(u, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.Scale-c.fileScale)), nil))
		}
		return Decimal{Unscaled: u, Scale: t.Scale}, nil
	}
	return nil, fmt.Errorf("unsupported type %s", t)
}

// ParsePartitionValue converts a serialized partition value (nil or "" for
// null) back to the Go type of its column.
func ParsePartitionValue(t DataType, s *string) (any, error) {
	if s == nil || *s == "" {
		return nil, nil
	}
	v := *s
	switch t.Kind {
	case KindString:
		return v, nil
	case KindLong, KindInteger, KindShort, KindByte:
		bits := map[Kind]int{KindLong: 64, KindInteger: 32, KindShort: 16, KindByte: 8}[t.Kind]
		n, err := strconv.ParseInt(v, 10, bits)
		if err != nil {
			return nil, fmt.Errorf("partition value %q is not a %s", v, t)
		}
		switch t.Kind {
		case KindLong:
			return n, nil
		case KindInteger:
			return int32(n), nil
		case KindShort:
			return int16(n), nil
		}
		return int8(n), nil
	case KindFloat:
		f, err := strconv.ParseFloat(v, 32)
		if err != nil {
			return nil, fmt.Errorf("partition value %q is not a float", v)
		}
		return float32(f), nil
	case KindDouble:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("partition value %q is not a double", v)
		}
		return f, nil
	case KindBoolean:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("partition value %q is not a boolean", v)
		}
		return b, nil
	case KindDate:
		return ParseDate(v)
	case KindTimestamp:
		return ParseTimestamp(v)
	case KindTimestampNTZ:
		return ParseTimestampNTZ(v)
	case KindDecimal:
		return ParseDecimal(v, t.Precision, t.Scale)
	}
	return nil, fmt.Errorf("unsupported partition column type %s", t)
}
