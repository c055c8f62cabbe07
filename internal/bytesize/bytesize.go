// Package bytesize reads byte sizes written as a number of bytes or a
// humanised size such as "50MiB" or "1.5 MB", as Connect configs do.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"
)

var units = map[string]int64{
	"":    1,
	"b":   1,
	"k":   1000,
	"kb":  1000,
	"ki":  1 << 10,
	"kib": 1 << 10,
	"m":   1000 * 1000,
	"mb":  1000 * 1000,
	"mi":  1 << 20,
	"mib": 1 << 20,
	"g":   1000 * 1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"gi":  1 << 30,
	"gib": 1 << 30,
}

// Parse parses sizes like "1048576", "50MiB", "1.5 MB" or "1kb". Units are
// case insensitive; SI units are powers of 1000, IEC units (KiB, MiB, GiB)
// powers of 1024, as in go-humanize which Connect uses.
func Parse(s string) (int64, error) {
	str := strings.TrimSpace(s)
	i := 0
	for i < len(str) && (str[i] >= '0' && str[i] <= '9' || str[i] == '.') {
		i++
	}
	num, unit := str[:i], strings.ToLower(strings.TrimSpace(str[i:]))
	if num == "" {
		return 0, fmt.Errorf("parsing byte size %q: no number", s)
	}
	mult, ok := units[unit]
	if !ok {
		return 0, fmt.Errorf("parsing byte size %q: unknown unit %q", s, unit)
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing byte size %q: %w", s, err)
	}
	return int64(f * float64(mult)), nil
}

// NewField is a config field holding a byte size, as a number or a string.
func NewField(name string) *service.ConfigField {
	return service.NewStringField(name)
}

// FromConfig reads a field made with NewField.
func FromConfig(conf *service.ParsedConfig, path ...string) (int64, error) {
	name := strings.Join(path, ".")
	v, err := conf.FieldAny(path...)
	if err != nil {
		return 0, err
	}
	var n int64
	switch t := v.(type) {
	case int:
		n = int64(t)
	case int64:
		n = t
	case float64:
		n = int64(t)
	case string:
		if n, err = Parse(t); err != nil {
			return 0, fmt.Errorf("field %s: %w", name, err)
		}
	default:
		return 0, fmt.Errorf("field %s: expected a byte size, got %T", name, v)
	}
	if n < 0 {
		return 0, fmt.Errorf("field %s: byte size %d is negative", name, n)
	}
	return n, nil
}
