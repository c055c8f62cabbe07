package quality

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/claimx/claimx-connect/delta"
)

// norm brings a value read from a table, a partition or the statistics to
// one Go type per family, so values of one column compare and hash alike:
// int64, float64, string, bool, time.Time (UTC), []byte as string.
func norm(v any) any {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case float32:
		return float64(x)
	case delta.Decimal:
		f, _ := strconv.ParseFloat(x.String(), 64)
		return f
	case time.Time:
		return x.UTC()
	case []byte:
		return string(x)
	}
	return v
}

// compare orders two normalised values of one column; ok is false when they
// cannot be compared (different families, booleans).
func compare(a, b any) (c int, ok bool) {
	switch x := a.(type) {
	case int64:
		switch y := b.(type) {
		case int64:
			return cmp3(x < y, x > y), true
		case float64:
			return cmp3(float64(x) < y, float64(x) > y), true
		}
	case float64:
		switch y := b.(type) {
		case float64:
			return cmp3(x < y, x > y), true
		case int64:
			return cmp3(x < float64(y), x > float64(y)), true
		}
	case string:
		if y, ok := b.(string); ok {
			return cmp3(x < y, x > y), true
		}
	case time.Time:
		if y, ok := b.(time.Time); ok {
			return x.Compare(y), true
		}
	case bool:
		if y, ok := b.(bool); ok && x == y {
			return 0, true
		}
	}
	return 0, false
}

func cmp3(lt, gt bool) int {
	switch {
	case lt:
		return -1
	case gt:
		return 1
	}
	return 0
}

// hashKey is a map key for a normalised value: times by their instant.
func hashKey(v any) any {
	if t, ok := v.(time.Time); ok {
		return t.UnixNano()
	}
	return v
}

// typed converts a value of the expectations file (its text) to the type of
// column t, normalised.
func typed(t delta.DataType, text any) (any, error) {
	s := fmt.Sprint(text)
	v, err := delta.ParsePartitionValue(t, &s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a %s value: %w", s, t, err)
	}
	return norm(v), nil
}

// display renders a value for messages and details.
func display(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case string:
		return strconv.Quote(x)
	}
	return fmt.Sprint(v)
}

// jsonValue is a value as details hold it.
func jsonValue(v any) any {
	if t, ok := v.(time.Time); ok {
		return t.UTC().Format(time.RFC3339Nano)
	}
	return v
}

// fileStats are the parsed statistics of one add action.
type fileStats struct {
	numRecords *int64
	minValues  map[string]json.RawMessage
	maxValues  map[string]json.RawMessage
	nullCount  map[string]json.RawMessage
}

func parseStats(s string) *fileStats {
	if s == "" {
		return &fileStats{}
	}
	var raw struct {
		NumRecords *int64                     `json:"numRecords"`
		MinValues  map[string]json.RawMessage `json:"minValues"`
		MaxValues  map[string]json.RawMessage `json:"maxValues"`
		NullCount  map[string]json.RawMessage `json:"nullCount"`
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		// Unreadable statistics are no statistics: the file is scanned.
		return &fileStats{}
	}
	return &fileStats{numRecords: raw.NumRecords, minValues: raw.MinValues, maxValues: raw.MaxValues, nullCount: raw.NullCount}
}

// bound returns the min or max statistic of a column (by its physical
// name), typed and normalised.
func (fs *fileStats) bound(t delta.DataType, key string, isMax bool) (any, bool) {
	m := fs.minValues
	if isMax {
		m = fs.maxValues
	}
	raw, ok := m[key]
	if !ok {
		return nil, false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		// Numbers (and booleans) are not JSON strings.
		s = string(raw)
	}
	v, err := delta.ParsePartitionValue(t, &s)
	if err != nil || v == nil {
		return nil, false
	}
	return norm(v), true
}

// nulls returns the nullCount statistic of a flat column.
func (fs *fileStats) nulls(key string) (int64, bool) {
	raw, ok := fs.nullCount[key]
	if !ok {
		return 0, false
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, false // a struct's nullCount is an object
	}
	return n, true
}

// allNull reports whether the statistics say every row of the column is null.
func (fs *fileStats) allNull(key string) bool {
	n, ok := fs.nulls(key)
	return ok && fs.numRecords != nil && n == *fs.numRecords
}
