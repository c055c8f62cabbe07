package deltasink

import (
	"context"
	"fmt"
	"hash/maphash"
	"strings"
	"time"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
)

// defaultDedupePartitions bounds how many partitions' keys stay in memory.
// Duplicates and replays land in the partition of their event time, which is
// recent, so the most recently used partitions are the ones that matter.
const defaultDedupePartitions = 64

// dedupeKey is a row key within its partition. A zero hash means the row has
// no key (null) and is never a duplicate.
type dedupeKey struct {
	part string
	hash uint64
}

type dedupePart struct {
	keys     map[uint64]struct{}
	files    map[string]bool // data files whose keys are loaded
	lastUsed uint64
	// loadedAt is the snapshot whose files are all loaded: the rows of a
	// batch share one, so the partition's files are checked once a batch,
	// not once a row.
	loadedAt *delta.Snapshot
}

// dedupeIndex holds hashed keys of the table's rows, per partition, loaded
// lazily from the partition's data files. 64-bit hashes keep memory at a few
// bytes a row; a false "duplicate" needs a collision (about 1 in 10^10 for a
// million rows of one partition).
type dedupeIndex struct {
	column   string
	maxParts int
	seed     maphash.Seed
	parts    map[string]*dedupePart
	tick     uint64

	// byPart groups the snapshot's files by partition for the current batch.
	byPart     map[string][]delta.AddFile
	byPartSnap *delta.Snapshot
}

func newDedupeIndex(column string, maxParts int) *dedupeIndex {
	return &dedupeIndex{column: column, maxParts: maxParts, seed: maphash.MakeSeed(), parts: map[string]*dedupePart{}}
}

// partKey renders partition values (keyed by logical name, or by physical
// name as add actions of column-mapping tables are) as one string.
func partKey(sc *delta.Schema, pvals map[string]*string, cols []string) string {
	var b strings.Builder
	for _, c := range cols {
		v, _ := sc.PartitionValue(pvals, c)
		b.WriteString(c)
		if v == nil {
			b.WriteString("\x00null")
		} else {
			b.WriteString("=")
			b.WriteString(*v)
		}
		b.WriteByte('/')
	}
	return b.String()
}

func (d *dedupeIndex) hashValue(v any) uint64 {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case []byte:
		s = string(x)
	case time.Time:
		s = x.UTC().Format(time.RFC3339Nano)
	default:
		s = fmt.Sprint(x)
	}
	h := maphash.String(d.seed, s)
	if h == 0 {
		h = 1
	}
	return h
}

// keyOf returns the key of row, loading the keys of its partition first.
func (d *dedupeIndex) keyOf(ctx context.Context, store storage.Store, snap *delta.Snapshot, sc *delta.Schema, row delta.Row, partCols []string) (dedupeKey, error) {
	ci := sc.Index(d.column)
	if ci < 0 || row[ci] == nil {
		return dedupeKey{}, nil
	}
	pvals, err := sc.PartitionValues(row, partCols)
	if err != nil {
		return dedupeKey{}, err
	}
	k := dedupeKey{part: partKey(sc, pvals, partCols), hash: d.hashValue(row[ci])}
	if err := d.load(ctx, store, snap, sc, k.part, partCols); err != nil {
		return dedupeKey{}, err
	}
	return k, nil
}

// load reads the keys of the partition's files not read yet: all of them the
// first time, then only files other writers added.
func (d *dedupeIndex) load(ctx context.Context, store storage.Store, snap *delta.Snapshot, sc *delta.Schema, part string, partCols []string) error {
	if d.byPartSnap != snap {
		d.byPart = map[string][]delta.AddFile{}
		for _, f := range snap.Files() {
			pk := partKey(sc, f.PartitionValues, partCols)
			d.byPart[pk] = append(d.byPart[pk], f)
		}
		d.byPartSnap = snap
	}
	d.tick++
	p := d.parts[part]
	if p == nil {
		p = &dedupePart{keys: map[uint64]struct{}{}, files: map[string]bool{}}
		d.parts[part] = p
		d.evict()
	}
	p.lastUsed = d.tick
	if p.loadedAt == snap {
		return nil
	}
	ci := snap.Schema().Index(d.column)
	if ci < 0 {
		return nil // the table does not have the column yet: no row has a key
	}
	for _, f := range d.byPart[part] {
		if p.files[f.Path] {
			continue
		}
		rows, err := snap.ReadFile(ctx, store, f)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r[ci] != nil {
				p.keys[d.hashValue(r[ci])] = struct{}{}
			}
		}
		p.files[f.Path] = true
	}
	p.loadedAt = snap
	return nil
}

func (d *dedupeIndex) evict() {
	for len(d.parts) > d.maxParts {
		var oldest string
		var min uint64 = ^uint64(0)
		for k, p := range d.parts {
			if p.lastUsed < min {
				oldest, min = k, p.lastUsed
			}
		}
		delete(d.parts, oldest)
	}
}

func (d *dedupeIndex) contains(k dedupeKey) bool {
	p := d.parts[k.part]
	if p == nil {
		return false
	}
	_, ok := p.keys[k.hash]
	return ok
}

// committed records the keys of rows just committed, and their files as
// read, so the next batch does not read back what this writer wrote.
func (d *dedupeIndex) committed(keys []dedupeKey, files []delta.AddFile) {
	for _, k := range keys {
		if p := d.parts[k.part]; p != nil {
			p.keys[k.hash] = struct{}{}
		}
	}
	for _, f := range files {
		for _, p := range d.parts {
			// A file belongs to exactly one partition; marking it in every
			// cached one is harmless and avoids recomputing its key here.
			p.files[f.Path] = true
		}
	}
}

// compacted records that each bin's added files hold exactly the rows of
// its removed files: in a partition whose keys include every removed file,
// the added files count as read and the removed ones are forgotten.
func (d *dedupeIndex) compacted(bins []delta.CompactedBin) {
	for _, b := range bins {
		for _, p := range d.parts {
			all := true
			for _, f := range b.Removed {
				if !p.files[f.Path] {
					all = false
					break
				}
			}
			if !all {
				continue
			}
			for _, f := range b.Removed {
				delete(p.files, f.Path)
			}
			for _, f := range b.Added {
				p.files[f.Path] = true
			}
		}
	}
}
