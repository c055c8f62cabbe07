package delta

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

// wideSchema covers every supported type, nullable and not, plus a string
// partition column whose values need Hive escaping.
func wideSchema() *Schema {
	return MustSchema(
		Field{Name: "id", Type: "string", Nullable: false},
		Field{Name: "s", Type: "string", Nullable: true},
		Field{Name: "l", Type: "long", Nullable: true},
		Field{Name: "i", Type: "integer", Nullable: false},
		Field{Name: "sh", Type: "short", Nullable: true},
		Field{Name: "b", Type: "byte", Nullable: true},
		Field{Name: "f", Type: "float", Nullable: true},
		Field{Name: "d", Type: "double", Nullable: true},
		Field{Name: "bo", Type: "boolean", Nullable: true},
		Field{Name: "bin", Type: "binary", Nullable: true},
		Field{Name: "dt", Type: "date", Nullable: true},
		Field{Name: "ts", Type: "timestamp", Nullable: true},
		Field{Name: "dec", Type: "decimal(10,2)", Nullable: true},
		Field{Name: "bigdec", Type: "decimal(38,6)", Nullable: true},
		Field{Name: "region", Type: "string", Nullable: true},
	)
}

var wideRegions = []any{"north", "a/b=c d:e%f", nil, "été", "x#y?z"}

func wideRow(r *rand.Rand, i int) Row {
	null := func(v any) any {
		if r.IntN(5) == 0 {
			return nil
		}
		return v
	}
	strs := []string{"", "a", "zz", "héllo wörld", strings.Repeat("long-", 20) + strconv.Itoa(i), "\U0001F600 emoji" + strings.Repeat("!", 40), "quote\"back\\slash\nnewline"}
	ts := time.UnixMicro(1767225600000000 + r.Int64N(400*24*3600*1e6) - 200*24*3600*1e6).UTC()
	dt := time.Date(1960+r.IntN(100), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC)
	dec := Decimal{Unscaled: big.NewInt(r.Int64N(2e9) - 1e9), Scale: 2}
	bigU, _ := new(big.Int).SetString(strconv.FormatInt(r.Int64(), 10)+strconv.FormatInt(r.Int64N(1e12), 10), 10)
	if r.IntN(2) == 0 {
		bigU.Neg(bigU)
	}
	bin := make([]byte, r.IntN(8))
	for k := range bin {
		bin[k] = byte(r.IntN(256))
	}
	return Row{
		fmt.Sprintf("id-%06d", i),
		null(strs[r.IntN(len(strs))]),
		null(r.Int64() - math.MaxInt64/2),
		int32(r.Int32() - math.MaxInt32/2),
		null(int16(r.IntN(65536) - 32768)),
		null(int8(r.IntN(256) - 128)),
		null(float32(r.NormFloat64())),
		null(r.NormFloat64() * 1e6),
		null(r.IntN(2) == 0),
		null(bin),
		null(dt),
		null(ts),
		null(dec),
		null(Decimal{Unscaled: bigU, Scale: 6}),
		wideRegions[r.IntN(len(wideRegions))],
	}
}

// norm renders a value canonically for comparisons across readers.
func norm(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case time.Time:
		return "t" + strconv.FormatInt(x.UnixMicro(), 10)
	case Decimal:
		return "dec" + x.String()
	case []byte:
		return "0x" + hex.EncodeToString(x)
	case float32:
		return "f" + strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return "d" + strconv.FormatFloat(x, 'g', -1, 64)
	default:
		return fmt.Sprintf("%T:%v", x, x)
	}
}

func rowKey(r Row) string {
	parts := make([]string, len(r))
	for i, v := range r {
		parts[i] = norm(v)
	}
	return strings.Join(parts, "|")
}

func sortedKeys(rows []Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = rowKey(r)
	}
	sort.Strings(out)
	return out
}

// readAll reads every live file of the table's current snapshot.
func readAll(t testing.TB, st storage.Store) (*Snapshot, []Row) {
	t.Helper()
	tbl, err := Open(context.Background(), st, OpenOptions{ReadOnly: true})
	must(t, err)
	snap := tbl.Snapshot()
	var rows []Row
	for _, f := range snap.Files() {
		r, err := snap.ReadFile(context.Background(), st, f)
		must(t, err)
		rows = append(rows, r...)
	}
	return snap, rows
}

func sameRows(t testing.TB, got, want []Row) {
	t.Helper()
	g, w := sortedKeys(got), sortedKeys(want)
	if len(g) != len(w) {
		t.Fatalf("got %d rows, want %d", len(g), len(w))
	}
	for i := range g {
		if g[i] != w[i] {
			t.Fatalf("row %d differs:\n got %s\nwant %s", i, g[i], w[i])
		}
	}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed*7+1)) }
