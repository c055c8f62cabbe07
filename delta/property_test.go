package delta

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var propTypes = []string{"string", "long", "integer", "short", "byte", "float", "double", "boolean", "binary", "date", "timestamp", "decimal"}

func randomSchema(r *rand.Rand) (*Schema, []string) {
	n := 1 + r.IntN(12)
	var fields []Field
	for i := 0; i < n; i++ {
		typ := propTypes[r.IntN(len(propTypes))]
		if typ == "decimal" {
			p := 1 + r.IntN(38)
			typ = fmt.Sprintf("decimal(%d,%d)", p, r.IntN(p+1))
		}
		name := fmt.Sprintf("c%d_%s", i, []string{"x", "é", "Ünï", "a.b", "q-r"}[r.IntN(5)])
		fields = append(fields, Field{Name: name, Type: typ, Nullable: r.IntN(3) > 0})
	}
	var parts []string
	if r.IntN(2) == 0 {
		fields = append(fields, Field{Name: "pk", Type: []string{"string", "integer", "date", "long"}[r.IntN(4)], Nullable: true})
		parts = []string{"pk"}
	}
	return MustSchema(fields...), parts
}

func randomValue(r *rand.Rand, t DataType) any {
	switch t.Kind {
	case KindString:
		var b strings.Builder
		for k := r.IntN(50); k > 0; k-- {
			b.WriteRune([]rune("abcXYZ09 _/=%é漢\U0001F600\"\\\n")[r.IntN(18)])
		}
		return b.String()
	case KindLong:
		return int64(r.Uint64())
	case KindInteger:
		return int32(r.Uint32())
	case KindShort:
		return int16(r.Uint32())
	case KindByte:
		return int8(r.Uint32())
	case KindFloat:
		return float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(20)-10)))
	case KindDouble:
		return r.NormFloat64() * math.Pow(10, float64(r.IntN(200)-100))
	case KindBoolean:
		return r.IntN(2) == 0
	case KindBinary:
		b := make([]byte, r.IntN(20))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	case KindDate:
		return time.Date(1900+r.IntN(200), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC)
	case KindTimestamp:
		return time.UnixMicro(r.Int64N(2*3155760000000000) - 3155760000000000).UTC()
	case KindDecimal:
		var ds strings.Builder
		for k := 1 + r.IntN(t.Precision); k > 0; k-- {
			ds.WriteByte(byte('0' + r.IntN(10)))
		}
		u, _ := new(big.Int).SetString(ds.String(), 10)
		if r.IntN(2) == 0 {
			u.Neg(u)
		}
		return Decimal{Unscaled: u, Scale: t.Scale}
	}
	panic(t.String())
}

// TestRandomSchemasRoundtrip is a property test over a fixed set of seeds:
// random schemas and rows survive Append → snapshot → read back, with
// correct stats.
func TestRandomSchemasRoundtrip(t *testing.T) {
	for seed := uint64(1); seed <= 16; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := newRand(seed)
			sc, parts := randomSchema(r)
			st := newLocal(t)
			tbl := mustCreate(t, st, sc, parts, nil, OpenOptions{CheckpointInterval: 2, Writer: WriterOptions{RowGroupBytes: int64(1 + r.IntN(64<<10))}})
			var all []Row
			for b := 0; b < 1+r.IntN(3); b++ {
				rows := make([]Row, r.IntN(300))
				for i := range rows {
					row := make(Row, sc.Len())
					for c := 0; c < sc.Len(); c++ {
						if sc.Field(c).Nullable && r.IntN(4) == 0 {
							continue
						}
						if sc.Field(c).Name == "pk" {
							row[c] = randomValue(rand.New(rand.NewPCG(uint64(r.IntN(4)), 9)), sc.Type(c))
							if s, ok := row[c].(string); ok && s == "" {
								row[c] = nil // "" is null as a partition value
							}
							continue
						}
						row[c] = randomValue(r, sc.Type(c))
					}
					rows[i] = row
				}
				all = append(all, rows...)
				_, err := tbl.Append(context.Background(), AppendRequest{Rows: rows})
				must(t, err)
			}
			snap, got := readAll(t, st)
			if !snap.Schema().Equal(sc) {
				t.Fatalf("schema %s != %s", snap.Schema(), sc)
			}
			sameRows(t, got, all)
			for _, f := range snap.Files() {
				rows, err := snap.ReadFile(context.Background(), st, f)
				must(t, err)
				checkStats(t, sc, parts, f, rows, 32)
			}
		})
	}
}

func TestStatsSkipNaN(t *testing.T) {
	st := newLocal(t)
	sc := MustSchema(Field{Name: "d", Type: "double", Nullable: true}, Field{Name: "l", Type: "long", Nullable: true})
	tbl := mustCreate(t, st, sc, nil, nil, OpenOptions{})
	res, err := tbl.Append(context.Background(), AppendRequest{Rows: []Row{{1.0, int64(1)}, {math.NaN(), nil}, {math.Inf(1), int64(-3)}}})
	must(t, err)
	stats := parseStats(t, res.Files[0].Stats)
	if _, ok := stats["minValues"].(map[string]any)["d"]; ok {
		t.Errorf("NaN/Inf column must have no min: %s", res.Files[0].Stats)
	}
	eq(t, "min l", fmt.Sprint(stats["minValues"].(map[string]any)["l"]), "-3")
	eq(t, "nulls l", fmt.Sprint(stats["nullCount"].(map[string]any)["l"]), "1")
}

func TestAppendRejectsWrongGoTypes(t *testing.T) {
	st := newLocal(t)
	sc := MustSchema(Field{Name: "a", Type: "integer"}, Field{Name: "b", Type: "string", Nullable: true})
	tbl := mustCreate(t, st, sc, nil, nil, OpenOptions{})
	tests := []struct {
		row  Row
		want string
	}{
		{Row{int64(1), "x"}, `column "a"`},
		{Row{int32(1), 5}, `column "b"`},
		{Row{nil, "x"}, "not nullable"},
		{Row{int32(1)}, "1 values"},
	}
	for _, tc := range tests {
		_, err := tbl.Append(context.Background(), AppendRequest{Rows: []Row{tc.row}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.row, err, tc.want)
		}
	}
	eq(t, "nothing committed", tbl.Version(), int64(0))
}
