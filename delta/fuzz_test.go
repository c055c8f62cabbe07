package delta

import (
	"bytes"
	"testing"
	"time"
)

// FuzzParseCommit: the commit parser never panics, and what it accepts
// re-encodes to a commit it parses to the same actions.
func FuzzParseCommit(f *testing.F) {
	seeds := []string{
		`{"commitInfo":{"timestamp":1,"operation":"WRITE"}}` + "\n" + `{"add":{"path":"a%20b/part-0.parquet","partitionValues":{"p":null,"q":"1"},"size":10,"modificationTime":1,"dataChange":true,"stats":"{\"numRecords\":1}"}}`,
		`{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}` + "\n" + `{"metaData":{"id":"x","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[]}","partitionColumns":[],"configuration":{}}}`,
		`{"remove":{"path":"x","deletionTimestamp":5,"dataChange":false}}`,
		`{"txn":{"appId":"a","version":3,"lastUpdated":4}}`,
		`{"domainMetadata":{"domain":"d","configuration":"{}","removed":false}}`,
		"\n\n{}\n",
		`{"add":null}`,
		`{"add":{"path":"","size":-1}}`,
		`not json`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		acts, err := ParseCommit(data)
		if err != nil {
			return
		}
		known := acts[:0:0]
		for _, a := range acts {
			if a.Other == "" {
				known = append(known, a)
			}
		}
		enc, err := EncodeCommit(known)
		if err != nil {
			t.Fatalf("re-encoding parsed actions: %v", err)
		}
		again, err := ParseCommit(enc)
		if err != nil {
			t.Fatalf("re-parsing %q: %v", enc, err)
		}
		enc2, err := EncodeCommit(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// FuzzDecodeCheckpoint: damaged checkpoint files are errors, never panics.
func FuzzDecodeCheckpoint(f *testing.F) {
	snap := newEmptySnapshot()
	acts, _ := ParseCommit([]byte(`{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}` + "\n" +
		`{"metaData":{"id":"x","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[{\"name\":\"a\",\"type\":\"string\",\"nullable\":true,\"metadata\":{}}]}","partitionColumns":["a"],"configuration":{"k":"v"}}}` + "\n" +
		`{"add":{"path":"a=1/f.parquet","partitionValues":{"a":"1"},"size":10,"modificationTime":1,"dataChange":true,"stats":"{}"}}` + "\n" +
		`{"txn":{"appId":"app","version":0}}`))
	if err := snap.apply(0, acts); err != nil {
		f.Fatal(err)
	}
	good, err := encodeCheckpoint(checkpointRows(snap, time.Now(), time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("PAR1PAR1"))
	f.Add([]byte{})
	mid := bytes.Clone(good)
	mid[len(mid)/3] ^= 0xFF
	f.Add(mid)
	f.Fuzz(func(t *testing.T, data []byte) {
		acts, err := DecodeCheckpoint(data)
		if err != nil {
			return
		}
		s := newEmptySnapshot()
		_ = s.apply(0, acts) // must not panic either
	})
}

// FuzzParseLastCheckpoint: _last_checkpoint parsing never panics and never
// accepts a negative version.
func FuzzParseLastCheckpoint(f *testing.F) {
	for _, s := range []string{`{"version":10,"size":13}`, `{"version":10,"size":13,"parts":2}`, `{"version":-1}`, `{}`, `{"version":"x"}`, `{"version":1,"parts":0}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lc, err := ParseLastCheckpoint(data)
		if err != nil {
			return
		}
		if lc.Version < 0 || (lc.Parts != nil && *lc.Parts < 1) {
			t.Fatalf("accepted %+v", lc)
		}
	})
}

func TestCheckpointRoundtrip(t *testing.T) {
	snap := newEmptySnapshot()
	acts, err := ParseCommit([]byte(`{"protocol":{"minReaderVersion":1,"minWriterVersion":4}}` + "\n" +
		`{"metaData":{"id":"id-1","name":"n","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[{\"name\":\"a\",\"type\":\"string\",\"nullable\":true,\"metadata\":{}},{\"name\":\"b\",\"type\":\"long\",\"nullable\":true,\"metadata\":{}}]}","partitionColumns":["a"],"configuration":{"delta.enableChangeDataFeed":"true"},"createdTime":7}}` + "\n" +
		`{"add":{"path":"a=1/f1.parquet","partitionValues":{"a":"1"},"size":10,"modificationTime":1,"dataChange":true,"stats":"{\"numRecords\":3}"}}` + "\n" +
		`{"add":{"path":"a=__HIVE_DEFAULT_PARTITION__/f2.parquet","partitionValues":{"a":null},"size":0,"modificationTime":2,"dataChange":true}}` + "\n" +
		`{"remove":{"path":"old.parquet","deletionTimestamp":` + itoa(time.Now().UnixMilli()) + `,"dataChange":true}}` + "\n" +
		`{"remove":{"path":"expired.parquet","deletionTimestamp":1,"dataChange":true}}` + "\n" +
		`{"txn":{"appId":"app","version":0,"lastUpdated":9}}`))
	must(t, err)
	must(t, snap.apply(3, acts))
	rows := checkpointRows(snap, time.Now(), 7*24*time.Hour)
	data, err := encodeCheckpoint(rows)
	must(t, err)
	back, err := DecodeCheckpoint(data)
	must(t, err)
	s2 := newEmptySnapshot()
	must(t, s2.apply(3, back))
	eq(t, "files", len(s2.files), 2)
	eq(t, "null partition value", s2.files["a=__HIVE_DEFAULT_PARTITION__/f2.parquet"].PartitionValues["a"] == nil, true)
	eq(t, "partition value", *s2.files["a=1/f1.parquet"].PartitionValues["a"], "1")
	eq(t, "stats", s2.files["a=1/f1.parquet"].Stats, `{"numRecords":3}`)
	eq(t, "size 0 kept", s2.files["a=__HIVE_DEFAULT_PARTITION__/f2.parquet"].Size, int64(0))
	eq(t, "tombstones (expired dropped)", len(s2.tombstones), 1)
	v, ok := s2.TxnVersion("app")
	eq(t, "txn version 0 kept", ok && v == 0, true)
	eq(t, "protocol", s2.protocol.MinWriterVersion, 4)
	eq(t, "metadata", s2.metadata.ID+s2.metadata.Name+s2.metadata.Configuration["delta.enableChangeDataFeed"], "id-1ntrue")
	eq(t, "created", *s2.metadata.CreatedTime, int64(7))
	eq(t, "schema", s2.schema.String(), "a string, b long")
}

func itoa(n int64) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int64) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}
