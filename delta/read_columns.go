package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/parquet-go/parquet-go"
)

// ReadColumns reads only the named columns of the live rows of one data file
// of the snapshot: each row holds the values of columns, in that order.
// Partition columns come from the add action and columns the file lacks are
// null; rows its deletion vector deletes are dropped. No columns gives one
// empty row per live row (a row count). Flat columns are decoded from their
// own column chunks, so a check of one column of a wide table decodes that
// column only; a nested column falls back to decoding whole rows.
func (s *Snapshot) ReadColumns(ctx context.Context, store storage.Store, add AddFile, columns []string) ([]Row, error) {
	storePath := pathKey(add.Path)
	idx := make([]int, len(columns))
	nested := false
	for k, name := range columns {
		i := s.schema.Index(name)
		if i < 0 {
			return nil, fmt.Errorf("reading columns of data file %s: column %q is not in the table schema", storePath, name)
		}
		idx[k] = i
		if s.schema.types[i].Kind.grouped() {
			nested = true
		}
	}
	if nested {
		rows, err := s.ReadFile(ctx, store, add)
		if err != nil {
			return nil, err
		}
		for r, row := range rows {
			out := make(Row, len(idx))
			for k, i := range idx {
				out[k] = row[i]
			}
			rows[r] = out
		}
		return rows, nil
	}
	data, err := store.Get(ctx, storePath)
	if err != nil {
		return nil, fmt.Errorf("reading data file %s: %w", storePath, err)
	}
	rows, err := decodeColumns(data, s.schema, s.metadata.PartitionColumns, add.PartitionValues, idx)
	if err != nil {
		return nil, fmt.Errorf("reading data file %s: %w", storePath, err)
	}
	if add.DeletionVector == nil {
		return rows, nil
	}
	dv, err := ReadDeletionVector(ctx, store, add.DeletionVector)
	if err != nil {
		return nil, fmt.Errorf("reading data file %s: %w", storePath, err)
	}
	if !dv.IsEmpty() && dv.Maximum() >= uint64(len(rows)) {
		return nil, fmt.Errorf("reading data file %s: its deletion vector deletes row %d but the file has %d rows", storePath, dv.Maximum(), len(rows))
	}
	kept := rows[:0]
	for i, r := range rows {
		if !dv.Contains(uint64(i)) {
			kept = append(kept, r)
		}
	}
	return kept, nil
}

// decodeColumns decodes the flat columns idx (schema positions) of a data
// file, one column chunk at a time.
func decodeColumns(data []byte, sc *Schema, partCols []string, pvals map[string]*string, idx []int) ([]Row, error) {
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("opening parquet: %w", err)
	}
	n := f.NumRows()
	rows := make([]Row, n)
	for r := range rows {
		rows[r] = make(Row, len(idx))
	}
	top := make([]StructField, len(sc.fields))
	for i, fl := range sc.fields {
		top[i] = StructField{Name: fl.Name, Type: sc.types[i], Nullable: fl.Nullable, Metadata: fl.Metadata}
	}
	fs := f.Schema()
	for k, i := range idx {
		if isPartitionColumn(sc, partCols, i) {
			raw, _ := sc.PartitionValue(pvals, sc.fields[i].Name)
			v, err := ParsePartitionValue(sc.types[i], raw)
			if err != nil {
				return nil, fmt.Errorf("partition column %q: %w", sc.fields[i].Name, err)
			}
			for r := range rows {
				rows[r][k] = v
			}
			continue
		}
		var fld parquet.Field
		for _, ff := range fs.Fields() {
			if matchField(top, ff) == i {
				fld = ff
				break
			}
		}
		if fld == nil {
			continue // added after this file was written: null
		}
		leaf, ok := fs.Lookup(fld.Name())
		if !ok || leaf.MaxRepetitionLevel > 0 {
			return nil, fmt.Errorf("column %q is not a flat column in the file", sc.fields[i].Name)
		}
		rc := readColFor(leaf.Node, leaf.ColumnIndex)
		rc.schemaIdx = i
		if err := decodeColumnChunks(f, sc.types[i], rc, rows, k); err != nil {
			return nil, fmt.Errorf("column %q: %w", sc.fields[i].Name, err)
		}
	}
	return rows, nil
}

func isPartitionColumn(sc *Schema, partCols []string, i int) bool {
	for _, pc := range partCols {
		if sc.Index(pc) == i {
			return true
		}
	}
	return false
}

// decodeColumnChunks fills rows[*][k] from the leaf rc.leaf of every row
// group, page by page.
func decodeColumnChunks(f *parquet.File, t DataType, rc readCol, rows []Row, k int) error {
	r := 0
	buf := make([]parquet.Value, 256)
	for _, rg := range f.RowGroups() {
		pages := rg.ColumnChunks()[rc.leaf].Pages()
		for {
			page, err := pages.ReadPage()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				pages.Close()
				return fmt.Errorf("reading page: %w", err)
			}
			vr := page.Values()
			for {
				m, err := vr.ReadValues(buf)
				for _, pv := range buf[:m] {
					if r >= len(rows) {
						parquet.Release(page)
						pages.Close()
						return fmt.Errorf("more values than the file's %d rows", len(rows))
					}
					v, cerr := fromParquet(t, pv, rc)
					if cerr != nil {
						parquet.Release(page)
						pages.Close()
						return cerr
					}
					rows[r][k] = v
					r++
				}
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					parquet.Release(page)
					pages.Close()
					return fmt.Errorf("reading values: %w", err)
				}
				if m == 0 {
					break
				}
			}
			parquet.Release(page)
		}
		if err := pages.Close(); err != nil {
			return fmt.Errorf("closing pages: %w", err)
		}
	}
	if r != len(rows) {
		return fmt.Errorf("%d values for the file's %d rows", r, len(rows))
	}
	return nil
}
