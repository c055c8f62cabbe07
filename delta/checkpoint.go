package delta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
)

// The checkpoint row: one nullable struct column per action type, as
// PROTOCOL.md §Checkpoint Schema lays out. Every leaf is optional (pointers)
// because Spark's checkpoint schema is all-nullable and a zero must stay
// distinguishable from null (a txn version 0 is not a missing version).
type cpRow struct {
	Txn                *cpTxn                `parquet:"txn,optional"`
	Add                *cpAdd                `parquet:"add,optional"`
	Remove             *cpRemove             `parquet:"remove,optional"`
	MetaData           *cpMetaData           `parquet:"metaData,optional"`
	Protocol           *cpProtocol           `parquet:"protocol,optional"`
	DomainMetadata     *cpDomainMetadata     `parquet:"domainMetadata,optional"`
	CheckpointMetadata *cpCheckpointMetadata `parquet:"checkpointMetadata,optional"`
	Sidecar            *cpSidecar            `parquet:"sidecar,optional"`
}

// cpRowV1 is the row of a V1-spec checkpoint, which must not have the
// V2-only columns (checkpointMetadata, sidecar).
type cpRowV1 struct {
	Txn            *cpTxn            `parquet:"txn,optional"`
	Add            *cpAdd            `parquet:"add,optional"`
	Remove         *cpRemove         `parquet:"remove,optional"`
	MetaData       *cpMetaData       `parquet:"metaData,optional"`
	Protocol       *cpProtocol       `parquet:"protocol,optional"`
	DomainMetadata *cpDomainMetadata `parquet:"domainMetadata,optional"`
}

type cpDV struct {
	StorageType    *string `parquet:"storageType,optional"`
	PathOrInlineDv *string `parquet:"pathOrInlineDv,optional"`
	Offset         *int32  `parquet:"offset,optional"`
	SizeInBytes    *int32  `parquet:"sizeInBytes,optional"`
	Cardinality    *int64  `parquet:"cardinality,optional"`
	MaxRowIndex    *int64  `parquet:"maxRowIndex,optional"`
}

type cpDomainMetadata struct {
	Domain        *string `parquet:"domain,optional"`
	Configuration *string `parquet:"configuration,optional"`
	Removed       *bool   `parquet:"removed,optional"`
}

type cpCheckpointMetadata struct {
	Version *int64             `parquet:"version,optional"`
	Tags    map[string]*string `parquet:"tags,optional"`
}

type cpSidecar struct {
	Path             *string            `parquet:"path,optional"`
	SizeInBytes      *int64             `parquet:"sizeInBytes,optional"`
	ModificationTime *int64             `parquet:"modificationTime,optional"`
	Tags             map[string]*string `parquet:"tags,optional"`
}

func toCPDV(d *DeletionVector) *cpDV {
	if d == nil {
		return nil
	}
	return &cpDV{StorageType: ptr(d.StorageType), PathOrInlineDv: ptr(d.PathOrInlineDv), Offset: d.Offset,
		SizeInBytes: ptr(d.SizeInBytes), Cardinality: ptr(d.Cardinality), MaxRowIndex: d.MaxRowIndex}
}

func fromCPDV(d *cpDV) *DeletionVector {
	if d == nil || d.StorageType == nil {
		return nil
	}
	return &DeletionVector{StorageType: *d.StorageType, PathOrInlineDv: deref(d.PathOrInlineDv), Offset: d.Offset,
		SizeInBytes: deref(d.SizeInBytes), Cardinality: deref(d.Cardinality), MaxRowIndex: d.MaxRowIndex}
}

func strMap(m map[string]*string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = deref(v)
	}
	return out
}

func ptrMap(m map[string]string) map[string]*string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]*string, len(m))
	for k, v := range m {
		out[k] = ptr(v)
	}
	return out
}

type cpTxn struct {
	AppID       *string `parquet:"appId,optional"`
	Version     *int64  `parquet:"version,optional"`
	LastUpdated *int64  `parquet:"lastUpdated,optional"`
}

type cpAdd struct {
	Path             *string            `parquet:"path,optional"`
	PartitionValues  map[string]*string `parquet:"partitionValues,optional"`
	Size             *int64             `parquet:"size,optional"`
	ModificationTime *int64             `parquet:"modificationTime,optional"`
	DataChange       *bool              `parquet:"dataChange,optional"`
	Stats            *string            `parquet:"stats,optional"`
	Tags             map[string]*string `parquet:"tags,optional"`
	DeletionVector   *cpDV              `parquet:"deletionVector,optional"`
	BaseRowID        *int64             `parquet:"baseRowId,optional"`
	// DefaultRowCommitVersion and ClusteringProvider: row tracking and
	// clustering.
	DefaultRowCommitVersion *int64  `parquet:"defaultRowCommitVersion,optional"`
	ClusteringProvider      *string `parquet:"clusteringProvider,optional"`
}

type cpRemove struct {
	Path                 *string            `parquet:"path,optional"`
	DeletionTimestamp    *int64             `parquet:"deletionTimestamp,optional"`
	DataChange           *bool              `parquet:"dataChange,optional"`
	ExtendedFileMetadata *bool              `parquet:"extendedFileMetadata,optional"`
	PartitionValues      map[string]*string `parquet:"partitionValues,optional"`
	Size                 *int64             `parquet:"size,optional"`
	Tags                 map[string]*string `parquet:"tags,optional"`
	DeletionVector       *cpDV              `parquet:"deletionVector,optional"`
	BaseRowID            *int64             `parquet:"baseRowId,optional"`
	// DefaultRowCommitVersion: row tracking.
	DefaultRowCommitVersion *int64 `parquet:"defaultRowCommitVersion,optional"`
}

type cpFormat struct {
	Provider *string           `parquet:"provider,optional"`
	Options  map[string]string `parquet:"options,optional"`
}

type cpMetaData struct {
	ID               *string           `parquet:"id,optional"`
	Name             *string           `parquet:"name,optional"`
	Description      *string           `parquet:"description,optional"`
	Format           *cpFormat         `parquet:"format,optional"`
	SchemaString     *string           `parquet:"schemaString,optional"`
	PartitionColumns []string          `parquet:"partitionColumns,optional,list"`
	Configuration    map[string]string `parquet:"configuration,optional"`
	CreatedTime      *int64            `parquet:"createdTime,optional"`
}

type cpProtocol struct {
	MinReaderVersion *int32   `parquet:"minReaderVersion,optional"`
	MinWriterVersion *int32   `parquet:"minWriterVersion,optional"`
	ReaderFeatures   []string `parquet:"readerFeatures,optional,list"`
	WriterFeatures   []string `parquet:"writerFeatures,optional,list"`
}

func ptr[T any](v T) *T { return &v }

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// checkpointRows returns the rows of a checkpoint of snap: protocol,
// metaData, txns, live adds and the tombstones younger than retention
// (relative to now). Rows are in a stable order so a checkpoint is
// reproducible.
func checkpointRows(snap *Snapshot, now time.Time, tombstoneRetention time.Duration) []cpRow {
	rows := make([]cpRow, 0, 2+len(snap.txns)+len(snap.files)+len(snap.tombstones))
	p := snap.protocol
	rows = append(rows, cpRow{Protocol: &cpProtocol{
		MinReaderVersion: ptr(int32(p.MinReaderVersion)),
		MinWriterVersion: ptr(int32(p.MinWriterVersion)),
		ReaderFeatures:   p.ReaderFeatures,
		WriterFeatures:   p.WriterFeatures,
	}})
	md := snap.metadata
	opts := md.Format.Options
	if opts == nil {
		opts = map[string]string{}
	}
	conf := md.Configuration
	if conf == nil {
		conf = map[string]string{}
	}
	pcols := md.PartitionColumns
	if pcols == nil {
		pcols = []string{}
	}
	rows = append(rows, cpRow{MetaData: &cpMetaData{
		ID:               ptr(md.ID),
		Name:             strOrNil(md.Name),
		Description:      strOrNil(md.Description),
		Format:           &cpFormat{Provider: ptr(md.Format.Provider), Options: opts},
		SchemaString:     ptr(md.SchemaString),
		PartitionColumns: pcols,
		Configuration:    conf,
		CreatedTime:      md.CreatedTime,
	}})
	// Txns older than delta.setTransactionRetentionDuration are expired:
	// left out, as Spark and delta-kernel leave them out (a txn with no
	// lastUpdated is kept). writeCheckpoint has checked the property.
	txnRetention, _ := durationProperty(conf, TxnRetentionProperty, 0)
	appIDs := make([]string, 0, len(snap.txns))
	for k, t := range snap.txns {
		if txnRetention > 0 && t.LastUpdated != nil && *t.LastUpdated < now.Add(-txnRetention).UnixMilli() {
			continue
		}
		appIDs = append(appIDs, k)
	}
	sort.Strings(appIDs)
	for _, k := range appIDs {
		t := snap.txns[k]
		rows = append(rows, cpRow{Txn: &cpTxn{AppID: ptr(t.AppID), Version: ptr(t.Version), LastUpdated: t.LastUpdated}})
	}
	for _, d := range snap.Domains() {
		rows = append(rows, cpRow{DomainMetadata: &cpDomainMetadata{Domain: ptr(d.Domain), Configuration: ptr(d.Configuration), Removed: ptr(false)}})
	}
	for _, f := range snap.Files() {
		pv := f.PartitionValues
		if pv == nil {
			pv = map[string]*string{}
		}
		var tags map[string]*string
		if len(f.Tags) > 0 {
			tags = make(map[string]*string, len(f.Tags))
			for k, v := range f.Tags {
				tags[k] = ptr(v)
			}
		}
		rows = append(rows, cpRow{Add: &cpAdd{
			Path:                    ptr(f.Path),
			PartitionValues:         pv,
			Size:                    ptr(f.Size),
			ModificationTime:        ptr(f.ModificationTime),
			DataChange:              ptr(f.DataChange),
			Stats:                   strOrNil(f.Stats),
			Tags:                    tags,
			DeletionVector:          toCPDV(f.DeletionVector),
			BaseRowID:               f.BaseRowID,
			DefaultRowCommitVersion: f.DefaultRowCommitVersion,
			ClusteringProvider:      f.ClusteringProvider,
		}})
	}
	cutoff := now.Add(-tombstoneRetention).UnixMilli()
	for _, r := range snap.Tombstones() {
		ts := int64(0)
		if r.DeletionTimestamp != nil {
			ts = *r.DeletionTimestamp
		}
		if ts <= cutoff {
			continue // expired: VACUUM may delete the file now
		}
		rows = append(rows, cpRow{Remove: &cpRemove{
			Path:                    ptr(r.Path),
			DeletionTimestamp:       ptr(ts),
			DataChange:              ptr(r.DataChange),
			ExtendedFileMetadata:    r.ExtendedFileMetadata,
			PartitionValues:         r.PartitionValues,
			Size:                    r.Size,
			Tags:                    ptrMap(r.Tags),
			DeletionVector:          toCPDV(r.DeletionVector),
			BaseRowID:               r.BaseRowID,
			DefaultRowCommitVersion: r.DefaultRowCommitVersion,
		}})
	}
	return rows
}

// encodeCheckpoint writes rows as a classic V1 checkpoint Parquet file.
func encodeCheckpoint(rows []cpRow) ([]byte, error) {
	v1 := make([]cpRowV1, len(rows))
	for i, r := range rows {
		v1[i] = cpRowV1{Txn: r.Txn, Add: r.Add, Remove: r.Remove, MetaData: r.MetaData, Protocol: r.Protocol, DomainMetadata: r.DomainMetadata}
	}
	return encodeParquetRows(v1)
}

// encodeParquetRows writes checkpoint rows of either spec.
func encodeParquetRows[T any](rows []T) ([]byte, error) {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[T](&buf,
		parquet.DataPageVersion(1),
		parquet.Compression(&parquet.Snappy),
		parquet.MaxRowsPerRowGroup(1<<20),
		parquet.CreatedBy("claimx-connect", "", ""),
	)
	if _, err := w.Write(rows); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// TxnRetentionProperty is the table property after which a txn (an
// application's last committed version) expires: a checkpoint leaves out
// txns last updated longer ago. Unset, txns never expire.
const TxnRetentionProperty = "delta.setTransactionRetentionDuration"

// writeCheckpoint writes the checkpoint of snap and then _last_checkpoint:
// a UUID-named V2-spec checkpoint (checkpointMetadata first, file actions
// inline, no sidecars) when the table's checkpoint policy is v2, otherwise
// a classic V1 checkpoint. A checkpoint file is only ever written whole
// (Put replaces atomically), so a crash leaves either no checkpoint or a
// complete one; the hint is written after it so it never points to a
// missing file.
func writeCheckpoint(ctx context.Context, store storage.Store, snap *Snapshot, now time.Time) error {
	retention, err := durationProperty(snap.metadata.Configuration, "delta.deletedFileRetentionDuration", 7*24*time.Hour)
	if err != nil {
		return fmt.Errorf("writing checkpoint %d: %w", snap.version, err)
	}
	if _, err := durationProperty(snap.metadata.Configuration, TxnRetentionProperty, 0); err != nil {
		return fmt.Errorf("writing checkpoint %d: %w", snap.version, err)
	}
	rows := checkpointRows(snap, now, retention)
	lc := LastCheckpoint{Version: snap.version, Size: int64(len(rows))}
	path := checkpointPath(snap.version)
	var data []byte
	if snap.FeatureEnabled(FeatureV2Checkpoint) {
		adds := int64(len(snap.files))
		meta := cpRow{CheckpointMetadata: &cpCheckpointMetadata{Version: ptr(snap.version), Tags: map[string]*string{}}}
		rows = append([]cpRow{meta}, rows...)
		data, err = encodeParquetRows(rows)
		name := fmt.Sprintf("%020d.checkpoint.%s.parquet", snap.version, uuid.NewString())
		path = "_delta_log/" + name
		lc.Size = int64(len(rows))
		lc.NumOfAddFiles = &adds
		lc.V2Checkpoint = &LastCheckpointV2{Path: name, SizeInBytes: int64(len(data)), ModificationTime: now.UnixMilli()}
	} else {
		data, err = encodeCheckpoint(rows)
	}
	if err != nil {
		return fmt.Errorf("encoding checkpoint %d: %w", snap.version, err)
	}
	if err := store.Put(ctx, path, data); err != nil {
		return fmt.Errorf("writing checkpoint %d: %w", snap.version, err)
	}
	lc.SizeInBytes = ptr(int64(len(data)))
	b, _ := json.Marshal(lc)
	if err := store.Put(ctx, lastCheckpointPath, b); err != nil {
		return fmt.Errorf("writing _last_checkpoint for version %d: %w", snap.version, err)
	}
	return nil
}

// readCheckpointFile returns the actions of one checkpoint file, JSON (a
// UUID-named V2 checkpoint) or Parquet.
func readCheckpointFile(ctx context.Context, store storage.Store, p string) ([]Action, error) {
	data, err := store.Get(ctx, p)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(p, ".json") {
		return ParseCommit(data)
	}
	return DecodeCheckpoint(data)
}

// sidecarStorePath resolves a sidecar action's path: a bare name (or
// relative path) lives in _delta_log/_sidecars; an absolute one must be
// under the table.
func sidecarStorePath(store storage.Store, p string) (string, error) {
	if strings.Contains(p, "://") || strings.HasPrefix(p, "/") || strings.HasPrefix(p, "file:") {
		return absoluteToStorePath(store.URI(), p)
	}
	if d, err := url.PathUnescape(p); err == nil {
		p = d
	}
	return sidecarDir + p, nil
}

// sidecarDir holds the sidecar files of V2 checkpoints.
const sidecarDir = "_delta_log/_sidecars/"

// readCheckpoint loads a snapshot from the checkpoint files of version v,
// following the sidecar actions of a V2-spec checkpoint.
func readCheckpoint(ctx context.Context, store storage.Store, v int64, paths []string) (*Snapshot, error) {
	snap := newEmptySnapshot()
	snap.version = v
	var sawProtocol, sawMeta bool
	var sidecars []Sidecar
	applyAll := func(p string, acts []Action) error {
		for i := range acts {
			a := acts[i]
			if a.Sidecar != nil {
				sidecars = append(sidecars, *a.Sidecar)
				continue
			}
			if err := snap.apply(v, []Action{a}); err != nil {
				return fmt.Errorf("reading checkpoint %d (%s): %w", v, p, err)
			}
			sawProtocol = sawProtocol || a.Protocol != nil
			sawMeta = sawMeta || a.MetaData != nil
		}
		return nil
	}
	for _, p := range paths {
		acts, err := readCheckpointFile(ctx, store, p)
		if err != nil {
			return nil, fmt.Errorf("reading checkpoint %d (%s): %w", v, p, err)
		}
		if err := applyAll(p, acts); err != nil {
			return nil, err
		}
	}
	for _, sc := range sidecars {
		p, err := sidecarStorePath(store, sc.Path)
		if err != nil {
			return nil, fmt.Errorf("reading checkpoint %d: sidecar: %w", v, err)
		}
		data, err := store.Get(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("reading checkpoint %d: sidecar %s: %w", v, p, err)
		}
		acts, err := DecodeCheckpoint(data)
		if err != nil {
			return nil, fmt.Errorf("reading checkpoint %d: sidecar %s: %w", v, p, err)
		}
		for _, a := range acts {
			if a.Add == nil && a.Remove == nil {
				return nil, fmt.Errorf("reading checkpoint %d: sidecar %s holds an action other than add or remove", v, p)
			}
		}
		if err := applyAll(p, acts); err != nil {
			return nil, err
		}
	}
	if !sawProtocol || !sawMeta {
		return nil, fmt.Errorf("reading checkpoint %d: it lacks the protocol or metaData action", v)
	}
	return snap, nil
}

// checkpointSidecars returns the store paths of the sidecars a checkpoint
// file references (none for a V1 checkpoint).
func checkpointSidecars(ctx context.Context, store storage.Store, p string) ([]string, error) {
	acts, err := readCheckpointFile(ctx, store, p)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range acts {
		if a.Sidecar != nil {
			sp, err := sidecarStorePath(store, a.Sidecar.Path)
			if err != nil {
				return nil, err
			}
			out = append(out, sp)
		}
	}
	return out, nil
}

// DecodeCheckpoint parses one checkpoint Parquet file into actions, one per
// non-null action column of each row. Columns this engine does not use
// (stats_parsed, partitionValues_parsed, deletionVector, sidecar …) are
// ignored.
func DecodeCheckpoint(data []byte) (acts []Action, err error) {
	// A damaged file must be an error the caller can fall back from (an
	// older checkpoint, or the JSON commits), never a crash of the writer.
	defer func() {
		if r := recover(); r != nil {
			acts, err = nil, fmt.Errorf("decoding checkpoint parquet: %v", r)
		}
	}()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("opening checkpoint parquet: %w", err)
	}
	r := parquet.NewGenericReader[cpRow](f)
	defer r.Close()
	var out []Action
	buf := make([]cpRow, 256)
	for {
		n, err := r.Read(buf)
		for i := 0; i < n; i++ {
			a, err := buf[i].action()
			if err != nil {
				return nil, err
			}
			if a != nil {
				out = append(out, *a)
			}
			buf[i] = cpRow{}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading checkpoint rows: %w", err)
		}
		if n == 0 {
			break
		}
	}
	return out, nil
}

func deref[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}

// action converts a checkpoint row to an action; nil for a row that holds
// none of the action types this engine reads.
func (r *cpRow) action() (*Action, error) {
	switch {
	case r.Add != nil && r.Add.Path != nil:
		a := r.Add
		add := &AddFile{
			Path:                    *a.Path,
			PartitionValues:         a.PartitionValues,
			Size:                    deref(a.Size),
			ModificationTime:        deref(a.ModificationTime),
			DataChange:              deref(a.DataChange),
			Stats:                   deref(a.Stats),
			DeletionVector:          fromCPDV(a.DeletionVector),
			BaseRowID:               a.BaseRowID,
			DefaultRowCommitVersion: a.DefaultRowCommitVersion,
			ClusteringProvider:      a.ClusteringProvider,
		}
		if add.PartitionValues == nil {
			add.PartitionValues = map[string]*string{}
		}
		if len(a.Tags) > 0 {
			add.Tags = map[string]string{}
			for k, v := range a.Tags {
				add.Tags[k] = deref(v)
			}
		}
		if add.Size < 0 {
			return nil, fmt.Errorf("checkpoint add %q has negative size", add.Path)
		}
		return &Action{Add: add}, nil
	case r.Remove != nil && r.Remove.Path != nil:
		x := r.Remove
		return &Action{Remove: &RemoveFile{
			Path:                    *x.Path,
			DeletionTimestamp:       x.DeletionTimestamp,
			DataChange:              deref(x.DataChange),
			ExtendedFileMetadata:    x.ExtendedFileMetadata,
			PartitionValues:         x.PartitionValues,
			Size:                    x.Size,
			Tags:                    strMap(x.Tags),
			DeletionVector:          fromCPDV(x.DeletionVector),
			BaseRowID:               x.BaseRowID,
			DefaultRowCommitVersion: x.DefaultRowCommitVersion,
		}}, nil
	case r.DomainMetadata != nil && r.DomainMetadata.Domain != nil:
		d := r.DomainMetadata
		return &Action{DomainMetadata: &DomainMetadata{Domain: *d.Domain, Configuration: deref(d.Configuration), Removed: deref(d.Removed)}}, nil
	case r.CheckpointMetadata != nil && r.CheckpointMetadata.Version != nil:
		return &Action{CheckpointMetadata: &CheckpointMetadata{Version: *r.CheckpointMetadata.Version, Tags: strMap(r.CheckpointMetadata.Tags)}}, nil
	case r.Sidecar != nil && r.Sidecar.Path != nil:
		x := r.Sidecar
		return &Action{Sidecar: &Sidecar{Path: *x.Path, SizeInBytes: deref(x.SizeInBytes), ModificationTime: deref(x.ModificationTime), Tags: strMap(x.Tags)}}, nil
	case r.Txn != nil && r.Txn.AppID != nil:
		return &Action{Txn: &Txn{AppID: *r.Txn.AppID, Version: deref(r.Txn.Version), LastUpdated: r.Txn.LastUpdated}}, nil
	case r.MetaData != nil && r.MetaData.ID != nil:
		m := r.MetaData
		if m.SchemaString == nil {
			return nil, errors.New("checkpoint metaData has no schemaString")
		}
		md := &Metadata{
			ID:               *m.ID,
			Name:             deref(m.Name),
			Description:      deref(m.Description),
			SchemaString:     *m.SchemaString,
			PartitionColumns: m.PartitionColumns,
			Configuration:    m.Configuration,
			CreatedTime:      m.CreatedTime,
		}
		if m.Format != nil {
			md.Format = Format{Provider: deref(m.Format.Provider), Options: m.Format.Options}
		}
		if md.Format.Options == nil {
			md.Format.Options = map[string]string{}
		}
		if md.Configuration == nil {
			md.Configuration = map[string]string{}
		}
		if md.PartitionColumns == nil {
			md.PartitionColumns = []string{}
		}
		return &Action{MetaData: md}, nil
	case r.Protocol != nil && r.Protocol.MinReaderVersion != nil:
		p := r.Protocol
		return &Action{Protocol: &Protocol{
			MinReaderVersion: int(*p.MinReaderVersion),
			MinWriterVersion: int(deref(p.MinWriterVersion)),
			ReaderFeatures:   p.ReaderFeatures,
			WriterFeatures:   p.WriterFeatures,
		}}, nil
	}
	return nil, nil
}
