package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/internal/jsontext"
	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
)

// WriterOptions tune the data files Append and Optimize write.
type WriterOptions struct {
	// Compression is "snappy" (default), "zstd" or "uncompressed".
	Compression string
	// TargetFileSize splits an append into files of about this many bytes
	// (a file is closed at the first row-group boundary past it).
	// Default 128 MiB.
	TargetFileSize int64
	// RowGroupBytes bounds a row group by its uncompressed size. Default
	// 64 MiB.
	RowGroupBytes int64
	// MaxRowsPerRowGroup bounds a row group by rows. Default 1,000,000.
	MaxRowsPerRowGroup int64
	// Parallelism is how many partitions' files are encoded and uploaded at
	// once. Default GOMAXPROCS; 1 writes them one after another.
	Parallelism int
}

func (o WriterOptions) withDefaults() WriterOptions {
	if o.Compression == "" {
		o.Compression = "snappy"
	}
	if o.TargetFileSize <= 0 {
		o.TargetFileSize = 128 << 20
	}
	if o.RowGroupBytes <= 0 {
		o.RowGroupBytes = 64 << 20
	}
	if o.MaxRowsPerRowGroup <= 0 {
		o.MaxRowsPerRowGroup = 1_000_000
	}
	if o.Parallelism <= 0 {
		o.Parallelism = runtime.GOMAXPROCS(0)
	}
	return o
}

func (o WriterOptions) codec() (compress.Codec, string, error) {
	switch strings.ToLower(o.Compression) {
	case "snappy", "":
		return &parquet.Snappy, "snappy", nil
	case "zstd":
		return &parquet.Zstd, "zstd", nil
	case "uncompressed", "none":
		return &parquet.Uncompressed, "", nil
	}
	return nil, "", fmt.Errorf("unknown compression %q (want snappy, zstd or uncompressed)", o.Compression)
}

// ParquetNode returns the Parquet node Delta readers expect for a column
// type: timestamps as INT64 TIMESTAMP(isAdjustedToUTC=true, MICROS), signed
// integer logical types, INT32 DATE, STRING byte arrays and DECIMAL on INT32,
// INT64 or FIXED_LEN_BYTE_ARRAY by precision.
func ParquetNode(t DataType, nullable bool) parquet.Node {
	var n parquet.Node
	switch t.Kind {
	case KindString:
		n = parquet.String()
	case KindLong:
		n = parquet.Int(64)
	case KindInteger:
		n = parquet.Int(32)
	case KindShort:
		n = parquet.Int(16)
	case KindByte:
		n = parquet.Int(8)
	case KindFloat:
		n = parquet.Leaf(parquet.FloatType)
	case KindDouble:
		n = parquet.Leaf(parquet.DoubleType)
	case KindBoolean:
		n = parquet.Leaf(parquet.BooleanType)
	case KindBinary:
		n = parquet.Leaf(parquet.ByteArrayType)
	case KindDate:
		n = parquet.Date()
	case KindTimestamp:
		// Say MICROS explicitly: parquet-go's defaults are NANOS for
		// time.Time and MILLIS for a bare timestamp tag, and Spark rejects
		// INT64 NANOS.
		n = parquet.TimestampAdjusted(parquet.Microsecond, true)
	case KindTimestampNTZ:
		// Wall-clock micros, isAdjustedToUTC=false, as Spark writes it.
		n = parquet.TimestampAdjusted(parquet.Microsecond, false)
	case KindDecimal:
		switch {
		case t.Precision <= 9:
			n = parquet.Decimal(t.Scale, t.Precision, parquet.Int32Type)
		case t.Precision <= 18:
			n = parquet.Decimal(t.Scale, t.Precision, parquet.Int64Type)
		default:
			n = parquet.Decimal(t.Scale, t.Precision, parquet.FixedLenByteArrayType(decimalBytes(t.Precision)))
		}
	default:
		panic(fmt.Sprintf("delta: no parquet node for %s", t))
	}
	if nullable {
		return parquet.Optional(n)
	}
	return parquet.Required(n)
}

// decimalBytes is the smallest two's-complement width holding precision
// decimal digits, as Spark sizes FIXED_LEN_BYTE_ARRAY decimals.
func decimalBytes(precision int) int {
	for n := 1; ; n++ {
		if math.Pow(2, float64(8*n-1)) >= math.Pow(10, float64(precision)) {
			return n
		}
	}
}

// dataLayout maps a table schema to the columns stored in data files.
type dataLayout struct {
	schema    *Schema
	partCols  []int // schema indexes of partition columns, in partition order
	dataCols  []int // schema indexes of stored columns, in schema order
	leaf      []int // parquet leaf index per dataCols entry
	pq        *parquet.Schema
	statsCols int // how many of dataCols get min/max/nullCount
	// nested holds, per dataCols entry, the shredding tree of a nested
	// column (nil for flat columns); nestedLeaf marks their leaf columns.
	nested       []*pqNode
	nestedLeaf   []bool
	numStatNodes int // statistics slots of nested columns
	// statsOn, when delta.dataSkippingStatsColumns is set, says which
	// dataCols get statistics (it overrides the leaf count).
	statsOn []bool
}

func newDataLayout(sc *Schema, partitionColumns []string, conf map[string]string) (*dataLayout, error) {
	l := &dataLayout{schema: sc}
	isPart := map[int]bool{}
	for _, pc := range partitionColumns {
		i := sc.Index(pc)
		if i < 0 {
			return nil, fmt.Errorf("partition column %q is not in the schema", pc)
		}
		if sc.types[i].Kind == KindBinary {
			return nil, fmt.Errorf("partition column %q: binary partition columns are not supported", pc)
		}
		if sc.types[i].Kind.grouped() {
			return nil, fmt.Errorf("partition column %q: a %s column cannot be a partition column", pc, sc.types[i].Kind)
		}
		isPart[i] = true
		l.partCols = append(l.partCols, i)
	}
	g := parquet.Group{}
	for i := range sc.fields {
		if isPart[i] {
			continue
		}
		l.dataCols = append(l.dataCols, i)
		// Column mapping: stored under the physical name, with field_id.
		f := &sc.fields[i]
		if sc.types[i].Kind.grouped() {
			g[PhysicalName(f.Name, f.Metadata)] = withFieldID(nestedParquetNode(sc.types[i], f.Nullable), f.Metadata)
			continue
		}
		g[PhysicalName(f.Name, f.Metadata)] = withFieldID(ParquetNode(sc.types[i], f.Nullable), f.Metadata)
	}
	if len(l.dataCols) == 0 {
		return nil, fmt.Errorf("every column is a partition column; a data file needs at least one other column")
	}
	l.pq = parquet.NewSchema("spark_schema", g)
	l.nested = make([]*pqNode, len(l.dataCols))
	for j, i := range l.dataCols {
		if sc.types[i].Kind.grouped() {
			nd, err := nestedLayout(l.pq, PhysicalName(sc.fields[i].Name, sc.fields[i].Metadata), sc.types[i])
			if err != nil {
				return nil, fmt.Errorf("building parquet schema: column %q: %w", sc.fields[i].Name, err)
			}
			l.nested[j] = nd
			l.leaf = append(l.leaf, nd.leaves[0])
			continue
		}
		lc, ok := l.pq.Lookup(PhysicalName(sc.fields[i].Name, sc.fields[i].Metadata))
		if !ok {
			return nil, fmt.Errorf("building parquet schema: column %q not found", sc.fields[i].Name)
		}
		l.leaf = append(l.leaf, lc.ColumnIndex)
	}
	l.nestedLeaf = make([]bool, len(l.pq.Columns()))
	for _, nd := range l.nested {
		if nd != nil {
			for _, c := range nd.leaves {
				l.nestedLeaf[c] = true
			}
		}
	}
	l.statsCols = len(l.dataCols)
	if v, ok := conf["delta.dataSkippingNumIndexedCols"]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("table property delta.dataSkippingNumIndexedCols=%q: %w", v, err)
		}
		if n >= 0 && n < l.statsCols {
			l.statsCols = n
		}
	} else if l.statsCols > 32 {
		l.statsCols = 32
	}
	if v := strings.TrimSpace(conf["delta.dataSkippingStatsColumns"]); v != "" {
		l.applyStatsColumns(v)
		return l, nil
	}
	if l.nestedStats() {
		// Nested columns count their leaves toward the limit, in schema
		// order, as Spark does.
		limit := 32
		if v, ok := conf["delta.dataSkippingNumIndexedCols"]; ok {
			limit, _ = strconv.Atoi(strings.TrimSpace(v))
			if limit < 0 {
				limit = math.MaxInt
			}
		}
		l.statsCols = 0
		for j := range l.dataCols {
			if limit <= 0 {
				break
			}
			l.statsCols = j + 1
			if nd := l.nested[j]; nd != nil {
				l.assignStatNodes(nd, &limit)
				continue
			}
			limit--
		}
	}
	return l, nil
}

// colStats accumulates one column's statistics while values are encoded.
type colStats struct {
	nulls      int64
	has        bool
	noMinMax   bool // NaN/Inf seen, or a type without min/max
	minI, maxI int64
	minF, maxF float64
	minS, maxS string
	minD, maxD *big.Int
}

// unsafeBytes views s as bytes without copying; parquet-go copies byte
// array values into its column buffers, so the view never escapes.
func unsafeBytes(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// wallMicros is the wall-clock reading of t as microseconds since
// 1970-01-01T00:00, whatever t's location: a timestamp_ntz is never
// converted between zones.
func wallMicros(t time.Time) int64 {
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	return time.Date(y, mo, d, h, mi, sec, t.Nanosecond(), time.UTC).UnixMicro()
}

func daysSinceEpoch(t time.Time) int64 {
	sec := t.Unix()
	d := sec / 86400
	if sec%86400 < 0 {
		d--
	}
	return d
}

// typeError reports a value whose Go type does not match its column.
func typeError(col Field, t DataType, v any) error {
	return &ConversionError{Column: col.Name, Type: t.String(), Value: describeValue(v), Reason: fmt.Sprintf("a Go %T cannot be stored in a %s column (see delta.Row)", v, t)}
}

// encodeValue converts v (already checked non-nil) into a Parquet value of
// column t and updates the column's statistics. It is the hot path of
// Append: a type switch and a few comparisons, no allocation for numbers
// and strings.
func encodeValue(f *Field, t DataType, v any, st *colStats, wantStats bool) (parquet.Value, error) {
	switch t.Kind {
	case KindString:
		s, ok := v.(string)
		if !ok {
			return parquet.Value{}, typeError(*f, t, v)
		}
		if wantStats {
			if !st.has {
				st.minS, st.maxS, st.has = s, s, true
			} else if s == st.maxS {
				// Repeated values (constants, enums) are common: an
				// equality check is cheaper than two orderings.
			} else if s < st.minS {
				st.minS = s
			} else if s > st.maxS {
				st.maxS = s
			}
		}
		return parquet.ByteArrayValue(unsafeBytes(s)), nil
	case KindLong, KindInteger, KindShort, KindByte, KindDate, KindTimestamp, KindTimestampNTZ:
		var n int64
		switch x := v.(type) {
		case int64:
			if t.Kind != KindLong {
				return parquet.Value{}, typeError(*f, t, v)
			}
			n = x
		case int32:
			if t.Kind != KindInteger {
				return parquet.Value{}, typeError(*f, t, v)
			}
			n = int64(x)
		case int16:
			if t.Kind != KindShort {
				return parquet.Value{}, typeError(*f, t, v)
			}
			n = int64(x)
		case int8:
			if t.Kind != KindByte {
				return parquet.Value{}, typeError(*f, t, v)
			}
			n = int64(x)
		case time.Time:
			switch t.Kind {
			case KindTimestamp:
				n = x.UnixMicro()
			case KindTimestampNTZ:
				n = wallMicros(x)
			case KindDate:
				n = daysSinceEpoch(x)
				if n < math.MinInt32 || n > math.MaxInt32 {
					return parquet.Value{}, &ConversionError{Column: f.Name, Type: t.String(), Value: x.String(), Reason: "date out of range"}
				}
			default:
				return parquet.Value{}, typeError(*f, t, v)
			}
		default:
			return parquet.Value{}, typeError(*f, t, v)
		}
		if wantStats {
			if !st.has {
				st.minI, st.maxI, st.has = n, n, true
			} else if n < st.minI {
				st.minI = n
			} else if n > st.maxI {
				st.maxI = n
			}
		}
		if t.Kind == KindLong || t.Kind == KindTimestamp || t.Kind == KindTimestampNTZ {
			return parquet.Int64Value(n), nil
		}
		return parquet.Int32Value(int32(n)), nil
	case KindFloat, KindDouble:
		var x float64
		var pv parquet.Value
		switch y := v.(type) {
		case float64:
			if t.Kind != KindDouble {
				return parquet.Value{}, typeError(*f, t, v)
			}
			x, pv = y, parquet.DoubleValue(y)
		case float32:
			if t.Kind != KindFloat {
				return parquet.Value{}, typeError(*f, t, v)
			}
			x, pv = float64(y), parquet.FloatValue(y)
		default:
			return parquet.Value{}, typeError(*f, t, v)
		}
		if wantStats {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				// JSON has no NaN or Infinity: leave min/max out rather
				// than write bounds that exclude real values.
				st.noMinMax = true
			} else if !st.has {
				st.minF, st.maxF, st.has = x, x, true
			} else if x < st.minF {
				st.minF = x
			} else if x > st.maxF {
				st.maxF = x
			}
		}
		return pv, nil
	case KindBoolean:
		b, ok := v.(bool)
		if !ok {
			return parquet.Value{}, typeError(*f, t, v)
		}
		st.noMinMax = true
		return parquet.BooleanValue(b), nil
	case KindBinary:
		b, ok := v.([]byte)
		if !ok {
			return parquet.Value{}, typeError(*f, t, v)
		}
		st.noMinMax = true
		return parquet.ByteArrayValue(b), nil
	case KindDecimal:
		d, ok := v.(Decimal)
		if !ok {
			if p, ok2 := v.(*Decimal); ok2 && p != nil {
				d, ok = *p, true
			}
		}
		if !ok {
			return parquet.Value{}, typeError(*f, t, v)
		}
		u, err := d.rescale(t.Precision, t.Scale)
		if err != nil {
			return parquet.Value{}, &ConversionError{Column: f.Name, Type: t.String(), Value: d.String(), Reason: err.Error()}
		}
		if wantStats {
			if !st.has {
				st.minD, st.maxD, st.has = u, u, true
			} else if u.Cmp(st.minD) < 0 {
				st.minD = u
			} else if u.Cmp(st.maxD) > 0 {
				st.maxD = u
			}
		}
		switch {
		case t.Precision <= 9:
			return parquet.Int32Value(int32(u.Int64())), nil
		case t.Precision <= 18:
			return parquet.Int64Value(u.Int64()), nil
		default:
			return parquet.FixedLenByteArrayValue(twosComplement(u, decimalBytes(t.Precision))), nil
		}
	}
	return parquet.Value{}, typeError(*f, t, v)
}

// twosComplement returns u as a big-endian two's-complement integer of n
// bytes.
func twosComplement(u *big.Int, n int) []byte {
	out := make([]byte, n)
	if u.Sign() >= 0 {
		u.FillBytes(out)
		return out
	}
	// -x = 2^(8n) - x
	m := new(big.Int).Lsh(big.NewInt(1), uint(8*n))
	m.Add(m, u)
	m.FillBytes(out)
	return out
}

// writtenFile is one data file written for a commit.
type writtenFile struct {
	add AddFile
	// storePath is the object path (Hive-escaped, not URI-encoded).
	storePath string
	rows      int64
}

// fileWriter writes the rows of one partition into one or more files.
type fileWriter struct {
	layout  *dataLayout
	opts    WriterOptions
	codec   compress.Codec
	ext     string
	store   storage.Store
	dir     string // Hive directory with trailing slash, or ""
	pvals   map[string]*string
	now     func() time.Time
	fileSeq *atomic.Int64

	buf     bytes.Buffer
	w       *parquet.Writer
	stats   []colStats
	rows    int64
	rgBytes int64
	rgRows  int64

	// colBuf holds the pending values column by column (indexed by
	// parquet leaf): they go to the column writers directly, skipping the
	// row-to-column split parquet.Writer.WriteRows would do.
	colBuf     [][]parquet.Value
	nestedLen  []int      // values pending per nested leaf column
	nstats     []colStats // by pqNode.statIdx
	pending    []Row
	pendingIdx []int
	nbuf       int
	chunkRows  int
	chunkLimit int64
	out        []writtenFile
}

const writeChunk = 512

func newFileWriter(l *dataLayout, opts WriterOptions, store storage.Store, dir string, pvals map[string]*string, now func() time.Time, seq *atomic.Int64) (*fileWriter, error) {
	codec, ext, err := opts.codec()
	if err != nil {
		return nil, err
	}
	fw := &fileWriter{layout: l, opts: opts, codec: codec, ext: ext, store: store, dir: dir, pvals: pvals, now: now, fileSeq: seq}
	fw.chunkLimit = max(1, min(opts.RowGroupBytes, opts.TargetFileSize)/8)
	fw.chunkRows = 64 // until the first chunk tells the row size
	fw.colBuf = make([][]parquet.Value, len(l.nestedLeaf))
	for i := range fw.colBuf {
		if !l.nestedLeaf[i] {
			fw.colBuf[i] = make([]parquet.Value, writeChunk)
		}
	}
	fw.nestedLen = make([]int, len(fw.colBuf))
	return fw, nil
}

func (fw *fileWriter) start() {
	fw.buf.Reset()
	// A new writer per file: parquet-go v0.32's Writer.Reset reuse writes
	// empty path_in_schema entries into the next file's column chunks,
	// which parquet-mr (Spark) rejects.
	fw.w = parquet.NewWriter(&fw.buf, fw.layout.pq,
		parquet.Compression(fw.codec),
		parquet.DataPageVersion(1),
		parquet.CreatedBy("claimx-connect", "", ""),
	)
	fw.stats = make([]colStats, len(fw.layout.dataCols))
	fw.nstats = make([]colStats, fw.layout.numStatNodes)
	fw.rows, fw.rgBytes, fw.rgRows = 0, 0, 0
}

// writeRow queues one row (in table schema order); rows are encoded a chunk
// at a time, column by column, so each column's type dispatch and stats
// live outside the per-value loop.
func (fw *fileWriter) writeRow(ctx context.Context, ri int, row Row) error {
	if fw.rows == 0 && fw.nbuf == 0 {
		fw.start()
	}
	fw.pending = append(fw.pending, row)
	fw.pendingIdx = append(fw.pendingIdx, ri)
	fw.nbuf++
	if fw.nbuf >= fw.chunkRows {
		return fw.flushChunk(ctx)
	}
	return nil
}

// rowError wraps err with the input row index.
type rowError struct {
	row int
	err error
}

func (e *rowError) Error() string { return fmt.Sprintf("row %d: %v", e.row, e.err) }
func (e *rowError) Unwrap() error { return e.err }

// encodeChunk converts the pending rows into per-column parquet values and
// statistics. It returns the approximate uncompressed size.
func (fw *fileWriter) encodeChunk() (int64, error) {
	l := fw.layout
	sc := l.schema
	rows := fw.pending
	n := len(rows)
	size := int64(8 * n * len(l.dataCols))
	for j, ci := range l.dataCols {
		f := &sc.fields[ci]
		t := sc.types[ci]
		if nd := l.nested[j]; nd != nil {
			sz, err := fw.shredChunk(j, nd, f)
			if err != nil {
				return 0, err
			}
			size += sz
			continue
		}
		leaf := l.leaf[j]
		st := &fw.stats[j]
		want := j < l.statsCols && (l.statsOn == nil || l.statsOn[j])
		dst := fw.colBuf[leaf][:n]
		def := 0
		if f.Nullable {
			def = 1
		}
		null := parquet.NullValue().Level(0, 0, leaf)
		nullErr := func(k int) error {
			return &rowError{fw.pendingIdx[k], &ConversionError{Column: f.Name, Type: t.String(), Value: "null", Reason: "the column is not nullable"}}
		}
		switch t.Kind {
		case KindString:
			has, lo, hi := st.has, st.minS, st.maxS
			for k, r := range rows {
				v := r[ci]
				if v == nil {
					if def == 0 {
						return 0, nullErr(k)
					}
					st.nulls++
					dst[k] = null
					continue
				}
				s, ok := v.(string)
				if !ok {
					return 0, &rowError{fw.pendingIdx[k], typeError(*f, t, v)}
				}
				size += int64(len(s))
				if want {
					switch {
					case !has:
						lo, hi, has = s, s, true
					case s == hi:
					case s < lo:
						lo = s
					case s > hi:
						hi = s
					}
				}
				// Build in place with the inlinable setters: Value.Level
				// is not inlined and was a fifth of the encoding cost.
				pv := parquet.ByteArrayValue(unsafeBytes(s))
				pv.SetDefinitionLevel(def)
				pv.SetColumnIndex(leaf)
				dst[k] = pv
			}
			st.has, st.minS, st.maxS = has, lo, hi
		case KindLong, KindTimestamp, KindInteger:
			has, lo, hi := st.has, st.minI, st.maxI
			for k, r := range rows {
				v := r[ci]
				if v == nil {
					if def == 0 {
						return 0, nullErr(k)
					}
					st.nulls++
					dst[k] = null
					continue
				}
				var x int64
				var pv parquet.Value
				switch y := v.(type) {
				case int64:
					if t.Kind != KindLong {
						return 0, &rowError{fw.pendingIdx[k], typeError(*f, t, v)}
					}
					x, pv = y, parquet.Int64Value(y)
				case int32:
					if t.Kind != KindInteger {
						return 0, &rowError{fw.pendingIdx[k], typeError(*f, t, v)}
					}
					x, pv = int64(y), parquet.Int32Value(y)
				case time.Time:
					if t.Kind != KindTimestamp {
						return 0, &rowError{fw.pendingIdx[k], typeError(*f, t, v)}
					}
					x = y.UnixMicro()
					pv = parquet.Int64Value(x)
				default:
					return 0, &rowError{fw.pendingIdx[k], typeError(*f, t, v)}
				}
				if want {
					switch {
					case !has:
						lo, hi, has = x, x, true
					case x < lo:
						lo = x
					case x > hi:
						hi = x
					}
				}
				pv.SetDefinitionLevel(def)
				pv.SetColumnIndex(leaf)
				dst[k] = pv
			}
			st.has, st.minI, st.maxI = has, lo, hi
		default:
			for k, r := range rows {
				v := r[ci]
				if v == nil {
					if def == 0 {
						return 0, nullErr(k)
					}
					st.nulls++
					dst[k] = null
					continue
				}
				pv, err := encodeValue(f, t, v, st, want)
				if err != nil {
					return 0, &rowError{fw.pendingIdx[k], err}
				}
				if b, ok := v.([]byte); ok {
					size += int64(len(b))
				}
				dst[k] = pv.Level(0, def, leaf)
			}
		}
	}
	return size, nil
}

func (fw *fileWriter) flushChunk(ctx context.Context) error {
	if fw.nbuf == 0 {
		return nil
	}
	if err := fw.writeColumns(); err != nil {
		return err
	}
	fw.rgRows += int64(fw.nbuf)
	fw.nbuf = 0
	if fw.rgBytes >= fw.opts.RowGroupBytes || fw.rgRows >= fw.opts.MaxRowsPerRowGroup {
		if err := fw.w.Flush(); err != nil {
			return fmt.Errorf("flushing parquet row group: %w", err)
		}
		fw.rgBytes, fw.rgRows = 0, 0
	}
	if fw.w.Size() >= fw.opts.TargetFileSize {
		return fw.finishFile(ctx)
	}
	return nil
}

// finishFile closes the current file, uploads it and records its add.
func (fw *fileWriter) finishFile(ctx context.Context) error {
	if err := fw.flushChunk0(); err != nil {
		return err
	}
	if fw.rows == 0 {
		return nil
	}
	if err := fw.w.Close(); err != nil {
		return fmt.Errorf("closing parquet file: %w", err)
	}
	seq := fw.fileSeq.Add(1) - 1
	name := fmt.Sprintf("part-%05d-%s.c000", seq, uuid.NewString())
	if fw.ext != "" {
		name += "." + fw.ext
	}
	name += ".parquet"
	storePath := fw.dir + name
	data := fw.buf.Bytes()
	if err := fw.store.Put(ctx, storePath, data); err != nil {
		return fmt.Errorf("writing data file %s: %w", storePath, err)
	}
	add := AddFile{
		Path:             encodeLogPath(storePath),
		PartitionValues:  fw.pvals,
		Size:             int64(len(data)),
		ModificationTime: fw.now().UnixMilli(),
		DataChange:       true,
		Stats:            fw.statsJSON(),
	}
	fw.out = append(fw.out, writtenFile{add: add, storePath: storePath, rows: fw.rows})
	fw.rows = 0
	return nil
}

// writeColumns hands the pending values to the column writers.
func (fw *fileWriter) writeColumns() error {
	size, err := fw.encodeChunk()
	if err != nil {
		return err
	}
	fw.rgBytes += size
	// Size the next chunk so one chunk stays a fraction of the row-group
	// and file bounds even when rows are large.
	if per := size / int64(fw.nbuf); per > 0 {
		fw.chunkRows = int(max(1, min(int64(writeChunk), fw.chunkLimit/per)))
	}
	fw.pending, fw.pendingIdx = fw.pending[:0], fw.pendingIdx[:0]
	cws := fw.w.ColumnWriters()
	for c, vals := range fw.colBuf {
		if fw.layout.nestedLeaf[c] {
			vals = vals[:fw.nestedLen[c]]
		} else {
			vals = vals[:fw.nbuf]
		}
		if _, err := cws[c].WriteRowValues(vals); err != nil {
			return fmt.Errorf("encoding parquet column %d: %w", c, err)
		}
	}
	fw.rows += int64(fw.nbuf)
	return nil
}

// flushChunk0 writes pending rows without the size checks (used on close).
func (fw *fileWriter) flushChunk0() error {
	if fw.nbuf == 0 {
		return nil
	}
	if err := fw.writeColumns(); err != nil {
		return err
	}
	fw.rgRows += int64(fw.nbuf)
	fw.nbuf = 0
	return nil
}

// statsJSON renders the file statistics as the JSON string add.stats holds.
func (fw *fileWriter) statsJSON() string {
	l := fw.layout
	sc := l.schema
	b := make([]byte, 0, 256+64*l.statsCols)
	b = append(b, `{"numRecords":`...)
	b = strconv.AppendInt(b, fw.rows, 10)
	for pass := 0; pass < 3; pass++ {
		key := [...]string{"minValues", "maxValues", "nullCount"}[pass]
		b = append(b, `,"`...)
		b = append(b, key...)
		b = append(b, `":{`...)
		first := true
		for j := 0; j < l.statsCols; j++ {
			if l.statsOn != nil && !l.statsOn[j] {
				continue
			}
			st := &fw.stats[j]
			if pass < 2 && (!st.has || st.noMinMax) && l.nested[j] == nil {
				continue
			}
			if nd := l.nested[j]; nd != nil {
				ci := l.dataCols[j]
				b = fw.appendNestedStats(b, nd, PhysicalName(sc.fields[ci].Name, sc.fields[ci].Metadata), pass, &first)
				continue
			}
			ci := l.dataCols[j]
			if !first {
				b = append(b, ',')
			}
			first = false
			b = jsontext.AppendString(b, PhysicalName(sc.fields[ci].Name, sc.fields[ci].Metadata), true)
			b = append(b, ':')
			if pass == 2 {
				b = strconv.AppendInt(b, st.nulls, 10)
				continue
			}
			b = appendStatValue(b, sc.types[ci], st, pass == 1)
		}
		b = append(b, '}')
	}
	b = append(b, '}')
	return string(b)
}

// statsStringPrefix is how many characters of a string column the stats
// keep, as Spark and delta-rs do.
const statsStringPrefix = 32

func appendStatValue(b []byte, t DataType, st *colStats, isMax bool) []byte {
	switch t.Kind {
	case KindString:
		if isMax {
			return jsontext.AppendString(b, truncateMax(st.maxS, statsStringPrefix), true)
		}
		return jsontext.AppendString(b, truncateMin(st.minS, statsStringPrefix), true)
	case KindLong, KindInteger, KindShort, KindByte:
		if isMax {
			return strconv.AppendInt(b, st.maxI, 10)
		}
		return strconv.AppendInt(b, st.minI, 10)
	case KindDate:
		d := st.minI
		if isMax {
			d = st.maxI
		}
		return append(append(append(b, '"'), time.Unix(d*86400, 0).UTC().Format("2006-01-02")...), '"')
	case KindTimestamp, KindTimestampNTZ:
		// Stats hold milliseconds: round the min down and the max up so the
		// bounds still contain every microsecond value. timestamp_ntz has
		// no zone suffix.
		ms := floorDiv(st.minI, 1000)
		if isMax {
			ms = -floorDiv(-st.maxI, 1000)
		}
		layout := "2006-01-02T15:04:05.000Z07:00"
		if t.Kind == KindTimestampNTZ {
			layout = "2006-01-02T15:04:05.000"
		}
		return append(append(append(b, '"'), time.UnixMilli(ms).UTC().Format(layout)...), '"')
	case KindFloat, KindDouble:
		x := st.minF
		if isMax {
			x = st.maxF
		}
		bits := 64
		if t.Kind == KindFloat {
			bits = 32
		}
		return strconv.AppendFloat(b, x, 'g', -1, bits)
	case KindDecimal:
		u := st.minD
		if isMax {
			u = st.maxD
		}
		return append(b, Decimal{Unscaled: u, Scale: t.Scale}.String()...)
	}
	return append(b, "null"...)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// truncateMin cuts s to n characters: a prefix is never greater than s.
func truncateMin(s string, n int) string {
	i, count := 0, 0
	for i < len(s) && count < n {
		_, sz := utf8.DecodeRuneInString(s[i:])
		i += sz
		count++
	}
	return s[:i]
}

// truncateMax cuts s to about n characters and appends U+FFFD as a
// tie-breaker so the result stays >= s in UTF-8 byte order (how Spark and
// delta-rs compare strings). The cut moves right past characters that sort
// at or above U+FFFD (including every supplementary character), because
// appending U+FFFD after dropping one of them would make the bound smaller
// than s; if only such characters remain, s is kept whole.
func truncateMax(s string, n int) string {
	p := len(truncateMin(s, n))
	if p == len(s) {
		return s
	}
	// As Delta Spark: an ASCII tie-breaker (U+007F) when the first cut
	// character is below it, which keeps the bound short and ASCII.
	if r, _ := utf8.DecodeRuneInString(s[p:]); r < 0x7F {
		return s[:p] + "\x7f"
	}
	for p < len(s) {
		r, sz := utf8.DecodeRuneInString(s[p:])
		if r < 0xFFFD {
			return s[:p] + "\uFFFD"
		}
		p += sz
	}
	return s
}

// hiveEscape escapes a partition value for a directory name the way Hive
// (and so Spark) does.
func hiveEscape(s string) string {
	need := false
	for i := 0; i < len(s); i++ {
		if hiveNeedsEscape(s[i]) {
			need = true
			break
		}
	}
	if !need {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if hiveNeedsEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hexUpper[c>>4])
			b.WriteByte(hexUpper[c&0xF])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func hiveNeedsEscape(c byte) bool {
	if c < 0x20 || c == 0x7F {
		return true
	}
	switch c {
	case '"', '#', '%', '\'', '*', '/', ':', '=', '?', '\\', '{', '[', ']', '^':
		return true
	}
	return false
}

// hiveDefaultPartition is the directory name of a null partition value.
const hiveDefaultPartition = "__HIVE_DEFAULT_PARTITION__"

// encodeLogPath URI-encodes an object path for add.path, segment by segment.
func encodeLogPath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// partitionString renders a partition value per PROTOCOL.md §Partition
// Value Serialization; nil means null. An empty string is null too.
func partitionString(col Field, t DataType, v any) (*string, error) {
	if v == nil {
		return nil, nil
	}
	var s string
	switch x := v.(type) {
	case string:
		if t.Kind != KindString {
			return nil, typeError(col, t, v)
		}
		if x == "" {
			return nil, nil
		}
		s = x
	case int64, int32, int16, int8:
		want := map[Kind]bool{KindLong: true, KindInteger: true, KindShort: true, KindByte: true}
		if !want[t.Kind] {
			return nil, typeError(col, t, v)
		}
		var st colStats
		if _, err := encodeValue(&col, t, v, &st, false); err != nil {
			return nil, err
		}
		s = fmt.Sprint(x)
	case bool:
		if t.Kind != KindBoolean {
			return nil, typeError(col, t, v)
		}
		s = strconv.FormatBool(x)
	case float64:
		if t.Kind != KindDouble {
			return nil, typeError(col, t, v)
		}
		s = strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		if t.Kind != KindFloat {
			return nil, typeError(col, t, v)
		}
		s = strconv.FormatFloat(float64(x), 'g', -1, 32)
	case time.Time:
		switch t.Kind {
		case KindDate:
			s = time.Unix(daysSinceEpoch(x)*86400, 0).UTC().Format("2006-01-02")
		case KindTimestamp:
			s = x.UTC().Format("2006-01-02T15:04:05.000000Z")
		case KindTimestampNTZ:
			s = x.Format("2006-01-02 15:04:05.000000")
		default:
			return nil, typeError(col, t, v)
		}
	case Decimal:
		if t.Kind != KindDecimal {
			return nil, typeError(col, t, v)
		}
		u, err := x.rescale(t.Precision, t.Scale)
		if err != nil {
			return nil, &ConversionError{Column: col.Name, Type: t.String(), Value: x.String(), Reason: err.Error()}
		}
		s = Decimal{Unscaled: u, Scale: t.Scale}.String()
	default:
		return nil, typeError(col, t, v)
	}
	return &s, nil
}

// partitionDir returns the Hive directory ("a=1/b=x/") for partition values.
func partitionDir(names []string, vals []*string) string {
	var b strings.Builder
	for i, n := range names {
		b.WriteString(hiveEscape(n))
		b.WriteByte('=')
		if vals[i] == nil {
			b.WriteString(hiveDefaultPartition)
		} else {
			b.WriteString(hiveEscape(*vals[i]))
		}
		b.WriteByte('/')
	}
	return b.String()
}

// partitionGroup is the rows of one partition within an append.
type partitionGroup struct {
	vals []*string
	rows []int
}

// groupByPartition splits rows by partition values, keeping first-seen
// order. Consecutive rows with the same raw partition values (the common
// case: events arrive in time order) skip the string rendering.
func groupByPartition(l *dataLayout, rows []Row) ([]*partitionGroup, error) {
	if len(l.partCols) == 0 {
		g := &partitionGroup{rows: make([]int, len(rows))}
		for i := range rows {
			g.rows[i] = i
		}
		return []*partitionGroup{g}, nil
	}
	sc := l.schema
	byKey := map[string]*partitionGroup{}
	var groups []*partitionGroup
	var prev Row
	var prevGroup *partitionGroup
	var key strings.Builder
	for i, row := range rows {
		if prev != nil && samePartition(l.partCols, prev, row) {
			prevGroup.rows = append(prevGroup.rows, i)
			prev = row
			continue
		}
		vals := make([]*string, len(l.partCols))
		key.Reset()
		for k, ci := range l.partCols {
			s, err := partitionString(sc.fields[ci], sc.types[ci], row[ci])
			if err != nil {
				return nil, fmt.Errorf("row %d: %w", i, err)
			}
			if s == nil && !sc.fields[ci].Nullable {
				return nil, fmt.Errorf("row %d: %w", i, &ConversionError{Column: sc.fields[ci].Name, Type: sc.types[ci].String(), Value: "null", Reason: "the partition column is not nullable"})
			}
			vals[k] = s
			if s == nil {
				key.WriteByte(0)
			} else {
				key.WriteByte(1)
				key.WriteString(*s)
			}
			key.WriteByte(0xFF)
		}
		g, ok := byKey[key.String()]
		if !ok {
			g = &partitionGroup{vals: vals}
			byKey[key.String()] = g
			groups = append(groups, g)
		}
		g.rows = append(g.rows, i)
		prev, prevGroup = row, g
	}
	return groups, nil
}

func samePartition(cols []int, a, b Row) bool {
	for _, c := range cols {
		x, y := a[c], b[c]
		switch xv := x.(type) {
		case int32:
			yv, ok := y.(int32)
			if !ok || xv != yv {
				return false
			}
		case int64:
			yv, ok := y.(int64)
			if !ok || xv != yv {
				return false
			}
		case string:
			yv, ok := y.(string)
			if !ok || xv != yv {
				return false
			}
		case nil:
			if y != nil {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// writeDataFiles writes rows (in layout.schema order) as data files, one or
// more per partition, and returns their add actions. Files are uploaded
// before anything is committed; a failure leaves only unreferenced files,
// which VACUUM removes.
func writeDataFiles(ctx context.Context, store storage.Store, l *dataLayout, rows []Row, opts WriterOptions, now func() time.Time) ([]writtenFile, error) {
	groups, err := groupByPartition(l, rows)
	if err != nil {
		return nil, err
	}
	partNames := make([]string, len(l.partCols))
	for k, ci := range l.partCols {
		// add.partitionValues keys (and directories) use the physical
		// name under column mapping.
		partNames[k] = PhysicalName(l.schema.fields[ci].Name, l.schema.fields[ci].Metadata)
	}
	var seq atomic.Int64
	results := make([][]writtenFile, len(groups))
	// writeGroup encodes and uploads one partition's files with fw, whose
	// buffers are reused from group to group.
	writeGroup := func(ctx context.Context, fw **fileWriter, gi int) error {
		g := groups[gi]
		pv := make(map[string]*string, len(partNames))
		for k, n := range partNames {
			pv[n] = g.vals[k]
		}
		dir := ""
		if len(partNames) > 0 {
			dir = partitionDir(partNames, g.vals)
		}
		if *fw == nil {
			w, err := newFileWriter(l, opts, store, dir, pv, now, &seq)
			if err != nil {
				return err
			}
			*fw = w
		} else {
			(*fw).dir, (*fw).pvals, (*fw).out = dir, pv, nil
		}
		w := *fw
		for _, ri := range g.rows {
			row := rows[ri]
			if len(row) != len(l.schema.fields) {
				return fmt.Errorf("row %d has %d values, the schema has %d columns", ri, len(row), len(l.schema.fields))
			}
			if err := w.writeRow(ctx, ri, row); err != nil {
				return err
			}
		}
		if err := w.finishFile(ctx); err != nil {
			return err
		}
		results[gi] = w.out
		return nil
	}
	workers := min(opts.Parallelism, len(groups))
	if workers <= 1 {
		var fw *fileWriter
		for gi := range groups {
			if err := writeGroup(ctx, &fw, gi); err != nil {
				return nil, err
			}
		}
	} else {
		// Partitions are independent files: encode and upload them in
		// parallel (which also overlaps object-store latency).
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		next := make(chan int)
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				var fw *fileWriter
				for gi := range next {
					if errs[w] != nil {
						continue
					}
					if err := writeGroup(ctx, &fw, gi); err != nil {
						errs[w] = err
						cancel()
					}
				}
			}(w)
		}
	feed:
		for gi := range groups {
			select {
			case next <- gi:
			case <-ctx.Done():
				break feed
			}
		}
		close(next)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	var out []writtenFile
	for _, r := range results {
		out = append(out, r...)
	}
	return out, nil
}

const hexUpper = "0123456789ABCDEF"
