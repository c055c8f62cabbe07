package delta

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Protocol is the protocol action: the reader and writer versions (and, for
// reader 3 / writer 7, the table features) a client needs.
type Protocol struct {
	MinReaderVersion int      `json:"minReaderVersion"`
	MinWriterVersion int      `json:"minWriterVersion"`
	ReaderFeatures   []string `json:"readerFeatures,omitempty"`
	WriterFeatures   []string `json:"writerFeatures,omitempty"`
}

// Format is metaData.format.
type Format struct {
	Provider string            `json:"provider"`
	Options  map[string]string `json:"options"`
}

// Metadata is the metaData action.
type Metadata struct {
	ID               string            `json:"id"`
	Name             string            `json:"name,omitempty"`
	Description      string            `json:"description,omitempty"`
	Format           Format            `json:"format"`
	SchemaString     string            `json:"schemaString"`
	PartitionColumns []string          `json:"partitionColumns"`
	Configuration    map[string]string `json:"configuration"`
	CreatedTime      *int64            `json:"createdTime,omitempty"`
}

// AddFile is the add action: a data file that is part of the table.
type AddFile struct {
	// Path is relative to the table root and URI-encoded, as in the log.
	Path             string             `json:"path"`
	PartitionValues  map[string]*string `json:"partitionValues"`
	Size             int64              `json:"size"`
	ModificationTime int64              `json:"modificationTime"`
	DataChange       bool               `json:"dataChange"`
	Stats            string             `json:"stats,omitempty"`
	Tags             map[string]string  `json:"tags,omitempty"`
	// DeletionVector marks rows of the file as deleted (nil: none). Appends
	// never write one; readers must drop the rows it names.
	DeletionVector *DeletionVector `json:"deletionVector,omitempty"`
	// BaseRowID is the row id of the file's first row (row tracking).
	BaseRowID *int64 `json:"baseRowId,omitempty"`
	// DefaultRowCommitVersion is the version that added the file's rows
	// (row tracking).
	DefaultRowCommitVersion *int64 `json:"defaultRowCommitVersion,omitempty"`
	// ClusteringProvider names the clustering of the file (clustering).
	ClusteringProvider *string `json:"clusteringProvider,omitempty"`
}

// RemoveFile is the remove action: a logical delete of a data file, kept as
// a tombstone until the retention expires so VACUUM does not delete a file a
// reader of an older version still needs.
type RemoveFile struct {
	Path                 string             `json:"path"`
	DeletionTimestamp    *int64             `json:"deletionTimestamp,omitempty"`
	DataChange           bool               `json:"dataChange"`
	ExtendedFileMetadata *bool              `json:"extendedFileMetadata,omitempty"`
	PartitionValues      map[string]*string `json:"partitionValues,omitempty"`
	Size                 *int64             `json:"size,omitempty"`
	Stats                string             `json:"stats,omitempty"`
	Tags                 map[string]string  `json:"tags,omitempty"`
	// DeletionVector is the DV of the logical file removed: a remove names
	// (path, DV), not just the path.
	DeletionVector          *DeletionVector `json:"deletionVector,omitempty"`
	BaseRowID               *int64          `json:"baseRowId,omitempty"`
	DefaultRowCommitVersion *int64          `json:"defaultRowCommitVersion,omitempty"`
}

// DomainMetadata is the domainMetadata action: the configuration of a named
// metadata domain (delta.* domains belong to table features).
type DomainMetadata struct {
	Domain        string `json:"domain"`
	Configuration string `json:"configuration"`
	Removed       bool   `json:"removed"`
}

// CheckpointMetadata is the checkpointMetadata action of a V2-spec
// checkpoint.
type CheckpointMetadata struct {
	Version int64             `json:"version"`
	Tags    map[string]string `json:"tags,omitempty"`
}

// Sidecar is the sidecar action of a V2-spec checkpoint: a Parquet file in
// _delta_log/_sidecars holding some of its add and remove actions.
type Sidecar struct {
	Path             string            `json:"path"`
	SizeInBytes      int64             `json:"sizeInBytes"`
	ModificationTime int64             `json:"modificationTime"`
	Tags             map[string]string `json:"tags,omitempty"`
}

// Txn is the txn action: the last version an application committed, used
// for idempotent (exactly-once) writes.
type Txn struct {
	AppID       string `json:"appId"`
	Version     int64  `json:"version"`
	LastUpdated *int64 `json:"lastUpdated,omitempty"`
}

// Action is one line of a commit file (or a V2 checkpoint). Exactly one
// field is set. The name of an action this engine does not interpret (cdc)
// is kept in Other.
type Action struct {
	Protocol           *Protocol           `json:"protocol,omitempty"`
	MetaData           *Metadata           `json:"metaData,omitempty"`
	Add                *AddFile            `json:"add,omitempty"`
	Remove             *RemoveFile         `json:"remove,omitempty"`
	Txn                *Txn                `json:"txn,omitempty"`
	CommitInfo         map[string]any      `json:"commitInfo,omitempty"`
	DomainMetadata     *DomainMetadata     `json:"domainMetadata,omitempty"`
	CheckpointMetadata *CheckpointMetadata `json:"checkpointMetadata,omitempty"`
	Sidecar            *Sidecar            `json:"sidecar,omitempty"`
	// Other holds the name of an action this engine does not interpret.
	Other string `json:"-"`
}

// MarshalJSON encodes the one action that is set as {"<name>": {...}}. It
// keys on which field is non-nil rather than on emptiness, so an empty
// commitInfo survives a round trip.
func (a Action) MarshalJSON() ([]byte, error) {
	var name string
	var v any
	switch {
	case a.Protocol != nil:
		name, v = "protocol", a.Protocol
	case a.MetaData != nil:
		name, v = "metaData", a.MetaData
	case a.Add != nil:
		name, v = "add", a.Add
	case a.Remove != nil:
		name, v = "remove", a.Remove
	case a.Txn != nil:
		name, v = "txn", a.Txn
	case a.CommitInfo != nil:
		name, v = "commitInfo", a.CommitInfo
	case a.DomainMetadata != nil:
		name, v = "domainMetadata", a.DomainMetadata
	case a.CheckpointMetadata != nil:
		name, v = "checkpointMetadata", a.CheckpointMetadata
	case a.Sidecar != nil:
		name, v = "sidecar", a.Sidecar
	default:
		return nil, fmt.Errorf("encoding an action with no known action set (other: %q)", a.Other)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	out := make([]byte, 0, buf.Len()+len(name)+8)
	out = append(out, '{', '"')
	out = append(out, name...)
	out = append(out, '"', ':')
	out = append(out, bytes.TrimRight(buf.Bytes(), "\n")...)
	return append(out, '}'), nil
}

var knownActions = map[string]bool{
	"protocol": true, "metaData": true, "add": true, "remove": true, "txn": true, "commitInfo": true,
	"domainMetadata": true, "checkpointMetadata": true, "sidecar": true,
}

// ParseCommit parses a commit file (newline-delimited JSON, one action a
// line). Blank lines are skipped; an unknown action name is kept in
// Action.Other.
func ParseCommit(data []byte) ([]Action, error) {
	var out []Action
	sc := bufio.NewScanner(bytes.NewReader(data))
	// Commit lines carry stats and schemas; allow long lines.
	sc.Buffer(make([]byte, 0, 64*1024), 256*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(raw) != 1 {
			return nil, fmt.Errorf("line %d: an action line must hold exactly one action, found %d keys", line, len(raw))
		}
		var a Action
		for k, v := range raw {
			if k == "" {
				return nil, fmt.Errorf("line %d: empty action name", line)
			}
			if !knownActions[k] {
				a.Other = k
				break
			}
			if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
				return nil, fmt.Errorf("line %d: action %q is null", line, k)
			}
			if err := json.Unmarshal(b, &a); err != nil {
				return nil, fmt.Errorf("line %d: action %q: %w", line, k, err)
			}
		}
		if err := a.validate(); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, a)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading line %d: %w", line+1, err)
	}
	return out, nil
}

func (a *Action) validate() error {
	switch {
	case a.Add != nil:
		if a.Add.Path == "" {
			return fmt.Errorf("add action without a path")
		}
		if a.Add.Size < 0 {
			return fmt.Errorf("add %q has negative size %d", a.Add.Path, a.Add.Size)
		}
	case a.Remove != nil:
		if a.Remove.Path == "" {
			return fmt.Errorf("remove action without a path")
		}
	case a.Txn != nil:
		if a.Txn.AppID == "" {
			return fmt.Errorf("txn action without an appId")
		}
	case a.MetaData != nil:
		if a.MetaData.SchemaString == "" {
			return fmt.Errorf("metaData action without a schemaString")
		}
	case a.DomainMetadata != nil:
		if a.DomainMetadata.Domain == "" {
			return fmt.Errorf("domainMetadata action without a domain")
		}
	case a.Sidecar != nil:
		if a.Sidecar.Path == "" {
			return fmt.Errorf("sidecar action without a path")
		}
	}
	for _, dv := range []*DeletionVector{addDV(a), removeDV(a)} {
		if dv != nil {
			switch dv.StorageType {
			case "u", "i", "p":
			default:
				return fmt.Errorf("deletion vector with unknown storage type %q", dv.StorageType)
			}
		}
	}
	return nil
}

func addDV(a *Action) *DeletionVector {
	if a.Add != nil {
		return a.Add.DeletionVector
	}
	return nil
}

func removeDV(a *Action) *DeletionVector {
	if a.Remove != nil {
		return a.Remove.DeletionVector
	}
	return nil
}

// EncodeCommit returns the commit file for actions: one JSON object a line.
func EncodeCommit(actions []Action) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Paths and stats hold '<', '>' and '&' rarely, but escaping them as
	// \u003c is legal JSON all readers accept; keep Spark's plain style.
	enc.SetEscapeHTML(false)
	for i := range actions {
		if err := enc.Encode(&actions[i]); err != nil {
			return nil, fmt.Errorf("encoding action %d: %w", i, err)
		}
	}
	return buf.Bytes(), nil
}

// commitPath returns the log path of version v.
func commitPath(v int64) string { return fmt.Sprintf("_delta_log/%020d.json", v) }

// checkpointPath returns the classic single-file checkpoint path of v.
func checkpointPath(v int64) string { return fmt.Sprintf("_delta_log/%020d.checkpoint.parquet", v) }

const lastCheckpointPath = "_delta_log/_last_checkpoint"

// LastCheckpoint is the content of _delta_log/_last_checkpoint.
type LastCheckpoint struct {
	Version       int64  `json:"version"`
	Size          int64  `json:"size"`
	Parts         *int64 `json:"parts,omitempty"`
	SizeInBytes   *int64 `json:"sizeInBytes,omitempty"`
	NumOfAddFiles *int64 `json:"numOfAddFiles,omitempty"`
	// V2Checkpoint names the UUID-named V2 checkpoint of Version.
	V2Checkpoint *LastCheckpointV2 `json:"v2Checkpoint,omitempty"`
}

// LastCheckpointV2 is _last_checkpoint's v2Checkpoint: the checkpoint file
// (its name in _delta_log) and, optionally, its non-file actions and
// sidecars.
type LastCheckpointV2 struct {
	Path             string    `json:"path"`
	SizeInBytes      int64     `json:"sizeInBytes"`
	ModificationTime int64     `json:"modificationTime"`
	NonFileActions   []Action  `json:"nonFileActions,omitempty"`
	SidecarFiles     []Sidecar `json:"sidecarFiles,omitempty"`
}

// ParseLastCheckpoint parses _last_checkpoint.
func ParseLastCheckpoint(data []byte) (LastCheckpoint, error) {
	var lc LastCheckpoint
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&lc); err != nil {
		return LastCheckpoint{}, fmt.Errorf("parsing _last_checkpoint: %w", err)
	}
	if lc.Version < 0 {
		return LastCheckpoint{}, fmt.Errorf("parsing _last_checkpoint: negative version %d", lc.Version)
	}
	if lc.Parts != nil && (*lc.Parts < 1 || *lc.Parts > 1<<20) {
		return LastCheckpoint{}, fmt.Errorf("parsing _last_checkpoint: invalid parts %d", *lc.Parts)
	}
	return lc, nil
}

// logFile is a parsed _delta_log file name.
type logFile struct {
	path    string
	version int64
	kind    logFileKind
	part    int // 1-based, multi-part checkpoints only
	parts   int // multi-part checkpoints only
}

type logFileKind int

const (
	logCommit logFileKind = iota + 1
	logCheckpoint
	logCheckpointPart
	logCheckpointV2 // <v>.checkpoint.<uuid>.json|parquet
	logOther
)

// isUUIDCheckpoint matches the tail ".checkpoint.<uuid>.json|parquet".
func isUUIDCheckpoint(rest string) bool {
	mid, ok := strings.CutPrefix(rest, ".checkpoint.")
	if !ok {
		return false
	}
	if m, ok := strings.CutSuffix(mid, ".json"); ok {
		mid = m
	} else if m, ok := strings.CutSuffix(mid, ".parquet"); ok {
		mid = m
	} else {
		return false
	}
	_, err := uuid.Parse(mid)
	return err == nil && len(mid) == 36
}

// parseLogName classifies a path under _delta_log/.
func parseLogName(p string) logFile {
	name := strings.TrimPrefix(p, "_delta_log/")
	lf := logFile{path: p, kind: logOther}
	if strings.Contains(name, "/") || len(name) < 20 {
		return lf
	}
	var v int64
	for i := 0; i < 20; i++ {
		c := name[i]
		if c < '0' || c > '9' {
			return lf
		}
		v = v*10 + int64(c-'0')
	}
	rest := name[20:]
	lf.version = v
	switch {
	case rest == ".json":
		lf.kind = logCommit
	case rest == ".checkpoint.parquet":
		lf.kind = logCheckpoint
	case isUUIDCheckpoint(rest):
		lf.kind = logCheckpointV2
	case strings.HasPrefix(rest, ".checkpoint.") && strings.HasSuffix(rest, ".parquet"):
		// <v>.checkpoint.<part:10>.<parts:10>.parquet
		mid := strings.TrimSuffix(strings.TrimPrefix(rest, ".checkpoint."), ".parquet")
		var a, b int
		if n, err := fmt.Sscanf(mid, "%010d.%010d", &a, &b); err == nil && n == 2 && a >= 1 && a <= b && len(mid) == 21 {
			lf.kind, lf.part, lf.parts = logCheckpointPart, a, b
		}
	}
	return lf
}

// removeOf is the remove action of a live file: the logical file (path and
// deletion vector) with the extended metadata and the row tracking fields
// of its add, so readers and later conflict checks see what was removed.
func removeOf(f AddFile, now time.Time, dataChange bool) *RemoveFile {
	return &RemoveFile{
		Path:                    f.Path,
		DeletionTimestamp:       ptr(now.UnixMilli()),
		DataChange:              dataChange,
		ExtendedFileMetadata:    ptr(true),
		PartitionValues:         f.PartitionValues,
		Size:                    ptr(f.Size),
		Stats:                   f.Stats,
		Tags:                    f.Tags,
		DeletionVector:          f.DeletionVector,
		BaseRowID:               f.BaseRowID,
		DefaultRowCommitVersion: f.DefaultRowCommitVersion,
	}
}
