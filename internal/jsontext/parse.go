package jsontext

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds nesting, as encoding/json does, so that hostile input
// cannot exhaust the stack.
const maxDepth = 10000

// Parse decodes b, which must hold exactly one JSON value (whitespace
// around it allowed), into the values json.Unmarshal gives an `any`:
// map[string]any, []any, string, float64, bool and nil; a repeated key keeps
// its last value. Strings may share the memory of one copy of b. Unlike
// json.Unmarshal it refuses invalid UTF-8 inside a
// string instead of replacing it with U+FFFD. Errors name the byte offset.
func Parse(b []byte) (any, error) {
	// One copy of the input as a string: strings without escapes are
	// slices of it rather than an allocation each.
	p := parser{b: b, s: string(b)}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.b) {
		return nil, p.errorf("unexpected %s after the JSON value", p.describe())
	}
	return v, nil
}

type parser struct {
	b []byte
	s string // b, copied once
	i int
}

// SyntaxError is a Parse error at an offset of the input.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.Msg, e.Offset) }

func (p *parser) errorf(format string, args ...any) error {
	return &SyntaxError{Offset: p.i, Msg: fmt.Sprintf(format, args...)}
}

// describe names the byte at the current offset for an error.
func (p *parser) describe() string {
	if p.i >= len(p.b) {
		return "end of input"
	}
	if c := p.b[p.i]; c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02X", p.b[p.i])
}

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (any, error) {
	if p.i >= len(p.b) {
		return nil, p.errorf("unexpected end of input")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.string()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, p.errorf("unexpected %s looking for a value", p.describe())
}

func (p *parser) literal(word string) error {
	if len(p.b)-p.i >= len(word) && string(p.b[p.i:p.i+len(word)]) == word {
		p.i += len(word)
		return nil
	}
	return p.errorf("invalid literal, expected %s", word)
}

func (p *parser) object(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested deeper than %d", maxDepth)
	}
	p.i++ // {
	m := map[string]any{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m, nil
	}
	for {
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.errorf("unexpected %s looking for an object key", p.describe())
		}
		k, err := p.string()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.errorf("unexpected %s after an object key", p.describe())
		}
		p.i++
		p.space()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		m[k] = v
		if done, err := p.afterMember('}', "an object value"); done || err != nil {
			return m, err
		}
	}
}

func (p *parser) array(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested deeper than %d", maxDepth)
	}
	p.i++ // [
	a := []any{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return a, nil
	}
	for {
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		if done, err := p.afterMember(']', "an array element"); done || err != nil {
			return a, err
		}
	}
}

// afterMember reads what follows a member of an object or array: a comma
// (more members follow) or the closing bracket (done).
func (p *parser) afterMember(closing byte, member string) (done bool, err error) {
	p.space()
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case ',':
			p.i++
			p.space()
			return false, nil
		case closing:
			p.i++
			return true, nil
		}
	}
	return false, p.errorf("unexpected %s after %s", p.describe(), member)
}

func (p *parser) number() (any, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		p.digits()
	default:
		return nil, p.errorf("invalid number, expected a digit")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return nil, p.errorf("invalid number, expected a digit after the decimal point")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return nil, p.errorf("invalid number, expected a digit in the exponent")
		}
	}
	f, err := strconv.ParseFloat(string(p.b[start:p.i]), 64)
	if err != nil {
		num := p.b[start:min(p.i, start+32)]
		p.i = start
		return nil, p.errorf("number %s out of range of a 64-bit float", num)
	}
	return f, nil
}

func (p *parser) digits() int {
	n := 0
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
		n++
	}
	return n
}

var errBadEscape = errors.New("invalid escape")

func (p *parser) string() (string, error) {
	p.i++ // "
	start := p.i
	if err := p.plain(); err != nil {
		return "", err
	}
	if p.b[p.i] == '"' { // no escapes: a slice of the input's copy
		p.i++
		return p.s[start : p.i-1], nil
	}
	out := append(make([]byte, 0, p.i-start+16), p.b[start:p.i]...)
	for p.b[p.i] == '\\' {
		r, err := p.escape()
		if err != nil {
			return "", err
		}
		out = utf8.AppendRune(out, r)
		run := p.i
		if err := p.plain(); err != nil {
			return "", err
		}
		out = append(out, p.b[run:p.i]...)
	}
	p.i++ // "
	return string(out), nil
}

// plain moves past the characters of a string that stand for themselves, to
// the next quote or backslash, refusing control characters and invalid
// UTF-8.
func (p *parser) plain() error {
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"' || c == '\\':
			return nil
		case c < 0x20:
			return p.errorf("control character 0x%02X inside a string", c)
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, n := utf8.DecodeRune(p.b[p.i:])
			if r == utf8.RuneError && n == 1 {
				return p.errorf("invalid UTF-8 byte 0x%02X inside a string", c)
			}
			p.i += n
		}
	}
	return p.errorf("unexpected end of input in a string")
}

// escape reads one escape sequence at p.i (a backslash) and returns its
// rune; a lone or broken surrogate is U+FFFD, as in encoding/json.
func (p *parser) escape() (rune, error) {
	if p.i+1 >= len(p.b) {
		return 0, p.errorf("%v: unterminated", errBadEscape)
	}
	c := p.b[p.i+1]
	p.i += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, ok := p.hex4()
		if !ok {
			return 0, p.errorf("%v: \\u needs four hex digits", errBadEscape)
		}
		if !utf16.IsSurrogate(r) {
			return r, nil
		}
		// A high surrogate followed by an escaped low one is one rune.
		if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
			save := p.i
			p.i += 2
			if r2, ok := p.hex4(); ok {
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					return d, nil
				}
			}
			p.i = save
		}
		return utf8.RuneError, nil
	}
	p.i -= 2
	return 0, p.errorf("%v \\%c", errBadEscape, c)
}

func (p *parser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}
