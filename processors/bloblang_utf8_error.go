package processors

import (
	"fmt"
	"unicode/utf8"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
)

// utf8ErrorMethod is the Bloblang method utf8_error. JSON text must be UTF-8
// (RFC 8259), yet parse_json turns invalid bytes inside strings into U+FFFD
// silently; this lets a mapping refuse such a record with a reason instead.
const utf8ErrorMethod = "utf8_error"

func init() {
	spec := bloblang.NewPluginSpec().
		Category("String Manipulation").
		Description("Returns null when the string or bytes are valid UTF-8, otherwise a description of the first invalid byte and its offset. Use it before `parse_json`, which replaces invalid bytes inside JSON strings with U+FFFD instead of failing.").
		Example("Refuse a message that is not UTF-8",
			`root = if content().utf8_error() != null { throw("not UTF-8: " + content().utf8_error()) } else { this }`,
			[2]string{`{"a":"ok"}`, `{"a":"ok"}`})
	bloblang.MustRegisterMethodV2(utf8ErrorMethod, spec, func(*bloblang.ParsedParams) (bloblang.Method, error) {
		return func(v any) (any, error) {
			b, err := bytesOf(v)
			if err != nil {
				return nil, err
			}
			if off := invalidUTF8Offset(b); off >= 0 {
				return fmt.Sprintf("invalid UTF-8 byte 0x%02X at offset %d", b[off], off), nil
			}
			return nil, nil
		}, nil
	})
}

// invalidUTF8Offset is the offset of the first byte that does not start a
// valid UTF-8 sequence, or -1.
func invalidUTF8Offset(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}
