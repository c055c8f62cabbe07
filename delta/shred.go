package delta

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/claimx/claimx-connect/internal/jsontext"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// This file maps nested Delta columns (struct, array, map) to Parquet and
// back: the Parquet node of a type (struct as a group, array as the 3-level
// LIST layout, map as MAP with a repeated key_value group), the Dremel
// shredding of a value into per-leaf (repetition, definition) levels for
// the column writers, and the assembly of those levels back into the Row
// representation. Flat primitive columns never come here.

// nestedParquetNode returns the Parquet node of t (any kind), optional when
// nullable.
func nestedParquetNode(t DataType, nullable bool) parquet.Node {
	var n parquet.Node
	switch t.Kind {
	case KindStruct:
		g := parquet.Group{}
		for _, f := range t.Fields {
			g[PhysicalName(f.Name, f.Metadata)] = withFieldID(nestedParquetNode(f.Type, f.Nullable), f.Metadata)
		}
		n = g
	case KindArray:
		n = parquet.List(nestedParquetNode(*t.Elem, t.ContainsNull))
	case KindVariant:
		// The Parquet variant layout: binary metadata and value.
		n = parquet.Group{"metadata": parquet.Required(parquet.Leaf(parquet.ByteArrayType)), "value": parquet.Required(parquet.Leaf(parquet.ByteArrayType))}
	case KindMap:
		// parquet.Map makes the key required whatever node it is given.
		n = parquet.Map(nestedParquetNode(*t.Key, false), nestedParquetNode(*t.Value, t.ValueContainsNull))
	default:
		return ParquetNode(t, nullable)
	}
	if nullable {
		return parquet.Optional(n)
	}
	return parquet.Required(n)
}

// pqNode is one node of a nested column, with the levels the Dremel
// encoding gives it.
type pqNode struct {
	t        DataType
	optional bool
	def      int // definition level once this node is non-null
	// repeated (list and map): the repetition level of the repeated group
	// and the definition level once it holds at least one entry.
	rep, repDef int
	// children: struct fields (fieldIdx says which DataType field each is,
	// -1 for a file field the type lacks), the list element, or the map key
	// and value.
	children []*pqNode
	fieldIdx []int
	// missing lists the struct fields of t the file lacks (read as null).
	// statIdx indexes the file writer's nested statistics for a leaf or
	// list/map outside any list or map within the indexed columns; -1:
	// none.
	statIdx int
	leaf    int   // column index, for leaves
	leaves  []int // every leaf column index beneath (self for a leaf)
	rc      readCol
}

// buildPQNode pairs the Parquet node n (a column of a file or of our
// schema) with the Delta type t. def and rep are the levels of n's parent;
// next is the next leaf column index in schema order. Struct fields are
// matched by physical name (column mapping), then by field id.
func buildPQNode(n parquet.Node, t DataType, def, rep int, next *int) (*pqNode, error) {
	nd := &pqNode{t: t, optional: n.Optional(), statIdx: -1}
	if nd.optional {
		def++
	}
	nd.def = def
	if n.Leaf() {
		if t.Kind.grouped() {
			return nil, fmt.Errorf("file stores a primitive where the table has %s", t)
		}
		nd.leaf = *next
		*next++
		nd.leaves = []int{nd.leaf}
		nd.rc = readColFor(n, nd.leaf)
		return nd, nil
	}
	switch t.Kind {
	case KindVariant:
		// children[0] is the metadata, children[1] the value, whatever
		// order the file stores them in.
		nd.children = make([]*pqNode, 2)
		for _, f := range n.Fields() {
			c, err := buildPQNode(f, DataType{Kind: KindBinary}, def, rep, next)
			if err != nil {
				return nil, fmt.Errorf("variant: %w", err)
			}
			switch f.Name() {
			case "metadata":
				nd.children[0] = c
			case "value":
				nd.children[1] = c
			default:
				return nil, fmt.Errorf("variant has a field %q (want metadata and value; shredded variants are not read)", f.Name())
			}
			nd.leaves = append(nd.leaves, c.leaves...)
		}
		if nd.children[0] == nil || nd.children[1] == nil {
			return nil, errors.New("variant lacks its metadata or value field")
		}
		return nd, nil
	case KindStruct:
		for _, f := range n.Fields() {
			j := matchField(t.Fields, f)
			if j < 0 {
				// A file column the table lacks: skip its leaves.
				*next += countLeaves(f)
				continue
			}
			c, err := buildPQNode(f, t.Fields[j].Type, def, rep, next)
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", t.Fields[j].Name, err)
			}
			nd.children = append(nd.children, c)
			nd.fieldIdx = append(nd.fieldIdx, j)
			nd.leaves = append(nd.leaves, c.leaves...)
		}
		return nd, nil
	case KindArray, KindMap:
		fs := n.Fields()
		if len(fs) != 1 || !fs[0].Repeated() {
			return nil, fmt.Errorf("file %s column is not a repeated group", t.Kind)
		}
		r := fs[0]
		nd.rep, nd.repDef = rep+1, def+1
		if t.Kind == KindArray {
			elem := r
			// 3-level LIST: the repeated group holds one element field.
			// Otherwise (legacy 2-level) the repeated node is the element.
			if !r.Leaf() && len(r.Fields()) == 1 && r.Name() != "array" && !strings.HasSuffix(r.Name(), "_tuple") {
				elem = r.Fields()[0]
				c, err := buildPQNode(elem, *t.Elem, def+1, rep+1, next)
				if err != nil {
					return nil, fmt.Errorf("array element: %w", err)
				}
				nd.children = []*pqNode{c}
			} else {
				c, err := buildPQNode(parquet.Required(elem), *t.Elem, def+1, rep+1, next)
				if err != nil {
					return nil, fmt.Errorf("array element: %w", err)
				}
				nd.children = []*pqNode{c}
			}
			nd.leaves = nd.children[0].leaves
			return nd, nil
		}
		kv := r.Fields()
		if len(kv) != 2 {
			return nil, errors.New("file map column's key_value group does not have 2 fields")
		}
		k, err := buildPQNode(kv[0], *t.Key, def+1, rep+1, next)
		if err != nil {
			return nil, fmt.Errorf("map key: %w", err)
		}
		v, err := buildPQNode(kv[1], *t.Value, def+1, rep+1, next)
		if err != nil {
			return nil, fmt.Errorf("map value: %w", err)
		}
		nd.children = []*pqNode{k, v}
		nd.leaves = append(append([]int{}, k.leaves...), v.leaves...)
		return nd, nil
	}
	return nil, fmt.Errorf("file stores a group where the table has %s", t)
}

func countLeaves(n parquet.Node) int {
	if n.Leaf() {
		return 1
	}
	c := 0
	for _, f := range n.Fields() {
		c += countLeaves(f)
	}
	return c
}

// readColFor records how a leaf's values are to be decoded (timestamp unit,
// INT96).
func readColFor(n parquet.Node, leaf int) readCol {
	rc := readCol{leaf: leaf, tsUnit: 1, fileScale: -1}
	if lt := n.Type().LogicalType(); lt != nil {
		switch x := lt.Value.(type) {
		case *format.TimestampType:
			switch x.Unit.Value.(type) {
			case *format.MilliSeconds:
				rc.tsUnit = 1000
			case *format.NanoSeconds:
				rc.tsUnit = -1000
			}
		case *format.DateType:
			rc.fileDate = true
		case *format.DecimalType:
			rc.fileScale = int(x.Scale)
		}
	}
	rc.int96 = n.Type().Kind() == parquet.Int96
	return rc
}

// shredder appends the leaf values of nested columns, by column index.
type shredder struct {
	cols   [][]parquet.Value // indexed by leaf column index
	nstats []colStats        // by pqNode.statIdx
}

func (s *shredder) emitNulls(nd *pqNode, rep, def int) {
	s.emitEmpty(nd, rep, def)
	s.countNulls(nd)
}

// emitEmpty writes one undefined entry per leaf: a null, or (with the
// node's own definition level) an empty list or map.
func (s *shredder) emitEmpty(nd *pqNode, rep, def int) {
	for _, l := range nd.leaves {
		s.cols[l] = append(s.cols[l], parquet.Value{}.Level(rep, def, l))
	}
}

// countNulls counts a null for every statistics node at or under nd: a
// null struct makes each of its leaves null, as Spark counts them.
func (s *shredder) countNulls(nd *pqNode) {
	if nd.statIdx >= 0 {
		s.nstats[nd.statIdx].nulls++
	}
	if nd.t.Kind == KindStruct {
		for _, c := range nd.children {
			s.countNulls(c)
		}
	}
}

// shred appends v (of nd's type) to the leaf columns; rep is the repetition
// level of its first value and def the definition level of its parent.
func (s *shredder) shred(nd *pqNode, v any, rep, def int, path string) error {
	if v == nil {
		if !nd.optional {
			return &ConversionError{Column: path, Type: nd.t.String(), Value: "null", Reason: "the value is not nullable"}
		}
		s.emitNulls(nd, rep, def)
		return nil
	}
	d := nd.def
	switch nd.t.Kind {
	case KindVariant:
		vr, ok := v.(Variant)
		if !ok {
			return typeErrorAt(path, nd.t, v, "a variant value is a Variant")
		}
		if err := s.shred(nd.children[0], vr.Metadata, rep, d, path+".metadata"); err != nil {
			return err
		}
		return s.shred(nd.children[1], vr.Value, rep, d, path+".value")
	case KindStruct:
		vals, ok := v.([]any)
		if !ok || len(vals) != len(nd.t.Fields) {
			return typeErrorAt(path, nd.t, v, fmt.Sprintf("a struct value is a []any of %d values", len(nd.t.Fields)))
		}
		for i, c := range nd.children {
			fi := nd.fieldIdx[i]
			if err := s.shred(c, vals[fi], rep, d, path+"."+nd.t.Fields[fi].Name); err != nil {
				return err
			}
		}
		return nil
	case KindArray:
		elems, ok := v.([]any)
		if !ok {
			return typeErrorAt(path, nd.t, v, "an array value is a []any")
		}
		if len(elems) == 0 {
			s.emitEmpty(nd, rep, d)
			return nil
		}
		for i, e := range elems {
			r := rep
			if i > 0 {
				r = nd.rep
			}
			if err := s.shred(nd.children[0], e, r, nd.repDef, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		return nil
	case KindMap:
		entries, ok := v.([]MapEntry)
		if !ok {
			return typeErrorAt(path, nd.t, v, "a map value is a []MapEntry")
		}
		if len(entries) == 0 {
			s.emitEmpty(nd, rep, d)
			return nil
		}
		for i, e := range entries {
			r := rep
			if i > 0 {
				r = nd.rep
			}
			p := path + "[" + fmt.Sprint(e.Key) + "]"
			if e.Key == nil {
				return &ConversionError{Column: p, Type: nd.t.Key.String(), Value: "null", Reason: "map keys cannot be null"}
			}
			if err := s.shred(nd.children[0], e.Key, r, nd.repDef, p); err != nil {
				return err
			}
			if err := s.shred(nd.children[1], e.Value, r, nd.repDef, p); err != nil {
				return err
			}
		}
		return nil
	}
	// A leaf.
	var st *colStats
	if nd.statIdx >= 0 {
		st = &s.nstats[nd.statIdx]
	}
	f := Field{Name: path, Type: nd.t.String()}
	pv, err := encodeValue(&f, nd.t, v, orScratch(st), st != nil)
	if err != nil {
		return err
	}
	s.cols[nd.leaf] = append(s.cols[nd.leaf], pv.Level(rep, d, nd.leaf))
	return nil
}

func orScratch(st *colStats) *colStats {
	if st == nil {
		return &colStats{}
	}
	return st
}

func typeErrorAt(path string, t DataType, v any, want string) error {
	return &ConversionError{Column: path, Type: t.String(), Value: truncate(fmt.Sprintf("%T", v), maxValueInMessage), Reason: want}
}

// assembler rebuilds nested values from one row's leaf values.
type assembler struct {
	vals [][]parquet.Value // by leaf column index: this row's values
	pos  []int
}

func (a *assembler) peek(l int) (parquet.Value, bool) {
	if a.pos[l] >= len(a.vals[l]) {
		return parquet.Value{}, false
	}
	return a.vals[l][a.pos[l]], true
}

func (a *assembler) skipAll(nd *pqNode) {
	for _, l := range nd.leaves {
		a.pos[l]++
	}
}

func (a *assembler) assemble(nd *pqNode) (any, error) {
	if len(nd.leaves) == 0 {
		return nil, nil
	}
	first, ok := a.peek(nd.leaves[0])
	if !ok {
		return nil, errors.New("column values end early")
	}
	if first.DefinitionLevel() < nd.def {
		a.skipAll(nd)
		return nil, nil
	}
	switch nd.t.Kind {
	case KindVariant:
		md, err := a.assemble(nd.children[0])
		if err != nil {
			return nil, err
		}
		val, err := a.assemble(nd.children[1])
		if err != nil {
			return nil, err
		}
		mb, _ := md.([]byte)
		vb, _ := val.([]byte)
		return Variant{Metadata: mb, Value: vb}, nil
	case KindStruct:
		out := make([]any, len(nd.t.Fields))
		for i, c := range nd.children {
			v, err := a.assemble(c)
			if err != nil {
				return nil, err
			}
			out[nd.fieldIdx[i]] = v
		}
		return out, nil
	case KindArray, KindMap:
		if first.DefinitionLevel() < nd.repDef {
			a.skipAll(nd)
			if nd.t.Kind == KindArray {
				return []any{}, nil
			}
			return []MapEntry{}, nil
		}
		var arr []any
		var entries []MapEntry
		for {
			if nd.t.Kind == KindArray {
				v, err := a.assemble(nd.children[0])
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			} else {
				k, err := a.assemble(nd.children[0])
				if err != nil {
					return nil, err
				}
				v, err := a.assemble(nd.children[1])
				if err != nil {
					return nil, err
				}
				entries = append(entries, MapEntry{Key: k, Value: v})
			}
			nx, ok := a.peek(nd.leaves[0])
			if !ok || nx.RepetitionLevel() != nd.rep {
				break
			}
		}
		if nd.t.Kind == KindArray {
			return arr, nil
		}
		return entries, nil
	}
	a.pos[nd.leaf]++
	return fromParquet(nd.t, first, nd.rc)
}

// matchField returns the index of the struct field stored as Parquet field
// f: by physical name (the logical name without column mapping), else by
// column-mapping id = field_id; -1 when none.
func matchField(fields []StructField, f parquet.Field) int {
	for k, tf := range fields {
		if PhysicalName(tf.Name, tf.Metadata) == f.Name() {
			return k
		}
	}
	if fid := f.ID(); fid != 0 {
		for k, tf := range fields {
			if id, ok := ColumnMappingID(tf.Metadata); ok && int(id) == fid {
				return k
			}
		}
	}
	return -1
}

// nestedLayout builds the shredding tree of the top-level column name
// (physical) of our own Parquet schema.
func nestedLayout(sc *parquet.Schema, name string, t DataType) (*pqNode, error) {
	next := 0
	for _, f := range sc.Fields() {
		if f.Name() != name {
			next += countLeaves(f)
			continue
		}
		return buildPQNode(f, t, 0, 0, &next)
	}
	return nil, errors.New("not in the parquet schema")
}

// shredChunk shreds the pending rows' values of nested data column j into
// its leaf column buffers and returns their approximate size.
func (fw *fileWriter) shredChunk(j int, nd *pqNode, f *Field) (int64, error) {
	ci := fw.layout.dataCols[j]
	s := shredder{cols: fw.colBuf, nstats: fw.nstats}
	for _, l := range nd.leaves {
		s.cols[l] = s.cols[l][:0]
	}
	st := &fw.stats[j]
	st.noMinMax = true
	for k, r := range fw.pending {
		v := r[ci]
		if v == nil {
			st.nulls++
		}
		if err := s.shred(nd, v, 0, 0, f.Name); err != nil {
			return 0, &rowError{fw.pendingIdx[k], err}
		}
	}
	var size int64
	for _, l := range nd.leaves {
		fw.nestedLen[l] = len(s.cols[l])
		size += int64(8 * len(s.cols[l]))
		for _, v := range s.cols[l] {
			if v.Kind() == parquet.ByteArray && !v.IsNull() {
				size += int64(len(v.ByteArray()))
			}
		}
	}
	// Keep the grown buffers for the next chunk.
	fw.colBuf = s.cols
	return size, nil
}

func (l *dataLayout) nestedStats() bool {
	for _, nd := range l.nested {
		if nd != nil {
			return true
		}
	}
	return false
}

// assignStatNodes numbers, in schema order and while *limit lasts, the
// leaves of nd outside any list or map, and its lists and maps (which get a
// nullCount only, as Spark writes them).
func (l *dataLayout) assignStatNodes(nd *pqNode, limit *int) {
	if *limit <= 0 {
		return
	}
	if nd.t.Kind == KindStruct {
		for _, i := range nd.schemaOrder() {
			l.assignStatNodes(nd.children[i], limit)
		}
		return
	}
	if nd.t.Kind == KindVariant {
		return // Spark writes no statistics for variant
	}
	nd.statIdx = l.numStatNodes
	l.numStatNodes++
	*limit--
}

// appendNestedStats appends `"name":{...}` for the statistics of nested
// column nd in pass (0 min, 1 max, 2 nullCount), omitting empty objects.
func (fw *fileWriter) appendNestedStats(b []byte, nd *pqNode, name string, pass int, first *bool) []byte {
	var body []byte
	if nd.t.Kind == KindStruct {
		inner := true
		for _, i := range nd.schemaOrder() {
			f := &nd.t.Fields[nd.fieldIdx[i]]
			body = fw.appendNestedStats(body, nd.children[i], PhysicalName(f.Name, f.Metadata), pass, &inner)
		}
		if len(body) == 0 {
			return b
		}
	} else {
		if nd.statIdx < 0 {
			return b
		}
		st := &fw.nstats[nd.statIdx]
		switch {
		case pass == 2:
			body = strconv.AppendInt(body, st.nulls, 10)
		case nd.t.Kind.Nested() || !st.has || st.noMinMax:
			return b
		default:
			body = appendStatValue(body, nd.t, st, pass == 1)
		}
	}
	if !*first {
		b = append(b, ',')
	}
	*first = false
	b = jsontext.AppendString(b, name, true)
	b = append(b, ':')
	if nd.t.Kind == KindStruct {
		b = append(b, '{')
		b = append(b, body...)
		return append(b, '}')
	}
	return append(b, body...)
}

// schemaOrder returns the indexes of a struct node's children in the order
// of the Delta fields (Parquet groups built by parquet-go are sorted by
// name): statistics follow the schema.
func (nd *pqNode) schemaOrder() []int {
	idx := make([]int, len(nd.children))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return nd.fieldIdx[idx[a]] < nd.fieldIdx[idx[b]] })
	return idx
}

// applyStatsColumns restricts statistics to the columns listed in
// delta.dataSkippingStatsColumns (comma-separated logical names, nested
// fields as dotted paths, optionally in backticks; a struct selects all its
// leaves), matched ignoring case.
func (l *dataLayout) applyStatsColumns(v string) {
	want := map[string]bool{}
	for _, p := range strings.Split(v, ",") {
		p = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(p), "`", ""))
		if p != "" {
			want[p] = true
		}
	}
	l.statsOn = make([]bool, len(l.dataCols))
	l.statsCols = len(l.dataCols)
	l.numStatNodes = 0
	for j, ci := range l.dataCols {
		name := strings.ToLower(l.schema.fields[ci].Name)
		if nd := l.nested[j]; nd != nil {
			l.assignSelected(nd, name, want[name], want)
			l.statsOn[j] = true
			continue
		}
		l.statsOn[j] = want[name]
	}
}

// assignSelected numbers the statistics nodes of nd whose path (or an
// enclosing struct's) is selected.
func (l *dataLayout) assignSelected(nd *pqNode, path string, selected bool, want map[string]bool) {
	selected = selected || want[path]
	if nd.t.Kind == KindStruct {
		for _, i := range nd.schemaOrder() {
			f := nd.t.Fields[nd.fieldIdx[i]]
			l.assignSelected(nd.children[i], path+"."+strings.ToLower(f.Name), selected, want)
		}
		return
	}
	if selected && nd.t.Kind != KindVariant {
		nd.statIdx = l.numStatNodes
		l.numStatNodes++
	}
}
