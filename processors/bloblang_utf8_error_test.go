package processors

import (
	"testing"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
)

func TestUTF8ErrorMethod(t *testing.T) {
	exe, err := bloblang.Parse(`root = this.utf8_error()`)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
		want any
	}{
		{"ascii JSON", []byte(`{"a":"b"}`), nil},
		{"multibyte", []byte(`{"a":"tâche é 日本"}`), nil},
		{"empty", []byte{}, nil},
		{"Latin-1 inside a JSON string", []byte("{\"a\":\"t\xe2che\"}"), "invalid UTF-8 byte 0xE2 at offset 7"},
		{"truncated sequence at the end", []byte("ab\xe6\x97"), "invalid UTF-8 byte 0xE6 at offset 2"},
		{"UTF-16 byte order mark", []byte("\xff\xfe{"), "invalid UTF-8 byte 0xFF at offset 0"},
		{"surrogate half", []byte("x\xed\xa0\x80"), "invalid UTF-8 byte 0xED at offset 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := exe.Query(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("utf8_error of %q = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	if _, err := exe.Query(int64(3)); err == nil {
		t.Fatal("a number should be refused")
	}
}
