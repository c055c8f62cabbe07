package delta

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strconv"
	"strings"
)

// Kind is the Delta type of a column: a primitive or one of the nested
// kinds struct, array and map.
type Kind uint8

// The Delta types this engine parses. Nested kinds (struct, array, map) are
// parsed, printed and converted from JSON; see the writer for which kinds
// it can store in Parquet.
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
	// KindTimestampNTZ is a timestamp without time zone: a wall-clock
	// reading kept as a time.Time in the UTC location, never converted.
	KindTimestampNTZ
	KindStruct
	KindArray
	KindMap
	// KindVariant is the semi-structured variant type (Spark 4, delta-rs
	// 1.x). Tables with it are accepted; only NULL can be written.
	KindVariant
)

var kindNames = map[Kind]string{
	KindString:       "string",
	KindLong:         "long",
	KindInteger:      "integer",
	KindShort:        "short",
	KindByte:         "byte",
	KindFloat:        "float",
	KindDouble:       "double",
	KindBoolean:      "boolean",
	KindBinary:       "binary",
	KindDate:         "date",
	KindTimestamp:    "timestamp",
	KindDecimal:      "decimal",
	KindTimestampNTZ: "timestamp_ntz",
	KindStruct:       "struct",
	KindArray:        "array",
	KindMap:          "map",
	KindVariant:      "variant",
}

// String returns the protocol name of the kind.
func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return "invalid"
}

// Nested reports whether k is struct, array or map.
func (k Kind) Nested() bool { return k == KindStruct || k == KindArray || k == KindMap }

// grouped reports whether k is stored as a Parquet group (nested kinds and
// variant), which takes the shredding path.
func (k Kind) grouped() bool { return k.Nested() || k == KindVariant }

// StructField is one field of a struct type, at any nesting level.
type StructField struct {
	Name     string
	Type     DataType
	Nullable bool
	// Metadata is the field metadata of the Spark schema (column mapping
	// ids, physical names, comments, typeChanges …), kept as read.
	Metadata map[string]any
}

// DataType is a parsed Delta type. Precision and Scale are meaningful for
// KindDecimal; Fields for KindStruct; Elem and ContainsNull for KindArray;
// Key, Value and ValueContainsNull for KindMap. Compare with Equal.
type DataType struct {
	Kind      Kind
	Precision int
	Scale     int

	Fields []StructField

	Elem         *DataType
	ContainsNull bool

	Key               *DataType
	Value             *DataType
	ValueContainsNull bool
}

// StructOf, ArrayOf and MapOf build nested types.
func StructOf(fields ...StructField) DataType { return DataType{Kind: KindStruct, Fields: fields} }

// ArrayOf returns array<elem>.
func ArrayOf(elem DataType, containsNull bool) DataType {
	return DataType{Kind: KindArray, Elem: &elem, ContainsNull: containsNull}
}

// MapOf returns map<key,value>.
func MapOf(key, value DataType, valueContainsNull bool) DataType {
	return DataType{Kind: KindMap, Key: &key, Value: &value, ValueContainsNull: valueContainsNull}
}

// Equal reports whether both types are the same, nested types included
// (field names, nullability and element/value nullability compared;
// field metadata is not part of the type).
func (t DataType) Equal(o DataType) bool {
	if t.Kind != o.Kind {
		return false
	}
	switch t.Kind {
	case KindDecimal:
		return t.Precision == o.Precision && t.Scale == o.Scale
	case KindStruct:
		if len(t.Fields) != len(o.Fields) {
			return false
		}
		for i := range t.Fields {
			a, b := &t.Fields[i], &o.Fields[i]
			if a.Name != b.Name || a.Nullable != b.Nullable || !a.Type.Equal(b.Type) {
				return false
			}
		}
		return true
	case KindArray:
		return t.ContainsNull == o.ContainsNull && t.Elem.Equal(*o.Elem)
	case KindMap:
		return t.ValueContainsNull == o.ValueContainsNull && t.Key.Equal(*o.Key) && t.Value.Equal(*o.Value)
	}
	return true
}

// FieldIndex returns the position of the struct field named name, ignoring
// case, or -1.
func (t DataType) FieldIndex(name string) int {
	for i := range t.Fields {
		if t.Fields[i].Name == name {
			return i
		}
	}
	for i := range t.Fields {
		if strings.EqualFold(t.Fields[i].Name, name) {
			return i
		}
	}
	return -1
}

// String returns the type in Spark DDL form, e.g. "decimal(10,2)",
// "array<string>", "map<string,long>", "struct<a:long,b:array<string>>".
// Nullability and metadata of nested fields are not part of this form.
func (t DataType) String() string {
	switch t.Kind {
	case KindDecimal:
		return fmt.Sprintf("decimal(%d,%d)", t.Precision, t.Scale)
	case KindArray:
		return "array<" + t.Elem.String() + ">"
	case KindMap:
		return "map<" + t.Key.String() + "," + t.Value.String() + ">"
	case KindStruct:
		var b strings.Builder
		b.WriteString("struct<")
		for i, f := range t.Fields {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(f.Name)
			b.WriteByte(':')
			b.WriteString(f.Type.String())
		}
		b.WriteByte('>')
		return b.String()
	}
	return t.Kind.String()
}

// clone returns a deep copy, so a type taken from a schema can be changed
// (schema evolution) without touching the schema.
func (t DataType) clone() DataType {
	switch t.Kind {
	case KindStruct:
		fs := make([]StructField, len(t.Fields))
		for i, f := range t.Fields {
			fs[i] = StructField{Name: f.Name, Type: f.Type.clone(), Nullable: f.Nullable, Metadata: maps.Clone(f.Metadata)}
		}
		t.Fields = fs
	case KindArray:
		e := t.Elem.clone()
		t.Elem = &e
	case KindMap:
		k, v := t.Key.clone(), t.Value.clone()
		t.Key, t.Value = &k, &v
	}
	return t
}

// ParseType parses a type in Spark DDL form: a primitive (string, long,
// integer, short, byte, float, double, boolean, binary, date, timestamp,
// timestamp_ntz, decimal(p,s); the SQL aliases int, bigint, smallint,
// tinyint and bool are accepted because schema files are written by people
// used to SQL) or array<T>, map<K,V>, struct<name:T,...>, nested to any
// depth. Fields of a DDL struct and array elements and map values are
// nullable.
func ParseType(s string) (DataType, error) {
	p := ddlParser{s: s}
	t, err := p.parse()
	if err != nil {
		return DataType{}, fmt.Errorf("parsing type %q: %w", s, err)
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return DataType{}, fmt.Errorf("parsing type %q: unexpected %q at offset %d", s, p.s[p.i:], p.i)
	}
	return t, nil
}

func parsePrimitive(name string) (DataType, error) {
	t := strings.ToLower(strings.TrimSpace(name))
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
	case "timestamp_ntz":
		return DataType{Kind: KindTimestampNTZ}, nil
	case "variant":
		return DataType{Kind: KindVariant}, nil
	case "decimal":
		// Spark's default for a bare DECIMAL.
		return DataType{Kind: KindDecimal, Precision: 10, Scale: 0}, nil
	}
	if strings.HasPrefix(t, "decimal(") && strings.HasSuffix(t, ")") {
		inner := strings.TrimSuffix(strings.TrimPrefix(t, "decimal("), ")")
		ps := strings.Split(inner, ",")
		if len(ps) != 2 {
			return DataType{}, errors.New("decimal needs (precision,scale)")
		}
		p, err1 := strconv.Atoi(strings.TrimSpace(ps[0]))
		sc, err2 := strconv.Atoi(strings.TrimSpace(ps[1]))
		if err1 != nil || err2 != nil {
			return DataType{}, errors.New("precision and scale must be integers")
		}
		if p < 1 || p > 38 || sc < 0 || sc > p {
			return DataType{}, errors.New("need 1 <= precision <= 38 and 0 <= scale <= precision")
		}
		return DataType{Kind: KindDecimal, Precision: p, Scale: sc}, nil
	}
	return DataType{}, fmt.Errorf("unsupported Delta type %q (want string, long, integer, short, byte, float, double, boolean, binary, date, timestamp, timestamp_ntz, decimal(p,s), array<T>, map<K,V> or struct<name:T,...>)", name)
}

// ddlParser is a small recursive-descent parser for Spark DDL types.
type ddlParser struct {
	s string
	i int
}

func (p *ddlParser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n') {
		p.i++
	}
}

// word reads up to one of the DDL delimiters; a decimal's parentheses are
// part of its word.
func (p *ddlParser) word() string {
	p.skipSpace()
	start := p.i
	depth := 0
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '(' {
			depth++
		} else if c == ')' {
			depth--
		} else if depth == 0 && (c == '<' || c == '>' || c == ',' || c == ':') {
			break
		}
		p.i++
	}
	return strings.TrimSpace(p.s[start:p.i])
}

func (p *ddlParser) expect(c byte) error {
	p.skipSpace()
	if p.i >= len(p.s) || p.s[p.i] != c {
		got := "end of text"
		if p.i < len(p.s) {
			got = strconv.Quote(p.s[p.i:])
		}
		return fmt.Errorf("expected %q at offset %d, found %s", c, p.i, got)
	}
	p.i++
	return nil
}

func (p *ddlParser) parse() (DataType, error) {
	w := p.word()
	switch strings.ToLower(w) {
	case "array":
		if err := p.expect('<'); err != nil {
			return DataType{}, err
		}
		e, err := p.parse()
		if err != nil {
			return DataType{}, err
		}
		if err := p.expect('>'); err != nil {
			return DataType{}, err
		}
		return ArrayOf(e, true), nil
	case "map":
		if err := p.expect('<'); err != nil {
			return DataType{}, err
		}
		k, err := p.parse()
		if err != nil {
			return DataType{}, err
		}
		if err := p.expect(','); err != nil {
			return DataType{}, err
		}
		v, err := p.parse()
		if err != nil {
			return DataType{}, err
		}
		if err := p.expect('>'); err != nil {
			return DataType{}, err
		}
		return MapOf(k, v, true), nil
	case "struct":
		if err := p.expect('<'); err != nil {
			return DataType{}, err
		}
		var fs []StructField
		for {
			p.skipSpace()
			if p.i < len(p.s) && p.s[p.i] == '>' && len(fs) == 0 {
				break
			}
			name := p.word()
			if name == "" {
				return DataType{}, fmt.Errorf("struct field name missing at offset %d", p.i)
			}
			if err := p.expect(':'); err != nil {
				return DataType{}, err
			}
			ft, err := p.parse()
			if err != nil {
				return DataType{}, fmt.Errorf("field %q: %w", name, err)
			}
			fs = append(fs, StructField{Name: name, Type: ft, Nullable: true})
			p.skipSpace()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				continue
			}
			break
		}
		if err := p.expect('>'); err != nil {
			return DataType{}, err
		}
		st := StructOf(fs...)
		if err := validateStruct(st, ""); err != nil {
			return DataType{}, err
		}
		return st, nil
	case "":
		return DataType{}, fmt.Errorf("type missing at offset %d", p.i)
	}
	return parsePrimitive(w)
}

// validateStruct checks nested field names: non-empty and unique ignoring
// case (Spark resolves nested fields case-insensitively too).
func validateStruct(t DataType, path string) error {
	switch t.Kind {
	case KindStruct:
		seen := make(map[string]string, len(t.Fields))
		for _, f := range t.Fields {
			if f.Name == "" {
				return fmt.Errorf("struct %s has a field with an empty name", orTop(path))
			}
			k := strings.ToLower(f.Name)
			if prev, dup := seen[k]; dup {
				return fmt.Errorf("field %q of struct %s duplicates %q (names must be unique ignoring case)", f.Name, orTop(path), prev)
			}
			seen[k] = f.Name
			if err := validateStruct(f.Type, joinPath(path, f.Name)); err != nil {
				return err
			}
		}
	case KindArray:
		return validateStruct(*t.Elem, path+"[]")
	case KindMap:
		if err := validateStruct(*t.Key, path+".key"); err != nil {
			return err
		}
		return validateStruct(*t.Value, path+".value")
	}
	return nil
}

func orTop(path string) string {
	if path == "" {
		return "(top level)"
	}
	return strconv.Quote(path)
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// sparkType is the JSON form of a nested type in a Spark schema.
type sparkType struct {
	Type              string          `json:"type"`
	Fields            []sparkField    `json:"fields,omitempty"`
	ElementType       json.RawMessage `json:"elementType,omitempty"`
	ContainsNull      *bool           `json:"containsNull,omitempty"`
	KeyType           json.RawMessage `json:"keyType,omitempty"`
	ValueType         json.RawMessage `json:"valueType,omitempty"`
	ValueContainsNull *bool           `json:"valueContainsNull,omitempty"`
}

// typeFromSparkJSON parses the "type" value of a Spark schema field: a
// string for primitives, an object for struct, array and map.
func typeFromSparkJSON(raw json.RawMessage) (DataType, error) {
	var name string
	if err := json.Unmarshal(raw, &name); err == nil {
		return parsePrimitive(name)
	}
	var st sparkType
	if err := json.Unmarshal(raw, &st); err != nil {
		return DataType{}, fmt.Errorf("type is neither a name nor a type object: %s", truncate(string(raw), 80))
	}
	switch st.Type {
	case "struct":
		fs := make([]StructField, len(st.Fields))
		for i, f := range st.Fields {
			ft, err := typeFromSparkJSON(f.Type)
			if err != nil {
				return DataType{}, fmt.Errorf("field %q: %w", f.Name, err)
			}
			fs[i] = StructField{Name: f.Name, Type: ft, Nullable: f.Nullable, Metadata: f.Metadata}
		}
		return StructOf(fs...), nil
	case "array":
		if len(st.ElementType) == 0 {
			return DataType{}, errors.New("array type without elementType")
		}
		e, err := typeFromSparkJSON(st.ElementType)
		if err != nil {
			return DataType{}, fmt.Errorf("array element: %w", err)
		}
		return ArrayOf(e, st.ContainsNull == nil || *st.ContainsNull), nil
	case "map":
		if len(st.KeyType) == 0 || len(st.ValueType) == 0 {
			return DataType{}, errors.New("map type without keyType or valueType")
		}
		k, err := typeFromSparkJSON(st.KeyType)
		if err != nil {
			return DataType{}, fmt.Errorf("map key: %w", err)
		}
		v, err := typeFromSparkJSON(st.ValueType)
		if err != nil {
			return DataType{}, fmt.Errorf("map value: %w", err)
		}
		return MapOf(k, v, st.ValueContainsNull == nil || *st.ValueContainsNull), nil
	}
	return DataType{}, fmt.Errorf("unsupported nested type %q", st.Type)
}

// sparkJSON returns the "type" value of a Spark schema field for t.
func (t DataType) sparkJSON() any {
	switch t.Kind {
	case KindStruct:
		fs := make([]orderedField, len(t.Fields))
		for i, f := range t.Fields {
			fs[i] = orderedField{Name: f.Name, Type: f.Type.sparkJSON(), Nullable: f.Nullable, Metadata: nonNilMetadata(f.Metadata)}
		}
		return orderedStruct{Type: "struct", Fields: fs}
	case KindArray:
		return orderedArray{Type: "array", ElementType: t.Elem.sparkJSON(), ContainsNull: t.ContainsNull}
	case KindMap:
		return orderedMap{Type: "map", KeyType: t.Key.sparkJSON(), ValueType: t.Value.sparkJSON(), ValueContainsNull: t.ValueContainsNull}
	}
	return t.String()
}

func nonNilMetadata(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// The ordered* structs print keys in the order Spark writes them.
type orderedField struct {
	Name     string         `json:"name"`
	Type     any            `json:"type"`
	Nullable bool           `json:"nullable"`
	Metadata map[string]any `json:"metadata"`
}

type orderedStruct struct {
	Type   string         `json:"type"`
	Fields []orderedField `json:"fields"`
}

type orderedArray struct {
	Type         string `json:"type"`
	ElementType  any    `json:"elementType"`
	ContainsNull bool   `json:"containsNull"`
}

type orderedMap struct {
	Type              string `json:"type"`
	KeyType           any    `json:"keyType"`
	ValueType         any    `json:"valueType"`
	ValueContainsNull bool   `json:"valueContainsNull"`
}

// metadataEqual reports whether two metadata maps hold the same values.
func metadataEqual(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}
