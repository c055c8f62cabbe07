package delta

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
)

// Column mapping (delta.columnMapping.mode = name or id): every field, at
// every nesting level, carries a stable id and a physical name in its
// metadata; data files, statistics and add.partitionValues use the physical
// names (and Parquet field_id = the id), so columns can be renamed and
// dropped without rewriting files. A field without the metadata (e.g. a
// hidden column another component adds) is written under its own name.
const (
	ColumnMappingModeKey     = "delta.columnMapping.mode"
	ColumnMappingMaxIDKey    = "delta.columnMapping.maxColumnId"
	ColumnMappingIDKey       = "delta.columnMapping.id"
	ColumnMappingPhysicalKey = "delta.columnMapping.physicalName"
)

// ColumnMappingMode returns "name", "id" or "" (none) from a table
// configuration.
func ColumnMappingMode(conf map[string]string) string {
	switch m := strings.ToLower(strings.TrimSpace(conf[ColumnMappingModeKey])); m {
	case "name", "id":
		return m
	}
	return ""
}

// PhysicalName returns the column-mapping physical name in metadata md, or
// name when there is none.
func PhysicalName(name string, md map[string]any) string {
	if p, ok := md[ColumnMappingPhysicalKey].(string); ok && p != "" {
		return p
	}
	return name
}

// ColumnMappingID returns the column-mapping id in metadata md.
func ColumnMappingID(md map[string]any) (int64, bool) {
	switch x := md[ColumnMappingIDKey].(type) {
	case float64:
		return int64(x), true
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	case int64:
		return x, true
	case int:
		return int64(x), true
	}
	return 0, false
}

// PartitionValue returns the value add.partitionValues holds for partition
// column col (a logical name) of schema s: under the physical name when the
// column has one (column mapping), else under the logical name, matched
// ignoring case. ok is false when the key is absent.
func (s *Schema) PartitionValue(pvals map[string]*string, col string) (v *string, ok bool) {
	key := col
	if i := s.Index(col); i >= 0 {
		key = PhysicalName(s.fields[i].Name, s.fields[i].Metadata)
	}
	for _, k := range []string{key, col} {
		if v, ok := pvals[k]; ok {
			return v, true
		}
	}
	for k, v := range pvals {
		if strings.EqualFold(k, key) || strings.EqualFold(k, col) {
			return v, true
		}
	}
	return nil, false
}

// AssignColumnMapping gives every field of sc (at every level) that lacks
// column-mapping metadata the next id (after delta.columnMapping.maxColumnId
// of conf, or the largest id in sc) and a physical name col-<uuid>, as a
// table with column mapping requires of new columns. It returns the new
// schema and maxColumnId; changed is false (and sc returned) when every
// field already has both, or when conf has no column mapping mode.
func AssignColumnMapping(sc *Schema, conf map[string]string) (out *Schema, maxID int64, changed bool, err error) {
	if ColumnMappingMode(conf) == "" {
		return sc, 0, false, nil
	}
	if v, ok := conf[ColumnMappingMaxIDKey]; ok {
		if maxID, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
			return nil, 0, false, fmt.Errorf("table property %s=%q: %w", ColumnMappingMaxIDKey, v, err)
		}
	}
	fields := sc.Fields()
	for i := range fields {
		if id, ok := ColumnMappingID(fields[i].Metadata); ok && id > maxID {
			maxID = id
		}
		maxNestedID(*fields[i].DataType, &maxID)
	}
	assign := func(md map[string]any) (map[string]any, bool) {
		_, hasID := ColumnMappingID(md)
		_, hasName := md[ColumnMappingPhysicalKey].(string)
		if hasID && hasName {
			return md, false
		}
		md = maps.Clone(md)
		if md == nil {
			md = map[string]any{}
		}
		if !hasID {
			maxID++
			md[ColumnMappingIDKey] = maxID
		}
		if !hasName {
			md[ColumnMappingPhysicalKey] = "col-" + uuid.NewString()
		}
		return md, true
	}
	for i := range fields {
		md, c := assign(fields[i].Metadata)
		if c {
			fields[i].Metadata = md
			changed = true
		}
		if assignNested(fields[i].DataType, assign) {
			changed = true
		}
	}
	if !changed {
		return sc, maxID, false, nil
	}
	out, err = NewSchema(fields)
	if err != nil {
		return nil, 0, false, fmt.Errorf("assigning column mapping: %w", err)
	}
	return out, maxID, true, nil
}

func maxNestedID(t DataType, maxID *int64) {
	switch t.Kind {
	case KindStruct:
		for _, f := range t.Fields {
			if id, ok := ColumnMappingID(f.Metadata); ok && id > *maxID {
				*maxID = id
			}
			maxNestedID(f.Type, maxID)
		}
	case KindArray:
		maxNestedID(*t.Elem, maxID)
	case KindMap:
		maxNestedID(*t.Key, maxID)
		maxNestedID(*t.Value, maxID)
	}
}

func assignNested(t *DataType, assign func(map[string]any) (map[string]any, bool)) bool {
	changed := false
	switch t.Kind {
	case KindStruct:
		for i := range t.Fields {
			if md, c := assign(t.Fields[i].Metadata); c {
				t.Fields[i].Metadata = md
				changed = true
			}
			if assignNested(&t.Fields[i].Type, assign) {
				changed = true
			}
		}
	case KindArray:
		changed = assignNested(t.Elem, assign)
	case KindMap:
		c1 := assignNested(t.Key, assign)
		c2 := assignNested(t.Value, assign)
		changed = c1 || c2
	}
	return changed
}

// withFieldID wraps n with the Parquet field_id of the column-mapping id in
// md, when there is one.
func withFieldID(n parquet.Node, md map[string]any) parquet.Node {
	if id, ok := ColumnMappingID(md); ok {
		return parquet.FieldID(n, int(id))
	}
	return n
}
