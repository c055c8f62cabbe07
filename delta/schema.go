package delta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Field is one top-level column.
type Field struct {
	Name     string `json:"name" yaml:"name"`
	Type     string `json:"type" yaml:"type"`
	Nullable bool   `json:"nullable" yaml:"nullable"`
	// Metadata is the column metadata of the Spark schema, kept as read so a
	// schema round-trips; this engine writes none.
	Metadata map[string]any `json:"metadata,omitempty" yaml:"metadata,omitempty"`
	// DataType, when set, is the parsed type and wins over Type: it carries
	// what the DDL string cannot (nested nullability and nested field
	// metadata). Fields() sets it so a schema rebuilt from its fields loses
	// nothing.
	DataType *DataType `json:"-" yaml:"-"`
}

// Schema is an ordered list of top-level primitive columns. Build it with
// NewSchema, ParseSchemaFile or ParseSchemaString, which validate it; the
// zero value is not usable.
type Schema struct {
	fields []Field
	types  []DataType
	index  map[string]int // lower-cased name -> position
}

// forbiddenNameChars are the characters Delta (without column mapping) does
// not allow in column names, because Parquet and Hive paths cannot hold them.
const forbiddenNameChars = " ,;{}()\n\t="

// ValidateColumnName reports whether name may be used as a column name
// without column mapping.
func ValidateColumnName(name string) error {
	if name == "" {
		return errors.New("column name is empty")
	}
	if i := strings.IndexAny(name, forbiddenNameChars); i >= 0 {
		return fmt.Errorf("column name %q contains %q, which Delta tables without column mapping do not allow (forbidden: space , ; { } ( ) newline tab =)", name, name[i])
	}
	return nil
}

// NewSchema validates the fields (names, types, uniqueness ignoring case)
// and returns the schema.
func NewSchema(fields []Field) (*Schema, error) {
	if len(fields) == 0 {
		return nil, errors.New("building schema: no columns")
	}
	s := &Schema{
		fields: make([]Field, len(fields)),
		types:  make([]DataType, len(fields)),
		index:  make(map[string]int, len(fields)),
	}
	for i, f := range fields {
		if err := ValidateColumnName(f.Name); err != nil {
			return nil, fmt.Errorf("building schema: column %d: %w", i, err)
		}
		var t DataType
		if f.DataType != nil {
			t = f.DataType.clone()
			if err := validateStruct(t, f.Name); err != nil {
				return nil, fmt.Errorf("building schema: column %q: %w", f.Name, err)
			}
		} else {
			var err error
			if t, err = ParseType(f.Type); err != nil {
				return nil, fmt.Errorf("building schema: column %q: %w", f.Name, err)
			}
		}
		key := strings.ToLower(f.Name)
		if j, dup := s.index[key]; dup {
			return nil, fmt.Errorf("building schema: column %q duplicates column %q (names must be unique ignoring case)", f.Name, s.fields[j].Name)
		}
		s.index[key] = i
		f.Type = t.String()
		f.DataType = nil
		s.fields[i] = f
		s.types[i] = t
	}
	return s, nil
}

// MustSchema is NewSchema for fixed schemas in code; it panics on error.
func MustSchema(fields ...Field) *Schema {
	s, err := NewSchema(fields)
	if err != nil {
		panic(err)
	}
	return s
}

// Len returns the number of columns.
func (s *Schema) Len() int { return len(s.fields) }

// Fields returns a copy of the columns in order, each with its DataType
// set (a deep copy).
func (s *Schema) Fields() []Field {
	out := make([]Field, len(s.fields))
	copy(out, s.fields)
	for i := range out {
		t := s.types[i].clone()
		out[i].DataType = &t
	}
	return out
}

// Field returns column i.
func (s *Schema) Field(i int) Field { return s.fields[i] }

// Type returns the parsed type of column i.
func (s *Schema) Type(i int) DataType { return s.types[i] }

// Index returns the position of the column named name (ignoring case), or
// -1.
func (s *Schema) Index(name string) int {
	if i, ok := s.index[strings.ToLower(name)]; ok {
		return i
	}
	return -1
}

// Names returns the column names in order.
func (s *Schema) Names() []string {
	out := make([]string, len(s.fields))
	for i, f := range s.fields {
		out[i] = f.Name
	}
	return out
}

// Equal reports whether both schemas have the same columns, types and
// nullability in the same order.
func (s *Schema) Equal(o *Schema) bool {
	if s == nil || o == nil {
		return s == o
	}
	if len(s.fields) != len(o.fields) {
		return false
	}
	for i := range s.fields {
		if s.fields[i].Name != o.fields[i].Name || !s.types[i].Equal(o.types[i]) || s.fields[i].Nullable != o.fields[i].Nullable {
			return false
		}
	}
	return true
}

// schemaFileField is one entry of a schema file; Nullable is a pointer so
// that a missing key means nullable. Type is a DDL string (e.g.
// "array<string>") or, in the nested form, "struct" with fields, "array"
// with elementType, "map" with keyType and valueType.
type schemaFileField struct {
	Name              string            `json:"name" yaml:"name"`
	Nullable          *bool             `json:"nullable" yaml:"nullable"`
	Metadata          map[string]any    `json:"metadata" yaml:"metadata"`
	Type              string            `json:"type" yaml:"type"`
	Fields            []schemaFileField `json:"fields" yaml:"fields"`
	ElementType       *schemaFileType   `json:"elementType" yaml:"elementType"`
	ContainsNull      *bool             `json:"containsNull" yaml:"containsNull"`
	KeyType           *schemaFileType   `json:"keyType" yaml:"keyType"`
	ValueType         *schemaFileType   `json:"valueType" yaml:"valueType"`
	ValueContainsNull *bool             `json:"valueContainsNull" yaml:"valueContainsNull"`
}

// dataType is the field's type (the field's keys are a schemaFileType's).
func (f *schemaFileField) dataType() (DataType, error) {
	t := schemaFileType{Type: f.Type, Fields: f.Fields, ElementType: f.ElementType, ContainsNull: f.ContainsNull,
		KeyType: f.KeyType, ValueType: f.ValueType, ValueContainsNull: f.ValueContainsNull}
	return t.dataType()
}

// schemaFileType is a type in a schema file: a DDL string, or a mapping.
type schemaFileType struct {
	Type              string            `json:"type" yaml:"type"`
	Fields            []schemaFileField `json:"fields" yaml:"fields"`
	ElementType       *schemaFileType   `json:"elementType" yaml:"elementType"`
	ContainsNull      *bool             `json:"containsNull" yaml:"containsNull"`
	KeyType           *schemaFileType   `json:"keyType" yaml:"keyType"`
	ValueType         *schemaFileType   `json:"valueType" yaml:"valueType"`
	ValueContainsNull *bool             `json:"valueContainsNull" yaml:"valueContainsNull"`
}

// UnmarshalYAML accepts a plain string (a DDL type) or the mapping form.
func (t *schemaFileType) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		t.Type = n.Value
		return nil
	}
	type plain schemaFileType
	return n.Decode((*plain)(t))
}

func orTrue(b *bool) bool { return b == nil || *b }

func (t *schemaFileType) dataType() (DataType, error) {
	switch strings.ToLower(strings.TrimSpace(t.Type)) {
	case "struct":
		if len(t.Fields) == 0 {
			break // "struct" alone is not a type; let ParseType say so
		}
		fs := make([]StructField, len(t.Fields))
		for i, f := range t.Fields {
			ft, err := f.dataType()
			if err != nil {
				return DataType{}, fmt.Errorf("field %q: %w", f.Name, err)
			}
			fs[i] = StructField{Name: f.Name, Type: ft, Nullable: orTrue(f.Nullable), Metadata: f.Metadata}
		}
		return StructOf(fs...), nil
	case "array":
		if t.ElementType == nil {
			return DataType{}, errors.New("array needs elementType")
		}
		e, err := t.ElementType.dataType()
		if err != nil {
			return DataType{}, fmt.Errorf("array element: %w", err)
		}
		return ArrayOf(e, orTrue(t.ContainsNull)), nil
	case "map":
		if t.KeyType == nil || t.ValueType == nil {
			return DataType{}, errors.New("map needs keyType and valueType")
		}
		k, err := t.KeyType.dataType()
		if err != nil {
			return DataType{}, fmt.Errorf("map key: %w", err)
		}
		v, err := t.ValueType.dataType()
		if err != nil {
			return DataType{}, fmt.Errorf("map value: %w", err)
		}
		return MapOf(k, v, orTrue(t.ValueContainsNull)), nil
	}
	return ParseType(t.Type)
}

// ParseSchemaFile parses the schema file format `delta create --schema`
// reads: a YAML or JSON list of {name, type, nullable, metadata} where
// nullable defaults to true and type is a Spark DDL type (string,
// decimal(10,2), array<string>, map<string,long>,
// struct<a:long,b:array<string>>, …) or the nested form (type: struct with
// fields, type: array with elementType and containsNull, type: map with
// keyType, valueType and valueContainsNull). A Spark JSON schema
// ({"type":"struct","fields":[...]}) is accepted too.
func ParseSchemaFile(data []byte) (*Schema, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return ParseSchemaString(string(trimmed))
	}
	var list []schemaFileField
	// YAML is a superset of JSON, so one decoder serves both.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&list); err != nil {
		return nil, fmt.Errorf("parsing schema file: %w", err)
	}
	fields := make([]Field, len(list))
	for i, f := range list {
		t, err := f.dataType()
		if err != nil {
			return nil, fmt.Errorf("parsing schema file: column %q: %w", f.Name, err)
		}
		fields[i] = Field{Name: f.Name, Type: t.String(), Nullable: orTrue(f.Nullable), Metadata: f.Metadata, DataType: &t}
	}
	s, err := NewSchema(fields)
	if err != nil {
		return nil, fmt.Errorf("parsing schema file: %w", err)
	}
	return s, nil
}

type sparkField struct {
	Name     string          `json:"name"`
	Type     json.RawMessage `json:"type"`
	Nullable bool            `json:"nullable"`
	Metadata map[string]any  `json:"metadata"`
}

type sparkStruct struct {
	Type   string       `json:"type"`
	Fields []sparkField `json:"fields"`
}

// ParseSchemaString parses a Spark JSON schema, the metaData.schemaString of
// the log, nested types included (field metadata kept at every level).
func ParseSchemaString(s string) (*Schema, error) {
	var st sparkStruct
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		return nil, fmt.Errorf("parsing schemaString: %w", err)
	}
	if st.Type != "struct" {
		return nil, fmt.Errorf("parsing schemaString: top-level type is %q, want struct", st.Type)
	}
	fields := make([]Field, len(st.Fields))
	for i, f := range st.Fields {
		t, err := typeFromSparkJSON(f.Type)
		if err != nil {
			return nil, fmt.Errorf("parsing schemaString: column %q: %w", f.Name, err)
		}
		fields[i] = Field{Name: f.Name, Type: t.String(), Nullable: f.Nullable, Metadata: f.Metadata, DataType: &t}
	}
	sc, err := NewSchema(fields)
	if err != nil {
		return nil, fmt.Errorf("parsing schemaString: %w", err)
	}
	return sc, nil
}

// SchemaString returns the Spark JSON schema, as stored in
// metaData.schemaString.
func (s *Schema) SchemaString() string {
	st := orderedStruct{Type: "struct", Fields: make([]orderedField, len(s.fields))}
	for i, f := range s.fields {
		st.Fields[i] = orderedField{Name: f.Name, Type: s.types[i].sparkJSON(), Nullable: f.Nullable, Metadata: nonNilMetadata(f.Metadata)}
	}
	b, err := json.Marshal(st)
	if err != nil {
		// Only metadata values could fail, and they came from JSON.
		panic(fmt.Sprintf("delta: marshalling schema: %v", err))
	}
	return string(b)
}

// String returns a short human-readable form, e.g. "a string, b long not null".
func (s *Schema) String() string {
	var b strings.Builder
	for i, f := range s.fields {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(f.Name)
		b.WriteByte(' ')
		b.WriteString(s.types[i].String())
		if !f.Nullable {
			b.WriteString(" not null")
		}
	}
	return b.String()
}

// mergeSchemas returns the table schema widened by the columns of in that it
// lacks (appended at the end, nullable) and by the nested struct fields of
// in that an existing struct column lacks (at any depth, nullable), or an
// error for any change a plain append cannot make: a type change of an
// existing column or nested field, named by its path.
// added reports whether the result differs from table.
func mergeSchemas(table, in *Schema) (merged *Schema, added bool, err error) {
	fields := table.Fields()
	for i, f := range in.fields {
		j := table.Index(f.Name)
		if j < 0 {
			nf := f
			nf.Nullable = true
			nf.Metadata = nil
			t := in.types[i].clone()
			nf.DataType = &t
			fields = append(fields, nf)
			added = true
			continue
		}
		if table.fields[j].Name != f.Name {
			return nil, false, fmt.Errorf("column %q differs only in case from table column %q", f.Name, table.fields[j].Name)
		}
		mt, changed, err := mergeTypes(table.types[j], in.types[i], f.Name)
		if err != nil {
			return nil, false, err
		}
		if changed {
			fields[j].DataType = &mt
			added = true
		}
	}
	if !added {
		return table, false, nil
	}
	m, err := NewSchema(fields)
	if err != nil {
		return nil, false, err
	}
	return m, true, nil
}

// mergeTypes returns table widened by the struct fields of in it lacks, at
// any depth; any other difference is an error naming path.
func mergeTypes(table, in DataType, path string) (DataType, bool, error) {
	if table.Kind != in.Kind {
		return DataType{}, false, fmt.Errorf("column %q has type %s in the batch but %s in the table (type changes are not supported)", path, in, table)
	}
	switch table.Kind {
	case KindStruct:
		out := table.clone()
		changed := false
		for _, f := range in.Fields {
			j := out.FieldIndex(f.Name)
			if j < 0 {
				out.Fields = append(out.Fields, StructField{Name: f.Name, Type: f.Type.clone(), Nullable: true})
				changed = true
				continue
			}
			if out.Fields[j].Name != f.Name {
				return DataType{}, false, fmt.Errorf("field %q differs only in case from table field %q", joinPath(path, f.Name), joinPath(path, out.Fields[j].Name))
			}
			mt, c, err := mergeTypes(out.Fields[j].Type, f.Type, joinPath(path, f.Name))
			if err != nil {
				return DataType{}, false, err
			}
			if c {
				out.Fields[j].Type = mt
				changed = true
			}
		}
		return out, changed, nil
	case KindArray:
		e, c, err := mergeTypes(*table.Elem, *in.Elem, path+"[]")
		if err != nil || !c {
			return table, false, err
		}
		out := table.clone()
		out.Elem = &e
		return out, true, nil
	case KindMap:
		if !table.Key.Equal(*in.Key) {
			return DataType{}, false, fmt.Errorf("column %q has type %s in the batch but %s in the table (type changes are not supported)", path, in, table)
		}
		v, c, err := mergeTypes(*table.Value, *in.Value, path+".value")
		if err != nil || !c {
			return table, false, err
		}
		out := table.clone()
		out.Value = &v
		return out, true, nil
	}
	if !table.Equal(in) {
		return DataType{}, false, fmt.Errorf("column %q has type %s in the batch but %s in the table (type changes are not supported)", path, in, table)
	}
	return table, false, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary so messages stay valid UTF-8.
	cut := n
	for cut > 0 && cut < len(s) && (s[cut]&0xC0) == 0x80 {
		cut--
	}
	return s[:cut] + fmt.Sprintf("…(%d bytes)", len(s))
}
