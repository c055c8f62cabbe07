package bytesize

import "testing"

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "1048576", want: 1048576},
		{in: "50MiB", want: 50 << 20},
		{in: "1MB", want: 1000000},
		{in: "1.5 KiB", want: 1536},
		{in: "1kb", want: 1000},
		{in: "2 GiB", want: 2 << 30},
		{in: "MiB", wantErr: true},
		{in: "5 parsecs", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}
