package delta

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Table feature names (PROTOCOL.md, "Valid Feature Names in Table
// Features") this engine refers to.
const (
	FeatureAppendOnly          = "appendOnly"
	FeatureInvariants          = "invariants"
	FeatureCheckConstraints    = "checkConstraints"
	FeatureChangeDataFeed      = "changeDataFeed"
	FeatureGeneratedColumns    = "generatedColumns"
	FeatureIdentityColumns     = "identityColumns"
	FeatureColumnMapping       = "columnMapping"
	FeatureDeletionVectors     = "deletionVectors"
	FeatureTimestampNtz        = "timestampNtz"
	FeatureV2Checkpoint        = "v2Checkpoint"
	FeatureDomainMetadata      = "domainMetadata"
	FeatureClustering          = "clustering"
	FeatureRowTracking         = "rowTracking"
	FeatureInCommitTimestamp   = "inCommitTimestamp"
	FeatureVacuumProtocolCheck = "vacuumProtocolCheck"
	FeatureTypeWidening        = "typeWidening"
	FeatureVariantType         = "variantType"
)

// supportedReaderFeatures are the reader features whose data this engine
// reads correctly (DVs are applied; the others are handled by the schema and
// data readers or impose nothing on reads of data files).
var supportedReaderFeatures = map[string]bool{
	FeatureDeletionVectors:     true,
	FeatureColumnMapping:       true,
	FeatureTimestampNtz:        true,
	FeatureV2Checkpoint:        true,
	FeatureTypeWidening:        true,
	"typeWidening-preview":     true,
	FeatureVariantType:         true,
	"variantType-preview":      true,
	FeatureVacuumProtocolCheck: true,
}

// supportedWriterFeatures are the writer features whose writer requirements
// this engine meets for the operations it performs (append, compaction,
// checkpoints, vacuum, log cleanup).
var supportedWriterFeatures = map[string]bool{
	FeatureAppendOnly:          true,
	FeatureInvariants:          true,
	FeatureCheckConstraints:    true,
	FeatureChangeDataFeed:      true,
	FeatureGeneratedColumns:    true,
	FeatureIdentityColumns:     true,
	FeatureColumnMapping:       true,
	FeatureDeletionVectors:     true,
	FeatureTimestampNtz:        true,
	FeatureV2Checkpoint:        true,
	FeatureDomainMetadata:      true,
	FeatureClustering:          true,
	FeatureRowTracking:         true,
	FeatureInCommitTimestamp:   true,
	FeatureVacuumProtocolCheck: true,
	FeatureTypeWidening:        true,
	"typeWidening-preview":     true,
	FeatureVariantType:         true,
	"variantType-preview":      true,
}

// legacyWriterFeatures are the features implied by a legacy (pre-7) writer
// version: version n implies those of every version up to n.
var legacyWriterFeatures = [][]string{
	2: {FeatureAppendOnly, FeatureInvariants},
	3: {FeatureCheckConstraints},
	4: {FeatureChangeDataFeed, FeatureGeneratedColumns},
	5: {FeatureColumnMapping},
	6: {FeatureIdentityColumns},
}

// Supports reports whether the protocol supports a table feature: listed in
// readerFeatures or writerFeatures (reader 3 / writer 7), or implied by a
// legacy version (writer 2..6, reader 2 = column mapping). Supported does
// not mean enabled: most features are also switched on by a table property
// (see Snapshot.FeatureEnabled).
func (p Protocol) Supports(feature string) bool {
	if slices.Contains(p.WriterFeatures, feature) || slices.Contains(p.ReaderFeatures, feature) {
		return true
	}
	if p.MinReaderVersion == 2 && feature == FeatureColumnMapping {
		return true
	}
	if p.MinWriterVersion >= 7 {
		return false
	}
	for v := 2; v <= p.MinWriterVersion && v < len(legacyWriterFeatures); v++ {
		if slices.Contains(legacyWriterFeatures[v], feature) {
			return true
		}
	}
	return false
}

// Features returns every feature the protocol supports, explicit or implied
// by legacy versions, sorted.
func (p Protocol) Features() []string {
	set := map[string]bool{}
	for _, f := range p.ReaderFeatures {
		set[f] = true
	}
	for _, f := range p.WriterFeatures {
		set[f] = true
	}
	if p.MinReaderVersion == 2 {
		set[FeatureColumnMapping] = true
	}
	if p.MinWriterVersion < 7 {
		for v := 2; v <= p.MinWriterVersion && v < len(legacyWriterFeatures); v++ {
			for _, f := range legacyWriterFeatures[v] {
				set[f] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for f := range set {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// CheckSupported returns an error wrapping ErrUnsupportedFeature, naming
// every offending feature, when the protocol needs something this engine
// does not implement.
func (p Protocol) CheckSupported() error {
	if p.MinReaderVersion > 3 {
		return fmt.Errorf("protocol minReaderVersion %d: %w", p.MinReaderVersion, ErrUnsupportedFeature)
	}
	if p.MinWriterVersion > 7 {
		return fmt.Errorf("protocol minWriterVersion %d: %w", p.MinWriterVersion, ErrUnsupportedFeature)
	}
	var bad []string
	if p.MinReaderVersion == 3 {
		for _, f := range p.ReaderFeatures {
			if !supportedReaderFeatures[f] {
				bad = append(bad, "reader feature "+f)
			}
		}
	}
	if p.MinWriterVersion == 7 {
		for _, f := range p.WriterFeatures {
			if !supportedWriterFeatures[f] {
				bad = append(bad, "writer feature "+f)
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: %w", strings.Join(bad, ", "), ErrUnsupportedFeature)
	}
	return nil
}

// propertyTrue reads a boolean table property the way Spark does
// (case-insensitive "true").
func propertyTrue(conf map[string]string, key string) bool {
	return strings.EqualFold(strings.TrimSpace(conf[key]), "true")
}

// FeatureEnabled reports whether a feature is both supported by the protocol
// and switched on: deletionVectors by delta.enableDeletionVectors,
// rowTracking by delta.enableRowTracking, inCommitTimestamp by
// delta.enableInCommitTimestamps, v2Checkpoint by delta.checkpointPolicy=v2,
// changeDataFeed by delta.enableChangeDataFeed, appendOnly by
// delta.appendOnly. Any other feature is enabled when supported.
func (s *Snapshot) FeatureEnabled(feature string) bool {
	if !s.protocol.Supports(feature) {
		return false
	}
	conf := s.metadata.Configuration
	switch feature {
	case FeatureDeletionVectors:
		return propertyTrue(conf, "delta.enableDeletionVectors")
	case FeatureRowTracking:
		return propertyTrue(conf, "delta.enableRowTracking")
	case FeatureInCommitTimestamp:
		return propertyTrue(conf, "delta.enableInCommitTimestamps")
	case FeatureV2Checkpoint:
		return strings.EqualFold(strings.TrimSpace(conf["delta.checkpointPolicy"]), "v2")
	case FeatureChangeDataFeed:
		return propertyTrue(conf, "delta.enableChangeDataFeed")
	case FeatureAppendOnly:
		return propertyTrue(conf, "delta.appendOnly")
	}
	return true
}

// rowTrackingAssigns reports whether writers must assign row ids and commit
// versions: row tracking supported and not suspended.
func (s *Snapshot) rowTrackingAssigns() bool {
	return s.protocol.Supports(FeatureRowTracking) && !propertyTrue(s.metadata.Configuration, "delta.rowTrackingSuspended")
}

// inCommitTimestamps reports whether commits must carry inCommitTimestamp.
func (s *Snapshot) inCommitTimestamps() bool {
	return s.FeatureEnabled(FeatureInCommitTimestamp)
}

// checkWritable refuses a table whose protocol needs a feature this writer
// does not implement. Metadata and schema are accepted as they are: every
// property and column annotation of a supported feature is honoured by the
// engine (or, for constraints, generated and identity columns, by the
// helpers that implement them).
func checkWritable(p Protocol, _ Metadata, _ *Schema) error {
	return p.CheckSupported()
}
