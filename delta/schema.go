package delta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Kind is the primitive Delta type of a column.
type Kind uint8

// The primitive Delta types this engine reads and writes. Nested types
// (struct, array, map) and timestamp_ntz are not supported: a table that uses
// them is refused when opened for writing.
const (
	KindInvalid Kind = iota
	KindString
	KindLong
	KindInteger
	KindShort
	KindByte
	KindFloat
	KindDouble
	KindBoolean
	KindBinary
	KindDate
	KindTimestamp
	KindDecimal
)

var kindNames = map[Kind]string{
	KindString:    "string",
	KindLong:      "long",
	KindInteger:   "integer",
	KindShort:     "short",
	KindByte:      "byte",
	KindFloat:     "float",
	KindDouble:    "double",
	KindBoolean:   "boolean",
	KindBinary:    "binary",
	KindDate:      "date",
	KindTimestamp: "timestamp",
	KindDecimal:   "decimal",
}

// String returns the protocol name of the kind.
func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return "invalid"
}

// DataType is a parsed Delta primitive type. Precision and Scale are only
// meaningful for KindDecimal.
type DataType struct {
	Kind      Kind
	Precision int
	Scale     int
}

// String returns the type as the protocol spells it, e.g. "decimal(10,2)".
func (t DataType) String() string {
	if t.Kind == KindDecimal {
		return fmt.Sprintf("decimal(%d,%d)", t.Precision, t.Scale)
	}
	return t.Kind.String()
}

// ParseType parses a protocol type name: string, long, integer, short, byte,
// float, double, boolean, binary, date, timestamp or decimal(p,s). The common
// aliases int, bigint, smallint, tinyint and bool are accepted because
// schema files are written by people used to SQL.
func ParseType(s string) (DataType, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch t {
	case "string":
		return DataType{Kind: KindString}, nil
	case "long", "bigint":
		return DataType{Kind: KindLong}, nil
	case "integer", "int":
		return DataType{Kind: KindInteger}, nil
	case "short", "smallint":
		return DataType{Kind: KindShort}, nil
	case "byte", "tinyint":
		return DataType{Kind: KindByte}, nil
	case "float":
		return DataType{Kind: KindFloat}, nil
	case "double":
		return DataType{Kind: KindDouble}, nil
	case "boolean", "bool":
		return DataType{Kind: KindBoolean}, nil
	case "binary":
		return DataType{Kind: KindBinary}, nil
	case "date":
		return DataType{Kind: KindDate}, nil
	case "timestamp":
		return DataType{Kind: KindTimestamp}, nil
	case "decimal":
		// Spark's default for a bare DECIMAL.
		return DataType{Kind: KindDecimal, Precision: 10, Scale: 0}, nil
	}
	if strings.HasPrefix(t, "decimal(") && strings.HasSuffix(t, ")") {
		inner := strings.TrimSuffix(strings.TrimPrefix(t, "decimal("), ")")
		ps := strings.Split(inner, ",")
		if len(ps) != 2 {
			return DataType{}, fmt.Errorf("parsing type %q: decimal needs (precision,scale)", s)
		}
		p, err1 := strconv.Atoi(strings.TrimSpace(ps[0]))
		sc, err2 := strconv.Atoi(strings.TrimSpace(ps[1]))
		if err1 != nil || err2 != nil {
			return DataType{}, fmt.Errorf("parsing type %q: precision and scale must be integers", s)
		}
		if p < 1 || p > 38 || sc < 0 || sc > p {
			return DataType{}, fmt.Errorf("parsing type %q: need 1 <= precision <= 38 and 0 <= scale <= precision", s)
		}
		return DataType{Kind: KindDecimal, Precision: p, Scale: sc}, nil
	}
	return DataType{}, fmt.Errorf("parsing type %q: unsupported Delta type (want string, long, integer, short, byte, float, double, boolean, binary, date, timestamp or decimal(p,s))", s)
}

// Field is one top-level column.
type Field struct {
	Name     string `json:"name" yaml:"name"`
	Type     string `json:"type" yaml:"type"`
	Nullable bool   `json:"nullable" yaml:"nullable"`
	// Metadata is the column metadata of the Spark schema, kept as read so a
	// schema round-trips; this engine writes none.
	Metadata map[string]any `json:"metadata,omitempty" yaml:"metadata,omitempty"`
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
		t, err := ParseType(f.Type)
		if err != nil {
			return nil, fmt.Errorf("building schema: column %q: %w", f.Name, err)
		}
		key := strings.ToLower(f.Name)
		if j, dup := s.index[key]; dup {
			return nil, fmt.Errorf("building schema: column %q duplicates column %q (names must be unique ignoring case)", f.Name, s.fields[j].Name)
		}
		s.index[key] = i
		f.Type = t.String()
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

// Fields returns a copy of the columns in order.
func (s *Schema) Fields() []Field {
	out := make([]Field, len(s.fields))
	copy(out, s.fields)
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
		if s.fields[i].Name != o.fields[i].Name || s.types[i] != o.types[i] || s.fields[i].Nullable != o.fields[i].Nullable {
			return false
		}
	}
	return true
}

// schemaFileField is one entry of a schema file; Nullable is a pointer so
// that a missing key means nullable.
type schemaFileField struct {
	Name     string `json:"name" yaml:"name"`
	Type     string `json:"type" yaml:"type"`
	Nullable *bool  `json:"nullable" yaml:"nullable"`
}

// ParseSchemaFile parses the schema file format `delta create --schema`
// reads: a YAML or JSON list of {name, type, nullable} where nullable
// defaults to true. A Spark JSON schema ({"type":"struct","fields":[...]})
// is accepted too.
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
		nullable := true
		if f.Nullable != nil {
			nullable = *f.Nullable
		}
		fields[i] = Field{Name: f.Name, Type: f.Type, Nullable: nullable}
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
// the log. Nested types are reported as unsupported.
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
		var name string
		if err := json.Unmarshal(f.Type, &name); err != nil {
			return nil, fmt.Errorf("parsing schemaString: column %q has a nested type (%s), which this engine does not support", f.Name, truncate(string(f.Type), 80))
		}
		fields[i] = Field{Name: f.Name, Type: name, Nullable: f.Nullable, Metadata: f.Metadata}
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
	st := sparkStruct{Type: "struct", Fields: make([]sparkField, len(s.fields))}
	for i, f := range s.fields {
		tb, _ := json.Marshal(s.types[i].String())
		md := f.Metadata
		if md == nil {
			md = map[string]any{}
		}
		st.Fields[i] = sparkField{Name: f.Name, Type: tb, Nullable: f.Nullable, Metadata: md}
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
// lacks (appended at the end, nullable), or an error for any change a plain
// append cannot make: a type change of an existing column.
// added reports whether the result differs from table.
func mergeSchemas(table, in *Schema) (merged *Schema, added bool, err error) {
	fields := table.Fields()
	for i, f := range in.fields {
		j := table.Index(f.Name)
		if j < 0 {
			nf := f
			nf.Nullable = true
			nf.Metadata = nil
			fields = append(fields, nf)
			added = true
			continue
		}
		if table.fields[j].Name != f.Name {
			return nil, false, fmt.Errorf("column %q differs only in case from table column %q", f.Name, table.fields[j].Name)
		}
		if table.types[j] != in.types[i] {
			return nil, false, fmt.Errorf("column %q has type %s in the batch but %s in the table (type changes are not supported)", f.Name, in.types[i], table.types[j])
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
