// Package jsontext writes the JSON text of decoded JSON values (the
// map[string]any, []any, string, float64, bool and nil that encoding/json and
// benthos produce) byte for byte as encoding/json does, without its
// reflection: JSON columns of Delta rows and structured Kafka messages are
// encoded once per record, where json.Marshal's map handling was a fifth of
// the cost.
package jsontext

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
)

// Append appends the JSON text of v to dst: what json.Marshal writes when
// escapeHTML is set, else what a json.Encoder with SetEscapeHTML(false)
// writes (without its newline). Keys are sorted. Values other than decoded
// JSON values are left to encoding/json.
func Append(dst []byte, v any, escapeHTML bool) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return AppendString(dst, x, escapeHTML), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case float64:
		return appendJSONFloat(dst, x)
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case json.Number:
		if x != "" && isJSONNumber(string(x)) {
			return append(dst, x...), nil
		}
	case map[string]any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		var err error
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, k, escapeHTML)
			dst = append(dst, ':')
			if dst, err = Append(dst, x[k], escapeHTML); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	case []any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		var err error
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = Append(dst, e, escapeHTML); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	}
	return appendEncoded(dst, v, escapeHTML)
}

// appendEncoded leaves v to encoding/json.
func appendEncoded(dst []byte, v any, escapeHTML bool) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	out := buf.Bytes()
	return out[:len(out)-1], nil // Encode ends with a newline
}

// bufPool holds encoding buffers, so that a large value is encoded without
// growing a new buffer each time.
var bufPool = sync.Pool{New: func() any { return new([]byte) }}

// Encode returns the JSON text of v as Append writes it, in a slice of its
// own of exactly that length.
func Encode(v any, escapeHTML bool) ([]byte, error) {
	var out []byte
	err := withBuffer(v, escapeHTML, func(b []byte) { out = bytes.Clone(b) })
	return out, err
}

// EncodeString is Encode as a string.
func EncodeString(v any, escapeHTML bool) (string, error) {
	var out string
	err := withBuffer(v, escapeHTML, func(b []byte) { out = string(b) })
	return out, err
}

// maxPooledBuffer bounds the buffers kept for reuse, so that one huge value
// does not pin its buffer.
const maxPooledBuffer = 1 << 20

func withBuffer(v any, escapeHTML bool, use func([]byte)) error {
	bp := bufPool.Get().(*[]byte)
	b, err := Append((*bp)[:0], v, escapeHTML)
	if err == nil {
		use(b)
	}
	if cap(b) <= maxPooledBuffer {
		*bp = b[:0]
		bufPool.Put(bp)
	}
	return err
}

// appendJSONFloat writes a float64 as encoding/json does: no exponent
// between 1e-6 and 1e21, and a two-digit negative exponent trimmed to one.
func appendJSONFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, &json.UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

const hexDigits = "0123456789abcdef"

// plainASCII[html][b] tells whether ASCII byte b is written as it is, without
// ([0]) and with ([1]) HTML escaping.
var plainASCII = func() (t [2][utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[0][b] = b != '"' && b != '\\'
		t[1][b] = t[0][b] && b != '<' && b != '>' && b != '&'
	}
	return t
}()

// AppendString appends s quoted as encoding/json does: invalid UTF-8
// becomes \ufffd, U+2028 and U+2029 are escaped, and so are <, > and & when
// escapeHTML is set.
func AppendString(dst []byte, s string, escapeHTML bool) []byte {
	dst = slices.Grow(dst, len(s)+2)
	dst = append(dst, '"')
	plain := &plainASCII[0]
	if escapeHTML {
		plain = &plainASCII[1]
	}
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if plain[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// isJSONNumber reports whether s is a JSON number (RFC 8259 §6), the check
// encoding/json makes before writing a json.Number.
func isJSONNumber(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' {
		s = s[1:]
		if s == "" {
			return false
		}
	}
	switch {
	case s[0] == '0':
		s = s[1:]
	case '1' <= s[0] && s[0] <= '9':
		s = s[1:]
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	default:
		return false
	}
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		s = s[2:]
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s[0] == '+' || s[0] == '-' {
			s = s[1:]
			if s == "" {
				return false
			}
		}
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	return s == ""
}
