package delta

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// Variant is a value of a VARIANT column in the Parquet variant binary
// encoding: the metadata (the dictionary of object keys) and the value.
// Rows read from files carry variants this way, unchanged, so Optimize
// rewrites Spark's variants byte for byte; EncodeVariant makes one from a
// decoded JSON value.
type Variant struct {
	Metadata []byte
	Value    []byte
}

// Variant value headers (the low two bits are the basic type).
const (
	variantPrimitive   = 0
	variantShortString = 1
	variantObject      = 2
	variantArray       = 3

	variantNull   = 0
	variantTrue   = 1
	variantFalse  = 2
	variantInt8   = 3
	variantInt16  = 4
	variantInt32  = 5
	variantInt64  = 6
	variantDouble = 7
	variantString = 16
)

// EncodeVariant encodes a decoded JSON value (from encoding/json, with or
// without UseNumber) as a Variant: objects, arrays, strings, booleans,
// null, integers in the smallest integer type that holds them and other
// numbers as doubles. Offsets and ids are written 4 bytes wide, which every
// reader accepts.
func EncodeVariant(v any) (Variant, error) {
	e := variantEncoder{ids: map[string]int{}}
	e.collectKeys(v)
	sort.Strings(e.keys)
	for i, k := range e.keys {
		e.ids[k] = i
	}
	val, err := e.value(nil, v, 0)
	if err != nil {
		return Variant{}, err
	}
	// Metadata: version 1, sorted keys, 4-byte offsets.
	md := []byte{0x01 | 0x10 | 3<<6}
	md = binary.LittleEndian.AppendUint32(md, uint32(len(e.keys)))
	off := 0
	md = binary.LittleEndian.AppendUint32(md, 0)
	for _, k := range e.keys {
		off += len(k)
		md = binary.LittleEndian.AppendUint32(md, uint32(off))
	}
	for _, k := range e.keys {
		md = append(md, k...)
	}
	return Variant{Metadata: md, Value: val}, nil
}

type variantEncoder struct {
	keys []string
	ids  map[string]int
}

func (e *variantEncoder) collectKeys(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if _, ok := e.ids[k]; !ok {
				e.ids[k] = -1
				e.keys = append(e.keys, k)
			}
			e.collectKeys(c)
		}
	case []any:
		for _, c := range x {
			e.collectKeys(c)
		}
	}
}

// maxVariantDepth bounds nesting, as JSON decoders do.
const maxVariantDepth = 1000

func (e *variantEncoder) value(b []byte, v any, depth int) ([]byte, error) {
	if depth > maxVariantDepth {
		return nil, errors.New("variant nested too deeply")
	}
	switch x := v.(type) {
	case nil:
		return append(b, variantNull<<2|variantPrimitive), nil
	case bool:
		if x {
			return append(b, variantTrue<<2|variantPrimitive), nil
		}
		return append(b, variantFalse<<2|variantPrimitive), nil
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return variantInt(b, i), nil
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", x, err)
		}
		return variantFloat(b, f)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return variantInt(b, int64(x)), nil
		}
		return variantFloat(b, x)
	case string:
		if len(x) < 64 {
			b = append(b, byte(len(x))<<2|variantShortString)
			return append(b, x...), nil
		}
		b = append(b, variantString<<2|variantPrimitive)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(x)))
		return append(b, x...), nil
	case []any:
		// is_large, 4-byte offsets.
		b = append(b, (1<<2|3)<<2|variantArray)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(x)))
		offPos := len(b)
		b = append(b, make([]byte, 4*(len(x)+1))...)
		start := len(b)
		for i, c := range x {
			binary.LittleEndian.PutUint32(b[offPos+4*i:], uint32(len(b)-start))
			var err error
			if b, err = e.value(b, c, depth+1); err != nil {
				return nil, err
			}
		}
		binary.LittleEndian.PutUint32(b[offPos+4*len(x):], uint32(len(b)-start))
		return b, nil
	case map[string]any:
		names := make([]string, 0, len(x))
		for k := range x {
			names = append(names, k)
		}
		// Field ids in the order of their key names (the keys are sorted,
		// so in id order too).
		sort.Strings(names)
		// is_large, 4-byte field ids, 4-byte offsets.
		b = append(b, (1<<4|3<<2|3)<<2|variantObject)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(names)))
		for _, k := range names {
			b = binary.LittleEndian.AppendUint32(b, uint32(e.ids[k]))
		}
		offPos := len(b)
		b = append(b, make([]byte, 4*(len(names)+1))...)
		start := len(b)
		for i, k := range names {
			binary.LittleEndian.PutUint32(b[offPos+4*i:], uint32(len(b)-start))
			var err error
			if b, err = e.value(b, x[k], depth+1); err != nil {
				return nil, err
			}
		}
		binary.LittleEndian.PutUint32(b[offPos+4*len(names):], uint32(len(b)-start))
		return b, nil
	}
	return nil, fmt.Errorf("a JSON value has no variant encoding for %T", v)
}

func variantInt(b []byte, i int64) []byte {
	switch {
	case i >= math.MinInt8 && i <= math.MaxInt8:
		return append(b, variantInt8<<2|variantPrimitive, byte(int8(i)))
	case i >= math.MinInt16 && i <= math.MaxInt16:
		return binary.LittleEndian.AppendUint16(append(b, variantInt16<<2|variantPrimitive), uint16(int16(i)))
	case i >= math.MinInt32 && i <= math.MaxInt32:
		return binary.LittleEndian.AppendUint32(append(b, variantInt32<<2|variantPrimitive), uint32(int32(i)))
	}
	return binary.LittleEndian.AppendUint64(append(b, variantInt64<<2|variantPrimitive), uint64(i))
}

func variantFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("number %v is not finite", f)
	}
	return binary.LittleEndian.AppendUint64(append(b, variantDouble<<2|variantPrimitive), math.Float64bits(f)), nil
}
