package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"
)

// Flags of `errors replay`.
const (
	replayFlagTopic       = "topic"
	replayFlagStage       = "stage"
	replayFlagReason      = "reason"
	replayFlagReasonRegex = "reason-regex"
	replayFlagSince       = "since"
	replayFlagUntil       = "until"
	replayFlagKey         = "key"
	replayFlagToTopic     = "to-topic"
	replayFlagDryRun      = "dry-run"
	replayFlagJSON        = "json"
	replayFlagTimeout     = "timeout"

	envErrorsTopic = "ITEL_ERRORS_TOPIC"
)

// Fields of an error record, as pipelines/resources/errors.yaml writes them.
const (
	erOriginalMessage   = "original_message"
	erOriginalText      = "original_text"
	erOriginalBase64    = "original_base64"
	erError             = "error"
	erStage             = "stage"
	erFailedAt          = "failed_at"
	erSource            = "source"
	erOriginalTruncated = "original_truncated"
	erOriginalSize      = "original_size_bytes"

	erSourceTopic     = "topic"
	erSourcePartition = "partition"
	erSourceOffset    = "offset"
	erSourceKey       = "key"
	erSourceHeaders   = "headers"
)

// Why a selected record is not replayed, or not byte for byte. They name no
// record so that they group; the summary lists the first records of each.
const (
	skipNotJSON       = "not a JSON object"
	skipNoSourceTopic = "no source.topic"
	skipBadBase64     = "original_base64 is not valid base64"
	skipTruncatedGone = "original truncated and its source record is gone"
	skipNoOriginal    = "no original_message and its source record is gone"

	inexactNoPosition = "no source.partition/offset to fetch the source record"
	inexactGone       = "source record gone"
	inexactDiffers    = "the record at the source offset is not the original (topic recreated?)"
)

const (
	replayTopReasons     = 20 // error reasons listed in the summary
	replayRecordsListed  = 5  // records named per skip or inexact reason
	replayFailuresListed = 10 // failed records named in the exit message
	replayFetchMaxWait   = 500 * time.Millisecond
)

// ErrorsCommand is `claimx-connect errors replay`.
func ErrorsCommand() *cli.Command {
	return &cli.Command{
		Name:  "errors",
		Usage: "Work with the errors topic",
		Subcommands: []*cli.Command{{
			Name:  "replay",
			Usage: "Republish the originals of selected error records to the topics they came from",
			Description: `Reads the errors topic from its start to its end offsets at the moment it
starts (partitions read directly: no consumer group, no committed offset
changes) and republishes each selected record's original message, key and
headers to the topic and partition it came from (or --to-topic, where the key
decides the partition).

The bytes are exact when the error record has original_text or
original_base64; otherwise (older or truncated records) the source record is
fetched from source.topic/partition/offset while the broker still has it;
otherwise original_message is republished (a string as is, JSON compact) and
counted as inexact. A truncated original whose source is gone is skipped.

Replaying twice is safe: the pipelines de-duplicate by event_id. A replayed
record that fails again adds a new error record; select by --since to leave it
out of the next replay. Publishing is idempotent and waits for every
acknowledgement; any failure exits non-zero naming the error record.`,
			Flags: append(kafkaFlags(),
				&cli.StringFlag{Name: replayFlagTopic, Value: devErrorsTopic, EnvVars: []string{envErrorsTopic}, Usage: "the errors topic"},
				&cli.StringSliceFlag{Name: replayFlagStage, Usage: "only these stages: trigger, parse, validate, lookup, delta (repeatable or comma-separated)"},
				&cli.StringFlag{Name: replayFlagReason, Usage: "only records whose error contains this text"},
				&cli.StringFlag{Name: replayFlagReasonRegex, Usage: "only records whose error matches this Go regular expression"},
				&cli.StringFlag{Name: replayFlagSince, Usage: "only records failed at or after this RFC 3339 time (failed_at, else the record timestamp)"},
				&cli.StringFlag{Name: replayFlagUntil, Usage: "only records failed before this RFC 3339 time"},
				&cli.StringFlag{Name: replayFlagKey, Usage: "only records whose source key is this"},
				&cli.StringFlag{Name: replayFlagToTopic, Usage: "publish to this topic instead of each record's source topic"},
				&cli.BoolFlag{Name: replayFlagDryRun, Usage: "print what would be replayed and publish nothing"},
				&cli.BoolFlag{Name: replayFlagJSON, Usage: "print the summary as JSON"},
				&cli.DurationFlag{Name: replayFlagTimeout, Value: 5 * time.Minute, Usage: "give up after this long"},
			),
			Action: runErrorsReplay,
		}},
	}
}

func runErrorsReplay(c *cli.Context) error {
	args, err := interspersedArgs(c)
	if err != nil {
		return err
	}
	if len(args) != 0 {
		return cli.Exit(fmt.Sprintf("errors replay takes no arguments, got %q", args), 2)
	}
	f, err := replayFilterFromFlags(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	topic, toTopic := c.String(replayFlagTopic), c.String(replayFlagToTopic)
	if topic == "" {
		topic = devErrorsTopic // an empty ITEL_ERRORS_TOPIC means the default, as in the pipelines
	}

	ctx, cancel := context.WithTimeout(c.Context, c.Duration(replayFlagTimeout))
	defer cancel()
	cl, err := connectKafka(ctx, c)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	// 1. Read the errors topic up to its end offsets now, keeping the selected records.
	var selected []*errorRecord
	read, err := readErrorsTopic(ctx, cl, adm, topic, func(r *kgo.Record) {
		if er := parseErrorRecord(r); f.match(er) {
			selected = append(selected, er)
		}
	})
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	sort.Slice(selected, func(i, j int) bool { return selected[i].pos.less(selected[j].pos) })

	// 2. Decide what to publish; fetch source records where the error record lacks the exact bytes.
	items, err := resolveReplay(ctx, cl, adm, selected, toTopic)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	s := summarizeReplay(topic, read, items)
	s.DryRun = c.Bool(replayFlagDryRun)
	if s.MissingDestinations, err = missingTopics(ctx, adm, s.ByDestination); err != nil {
		return cli.Exit(err.Error(), 1)
	}

	// 3. Publish, unless this is a dry run or a destination is missing.
	var failures []string
	if !s.DryRun && len(s.MissingDestinations) == 0 {
		if s.Replayed, failures, err = publishReplay(ctx, cl, items); err != nil {
			return cli.Exit(err.Error(), 1)
		}
		s.Failed = len(failures)
	}
	if err := s.print(c.App.Writer, c.Bool(replayFlagJSON)); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	switch {
	case s.DryRun:
		return nil
	case len(s.MissingDestinations) > 0:
		return cli.Exit(fmt.Sprintf("errors replay: destination topic(s) %s do not exist; nothing was published", strings.Join(s.MissingDestinations, ", ")), 1)
	case len(failures) > 0:
		listed := failures
		if len(listed) > replayFailuresListed {
			listed = append(slices.Clone(listed[:replayFailuresListed]), fmt.Sprintf("and %d more", len(failures)-replayFailuresListed))
		}
		return cli.Exit(fmt.Sprintf("errors replay: %d of %d records were not published: %s", len(failures), s.Replayable, strings.Join(listed, "; ")), 1)
	}
	return nil
}

// replayFilter selects error records; unset parts select everything.
type replayFilter struct {
	stages       map[string]bool
	reason       string
	reasonRE     *regexp.Regexp
	since, until time.Time
	key          *string
}

func replayFilterFromFlags(c *cli.Context) (*replayFilter, error) {
	f := &replayFilter{reason: c.String(replayFlagReason)}
	for _, v := range c.StringSlice(replayFlagStage) {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				if f.stages == nil {
					f.stages = map[string]bool{}
				}
				f.stages[s] = true
			}
		}
	}
	if re := c.String(replayFlagReasonRegex); re != "" {
		var err error
		if f.reasonRE, err = regexp.Compile(re); err != nil {
			return nil, fmt.Errorf("--%s: %w", replayFlagReasonRegex, err)
		}
	}
	for _, t := range []struct {
		flag string
		dst  *time.Time
	}{{replayFlagSince, &f.since}, {replayFlagUntil, &f.until}} {
		if v := c.String(t.flag); v != "" {
			ts, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return nil, fmt.Errorf("--%s: %q is not an RFC 3339 time: %w", t.flag, v, err)
			}
			*t.dst = ts
		}
	}
	if c.IsSet(replayFlagKey) {
		k := c.String(replayFlagKey)
		f.key = &k
	}
	return f, nil
}

// match says whether a record is selected. An unreadable record has no stage,
// reason or key, so it is selected only when none of those is asked for.
func (f *replayFilter) match(r *errorRecord) bool {
	if f.stages != nil && !f.stages[r.stage] {
		return false
	}
	if f.reason != "" && !strings.Contains(r.reason, f.reason) {
		return false
	}
	if f.reasonRE != nil && !f.reasonRE.MatchString(r.reason) {
		return false
	}
	if f.key != nil && (r.srcKey == nil || *r.srcKey != *f.key) {
		return false
	}
	t := r.failedAt
	if t.IsZero() {
		t = r.timestamp
	}
	if !f.since.IsZero() && t.Before(f.since) {
		return false
	}
	if !f.until.IsZero() && !t.Before(f.until) {
		return false
	}
	return true
}

// errorsPos is where an error record sits on the errors topic.
type errorsPos struct {
	Partition int32
	Offset    int64
}

func (p errorsPos) String() string { return fmt.Sprintf("%d/%d", p.Partition, p.Offset) }

// describe names the record in messages.
func (p errorsPos) describe() string {
	return fmt.Sprintf("errors topic partition %d offset %d", p.Partition, p.Offset)
}

func (p errorsPos) less(o errorsPos) bool {
	return p.Partition < o.Partition || p.Partition == o.Partition && p.Offset < o.Offset
}

// errorRecord is one record of the errors topic, parsed.
type errorRecord struct {
	pos       errorsPos
	timestamp time.Time // the Kafka record's
	problem   string    // why it cannot be replayed at all; empty when it can

	stage, reason string
	failedAt      time.Time       // zero when absent or not RFC 3339
	original      json.RawMessage // original_message; nil when absent or null
	text, base64  *string         // original_text, original_base64
	truncated     bool
	size          int64

	srcTopic                string
	srcPartition            int32
	srcOffset               int64
	hasPartition, hasOffset bool
	srcKey                  *string
	srcHeaders              []kgo.RecordHeader
}

// parseErrorRecord reads an error record; what makes it unusable goes to
// problem.
func parseErrorRecord(r *kgo.Record) *errorRecord {
	er := &errorRecord{pos: errorsPos{r.Partition, r.Offset}, timestamp: r.Timestamp}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.Value, &m); err != nil || m == nil {
		er.problem = skipNotJSON
		return er
	}
	if err := er.parseFields(m); err != nil {
		er.problem = err.Error()
	}
	return er
}

func (er *errorRecord) parseFields(m map[string]json.RawMessage) error {
	var err error
	if er.stage, _, err = jsonString(m, erStage, ""); err != nil {
		return err
	}
	if er.reason, _, err = jsonString(m, erError, ""); err != nil {
		return err
	}
	if s, ok, _ := jsonString(m, erFailedAt, ""); ok {
		er.failedAt, _ = time.Parse(time.RFC3339, s)
	}
	if raw := m[erOriginalMessage]; len(raw) > 0 && string(raw) != "null" {
		er.original = raw
	}
	for _, f := range []struct {
		name string
		dst  **string
	}{{erOriginalText, &er.text}, {erOriginalBase64, &er.base64}} {
		s, ok, err := jsonString(m, f.name, "")
		if err != nil {
			return err
		}
		if ok {
			*f.dst = &s
		}
	}
	if raw := m[erOriginalTruncated]; len(raw) > 0 {
		if err := json.Unmarshal(raw, &er.truncated); err != nil {
			return fmt.Errorf("%s is not a boolean", erOriginalTruncated)
		}
	}
	if _, err := jsonInt(m, erOriginalSize, "", &er.size); err != nil {
		return err
	}

	var src map[string]json.RawMessage
	if raw := m[erSource]; len(raw) > 0 {
		if err := json.Unmarshal(raw, &src); err != nil {
			return fmt.Errorf("%s is not an object", erSource)
		}
	}
	prefix := erSource + "."
	if er.srcTopic, _, err = jsonString(src, erSourceTopic, prefix); err != nil {
		return err
	}
	if er.srcTopic == "" {
		return errors.New(skipNoSourceTopic)
	}
	var p int64
	if er.hasPartition, err = jsonInt(src, erSourcePartition, prefix, &p); err != nil {
		return err
	}
	er.srcPartition = int32(p)
	if er.hasOffset, err = jsonInt(src, erSourceOffset, prefix, &er.srcOffset); err != nil {
		return err
	}
	if k, ok, err := jsonString(src, erSourceKey, prefix); err != nil {
		return err
	} else if ok {
		er.srcKey = &k
	}
	if raw := src[erSourceHeaders]; len(raw) > 0 && string(raw) != "null" {
		if er.srcHeaders, err = parseHeaders(raw); err != nil {
			return fmt.Errorf("%s%s: %w", prefix, erSourceHeaders, err)
		}
	}
	return nil
}

// jsonString reads a string field; absent and null are "", false.
func jsonString(m map[string]json.RawMessage, name, prefix string) (string, bool, error) {
	raw := m[name]
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, fmt.Errorf("%s%s is not a string", prefix, name)
	}
	return s, true, nil
}

// jsonInt reads an integer field into dst; absent and null are false.
func jsonInt(m map[string]json.RawMessage, name, prefix string, dst *int64) (bool, error) {
	raw := m[name]
	if len(raw) == 0 || string(raw) == "null" {
		return false, nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return false, fmt.Errorf("%s%s is not an integer", prefix, name)
	}
	return true, nil
}

// parseHeaders reads a JSON object of header names and values in the order
// written. A value is a string, or an array of strings for a header that
// repeats (the kafka_franz input's multi_header).
func parseHeaders(raw json.RawMessage) ([]kgo.RecordHeader, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not an object")
	}
	var hs []kgo.RecordHeader
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		var one *string
		var many []*string
		if json.Unmarshal(v, &one) == nil {
			many = []*string{one}
		} else if json.Unmarshal(v, &many) != nil {
			return nil, fmt.Errorf("header %q is not a string or an array of strings", name)
		}
		for _, s := range many {
			h := kgo.RecordHeader{Key: name}
			if s != nil {
				h.Value = []byte(*s)
			}
			hs = append(hs, h)
		}
	}
	return hs, nil
}

// readErrorsTopic calls each for every record of the topic below the end
// offsets it has when called, reading partitions directly (no group), and
// returns how many it read. A partition is done at its last record: the
// pipelines write the errors topic without transactions, so no control
// record ends it (one would hold the read until --timeout).
func readErrorsTopic(ctx context.Context, cl *kgo.Client, adm *kadm.Client, topic string, each func(*kgo.Record)) (int, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("listing the end offsets of errors topic %s: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("listing the start offsets of errors topic %s: %w", topic, err)
	}
	for _, err := range []error{ends.Error(), starts.Error()} {
		if err != nil {
			return 0, fmt.Errorf("listing the offsets of errors topic %s: %w", topic, err)
		}
	}
	remaining := map[int32]int64{}
	parts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(topic, o.Partition); ok && s.Err == nil && s.Offset < o.Offset {
			remaining[o.Partition] = o.Offset
			parts[o.Partition] = kgo.NewOffset().At(s.Offset)
		}
	})
	if len(parts) == 0 {
		return 0, nil
	}
	rd, err := kgo.NewClient(append(cl.Opts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchMaxWait(replayFetchMaxWait))...)
	if err != nil {
		return 0, fmt.Errorf("creating the reader of errors topic %s: %w", topic, err)
	}
	defer rd.Close()
	read := 0
	for len(remaining) > 0 {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return read, fmt.Errorf("reading errors topic %s: %d records read, partitions %v not read to their end offsets: %w", topic, read, remaining, err)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return read, fmt.Errorf("reading errors topic %s partition %d: %w", topic, errs[0].Partition, errs[0].Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := remaining[r.Partition]
			if !ok || r.Offset >= end {
				return // written after the start, or a partition already done
			}
			read++
			each(r)
			if r.Offset >= end-1 {
				delete(remaining, r.Partition)
			}
		})
	}
	return read, nil
}

// replayItem is what one selected error record becomes.
type replayItem struct {
	rec       *errorRecord
	topic     string // destination
	partition int32  // the source partition when replaying to the source topic; -1: the key decides
	key       []byte
	value     []byte
	headers   []kgo.RecordHeader
	inexact   string // why the bytes may differ from the original; empty when exact
	skip      string // why it is not replayed; empty when it is
	fetch     bool   // the bytes are to be fetched from the source record
}

// srcPos is a record of a source topic.
type srcPos struct {
	topic     string
	partition int32
	offset    int64
}

func (p srcPos) String() string { return fmt.Sprintf("%s/%d/%d", p.topic, p.partition, p.offset) }

type topicPartition struct {
	topic     string
	partition int32
}

// resolveReplay decides each selected record's destination and bytes.
func resolveReplay(ctx context.Context, cl *kgo.Client, adm *kadm.Client, selected []*errorRecord, toTopic string) ([]*replayItem, error) {
	items := make([]*replayItem, 0, len(selected))
	var wants []srcPos
	for _, er := range selected {
		it := &replayItem{rec: er, partition: -1}
		items = append(items, it)
		if er.problem != "" {
			it.skip = er.problem
			continue
		}
		it.topic = er.srcTopic
		if toTopic != "" {
			it.topic = toTopic
		}
		if it.topic == er.srcTopic && er.hasPartition {
			it.partition = er.srcPartition
		}
		if er.srcKey != nil {
			it.key = []byte(*er.srcKey)
		}
		it.headers = er.srcHeaders
		switch {
		case er.text != nil:
			it.value = []byte(*er.text)
		case er.base64 != nil:
			b, err := base64.StdEncoding.DecodeString(*er.base64)
			if err != nil {
				it.skip = skipBadBase64
			}
			it.value = b
		case er.hasPartition && er.hasOffset:
			it.fetch = true
			wants = append(wants, srcPos{er.srcTopic, er.srcPartition, er.srcOffset})
		default:
			it.fallBack(inexactNoPosition)
		}
	}
	if len(wants) == 0 {
		return items, nil
	}
	found, err := fetchSourceRecords(ctx, cl, adm, wants)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if !it.fetch {
			continue
		}
		er := it.rec
		r, ok := found[srcPos{er.srcTopic, er.srcPartition, er.srcOffset}]
		switch {
		case !ok:
			it.fallBack(inexactGone)
		case !er.isOriginal(r.Value):
			it.fallBack(inexactDiffers)
		default:
			it.value, it.key, it.headers = r.Value, r.Key, r.Headers
		}
	}
	return items, nil
}

// fallBack republishes original_message when the exact bytes are not to be
// had: a string as is, other JSON compact. A truncated original cannot be.
func (it *replayItem) fallBack(why string) {
	er := it.rec
	switch {
	case er.truncated:
		it.skip = skipTruncatedGone
	case er.original == nil:
		it.skip = skipNoOriginal
	default:
		var s string
		if json.Unmarshal(er.original, &s) == nil {
			it.value = []byte(s)
		} else {
			var b bytes.Buffer
			_ = json.Compact(&b, er.original) // valid: it was decoded with the record
			it.value = b.Bytes()
		}
		if it.value == nil {
			it.value = []byte{}
		}
		it.inexact = why
	}
}

// isOriginal says whether a record fetched at the source position is the
// one that failed: same size for a truncated original, else the same JSON
// value or text as original_message. A topic deleted and recreated reuses
// offsets; this keeps another record from being replayed in its place.
func (er *errorRecord) isOriginal(v []byte) bool {
	if er.truncated {
		return er.size == 0 || int64(len(v)) == er.size
	}
	if er.original == nil {
		return true
	}
	var want any
	if json.Unmarshal(er.original, &want) != nil {
		return true
	}
	if json.Valid(v) {
		var got any
		if json.Unmarshal(v, &got) == nil && reflect.DeepEqual(want, got) {
			return true
		}
	}
	s, ok := want.(string)
	return ok && (s == string(v) || s == strings.ToValidUTF8(string(v), "\uFFFD") || s == string([]rune(string(v))))
}

// fetchSourceRecords fetches the records at the given positions that the
// broker still has, partition by partition, seeking to each wanted offset not
// already read. A missing topic or partition, or an offset outside the
// partition's start and end offsets or removed by compaction, is not found.
func fetchSourceRecords(ctx context.Context, cl *kgo.Client, adm *kadm.Client, wants []srcPos) (map[srcPos]*kgo.Record, error) {
	byTP := map[topicPartition][]int64{}
	var topics []string
	for _, w := range wants {
		tp := topicPartition{w.topic, w.partition}
		if _, ok := byTP[tp]; !ok && !slices.Contains(topics, w.topic) {
			topics = append(topics, w.topic)
		}
		byTP[tp] = append(byTP[tp], w.offset)
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("listing the start offsets of source topics %s: %w", strings.Join(topics, ","), err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("listing the end offsets of source topics %s: %w", strings.Join(topics, ","), err)
	}
	// A topic that no longer exists has lost its records; any other error
	// would pass a record still there for gone.
	for _, l := range []kadm.ListedOffsets{starts, ends} {
		var first error
		l.Each(func(o kadm.ListedOffset) {
			if o.Err != nil && !errors.Is(o.Err, kerr.UnknownTopicOrPartition) && first == nil {
				first = fmt.Errorf("listing the offsets of source topic %s partition %d: %w", o.Topic, o.Partition, o.Err)
			}
		})
		if first != nil {
			return nil, first
		}
	}
	tps := make([]topicPartition, 0, len(byTP))
	for tp, offs := range byTP {
		s, ok1 := starts.Lookup(tp.topic, tp.partition)
		e, ok2 := ends.Lookup(tp.topic, tp.partition)
		if !ok1 || !ok2 || s.Err != nil || e.Err != nil {
			delete(byTP, tp)
			continue
		}
		offs = slices.DeleteFunc(offs, func(o int64) bool { return o < s.Offset || o >= e.Offset })
		if len(offs) == 0 {
			delete(byTP, tp)
			continue
		}
		slices.Sort(offs)
		byTP[tp] = slices.Compact(offs)
		tps = append(tps, tp)
	}
	found := map[srcPos]*kgo.Record{}
	if len(tps) == 0 {
		return found, nil
	}
	sort.Slice(tps, func(i, j int) bool {
		return tps[i].topic < tps[j].topic || tps[i].topic == tps[j].topic && tps[i].partition < tps[j].partition
	})
	rd, err := kgo.NewClient(append(cl.Opts(), kgo.FetchMaxWait(replayFetchMaxWait))...)
	if err != nil {
		return nil, fmt.Errorf("creating the reader of source records: %w", err)
	}
	defer rd.Close()
	for _, tp := range tps {
		pending := byTP[tp]
		for len(pending) > 0 {
			next := pending[0]
			rd.AddConsumePartitions(map[string]map[int32]kgo.Offset{tp.topic: {tp.partition: kgo.NewOffset().At(next)}})
			last := int64(-1) // highest offset read at or after next
			for last < 0 {
				fs := rd.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("fetching source record %s: %w", srcPos{tp.topic, tp.partition, next}, err)
				}
				if errs := fs.Errors(); len(errs) > 0 {
					return nil, fmt.Errorf("fetching source record %s: %w", srcPos{errs[0].Topic, errs[0].Partition, next}, errs[0].Err)
				}
				fs.EachRecord(func(r *kgo.Record) {
					if r.Topic != tp.topic || r.Partition != tp.partition {
						return
					}
					if _, ok := slices.BinarySearch(pending, r.Offset); ok {
						found[srcPos{tp.topic, tp.partition, r.Offset}] = r
					}
					if r.Offset >= next && r.Offset > last {
						last = r.Offset
					}
				})
			}
			rd.RemoveConsumePartitions(map[string][]int32{tp.topic: {tp.partition}})
			// Offsets up to the last read are found or gone (compacted away).
			pending = slices.DeleteFunc(pending, func(o int64) bool { return o <= last })
		}
	}
	return found, nil
}

// replaySummary is what a replay selected and did.
type replaySummary struct {
	ErrorsTopic         string         `json:"errors_topic"`
	DryRun              bool           `json:"dry_run"`
	Read                int            `json:"read"`
	Selected            int            `json:"selected"`
	Replayable          int            `json:"replayable"`
	Replayed            int            `json:"replayed"`
	Failed              int            `json:"failed"`
	Inexact             int            `json:"inexact"`
	InexactByReason     []reasonCount  `json:"inexact_by_reason"`
	Skipped             int            `json:"skipped"`
	SkippedByReason     []reasonCount  `json:"skipped_by_reason"`
	ByStage             map[string]int `json:"by_stage"`
	ByReason            []reasonCount  `json:"by_reason"`
	OtherReasons        int            `json:"other_reasons"`
	ByDestination       map[string]int `json:"by_destination"`
	MissingDestinations []string       `json:"missing_destinations,omitempty"`
}

// reasonCount is how many records share one reason, and the first of them
// (errors topic partition/offset) for skip and inexact reasons.
type reasonCount struct {
	Reason  string   `json:"reason"`
	Count   int      `json:"count"`
	Records []string `json:"records,omitempty"`
}

func summarizeReplay(topic string, read int, items []*replayItem) *replaySummary {
	s := &replaySummary{ErrorsTopic: topic, Read: read, Selected: len(items), ByStage: map[string]int{}, ByDestination: map[string]int{}}
	reasons := newReasonCounter(0)
	skipped, inexact := newReasonCounter(replayRecordsListed), newReasonCounter(replayRecordsListed)
	for _, it := range items {
		stage, reason := it.rec.stage, it.rec.reason
		if it.rec.problem == skipNotJSON {
			stage, reason = "(unreadable)", "(unreadable)"
		}
		if stage == "" {
			stage = "(none)"
		}
		if reason == "" {
			reason = "(none)"
		}
		s.ByStage[stage]++
		reasons.add(reason, it.rec.pos)
		if it.skip != "" {
			s.Skipped++
			skipped.add(it.skip, it.rec.pos)
			continue
		}
		s.Replayable++
		s.ByDestination[it.topic]++
		if it.inexact != "" {
			s.Inexact++
			inexact.add(it.inexact, it.rec.pos)
		}
	}
	s.ByReason, s.OtherReasons = reasons.top(replayTopReasons)
	s.SkippedByReason, _ = skipped.top(0)
	s.InexactByReason, _ = inexact.top(0)
	return s
}

type reasonCounter struct {
	listed int
	m      map[string]*reasonCount
}

func newReasonCounter(listed int) *reasonCounter {
	return &reasonCounter{listed: listed, m: map[string]*reasonCount{}}
}

func (rc *reasonCounter) add(reason string, pos errorsPos) {
	c := rc.m[reason]
	if c == nil {
		c = &reasonCount{Reason: reason}
		rc.m[reason] = c
	}
	c.Count++
	if len(c.Records) < rc.listed {
		c.Records = append(c.Records, pos.String())
	}
}

// top returns the n most frequent reasons (all when n is 0), most frequent
// first, and the number of records the others hold.
func (rc *reasonCounter) top(n int) ([]reasonCount, int) {
	out := make([]reasonCount, 0, len(rc.m))
	for _, c := range rc.m {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Reason < out[j].Reason
	})
	other := 0
	if n > 0 && len(out) > n {
		for _, c := range out[n:] {
			other += c.Count
		}
		out = out[:n]
	}
	return out, other
}

// missingTopics returns the destinations the cluster does not have.
func missingTopics(ctx context.Context, adm *kadm.Client, dests map[string]int) ([]string, error) {
	if len(dests) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(dests))
	for t := range dests {
		names = append(names, t)
	}
	sort.Strings(names)
	tds, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("looking up destination topics %s: %w", strings.Join(names, ","), err)
	}
	var missing []string
	for _, t := range names {
		if td, ok := tds[t]; !ok || td.Err != nil {
			missing = append(missing, t)
		}
	}
	return missing, nil
}

type replayPartitionKey struct{}

// replayPartitioner puts a record on the partition its context names when
// the topic has it (the source partition), else where its key hashes to, as
// Kafka's default partitioner does.
func replayPartitioner() kgo.Partitioner {
	byKey := kgo.StickyKeyPartitioner(nil)
	return kgo.BasicConsistentPartitioner(func(topic string) func(*kgo.Record, int) int {
		fallback := byKey.ForTopic(topic)
		return func(r *kgo.Record, n int) int {
			if r.Context != nil {
				if p, ok := r.Context.Value(replayPartitionKey{}).(int32); ok && int(p) < n {
					return int(p)
				}
			}
			return fallback.Partition(r, n)
		}
	})
}

// publishReplay produces the replayable items with an idempotent producer,
// waits for every acknowledgement and returns how many were acknowledged and
// a description of each failure naming its error record.
func publishReplay(ctx context.Context, cl *kgo.Client, items []*replayItem) (int, []string, error) {
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		acked    int
		failures []string
	)
	var deliveryTimeout time.Duration
	if d, ok := ctx.Deadline(); ok {
		deliveryTimeout = time.Until(d)
	}
	pr, err := kgo.NewClient(append(cl.Opts(),
		kgo.RecordPartitioner(replayPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(deliveryTimeout))...)
	if err != nil {
		return 0, nil, fmt.Errorf("creating the producer: %w", err)
	}
	closed := false
	defer func() {
		if !closed {
			pr.Close()
		}
	}()
	for _, it := range items {
		if it.skip != "" {
			continue
		}
		rctx := ctx
		if it.partition >= 0 {
			rctx = context.WithValue(ctx, replayPartitionKey{}, it.partition)
		}
		rec := &kgo.Record{Topic: it.topic, Key: it.key, Value: it.value, Headers: it.headers, Context: rctx}
		wg.Add(1)
		pr.Produce(ctx, rec, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s (to %s): %v", it.rec.pos.describe(), r.Topic, err))
				return
			}
			acked++
		})
	}
	if err := pr.Flush(ctx); err != nil {
		pr.Close() // fails what is still buffered, so every callback runs
		closed = true
	}
	wg.Wait()
	sort.Strings(failures)
	return acked, failures, nil
}

func (s *replaySummary) print(w io.Writer, asJSON bool) error {
	if asJSON {
		return writeJSON(w, s)
	}
	prefix := ""
	if s.DryRun {
		prefix = "(dry run) "
	}
	fmt.Fprintf(w, "%s%d records read from %s (up to its end offsets at the start)\n", prefix, s.Read, s.ErrorsTopic)
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "selected\t%d\n", s.Selected)
	if s.DryRun {
		fmt.Fprintf(tw, "would replay\t%d\t(%d inexact)\n", s.Replayable, s.Inexact)
	} else {
		fmt.Fprintf(tw, "replayed\t%d\t(%d inexact)\n", s.Replayed, s.Inexact)
		if s.Failed > 0 {
			fmt.Fprintf(tw, "failed\t%d\n", s.Failed)
		}
	}
	fmt.Fprintf(tw, "skipped\t%d\n", s.Skipped)
	tw.Flush()
	printCounts := func(title string, cs []reasonCount) {
		if len(cs) == 0 {
			return
		}
		fmt.Fprintln(w, title)
		for _, c := range cs {
			line := fmt.Sprintf("  %6d  %s", c.Count, c.Reason)
			if len(c.Records) > 0 {
				more := ""
				if c.Count > len(c.Records) {
					more = ", …"
				}
				line += fmt.Sprintf("  (errors records %s%s)", strings.Join(c.Records, ", "), more)
			}
			fmt.Fprintln(w, line)
		}
	}
	printCounts("skipped, by reason:", s.SkippedByReason)
	printCounts("inexact (original_message re-encoded), by reason:", s.InexactByReason)
	printCounts("selected, by stage:", sortedCounts(s.ByStage))
	title := "selected, by error:"
	if s.OtherReasons > 0 {
		title = fmt.Sprintf("selected, by error (top %d; %d records have other errors):", replayTopReasons, s.OtherReasons)
	}
	printCounts(title, s.ByReason)
	printCounts("by destination topic:", sortedCounts(s.ByDestination))
	for _, t := range s.MissingDestinations {
		fmt.Fprintf(w, "destination topic %s does not exist: nothing is published\n", t)
	}
	return nil
}

func sortedCounts(m map[string]int) []reasonCount {
	rc := newReasonCounter(0)
	for k, n := range m {
		rc.m[k] = &reasonCount{Reason: k, Count: n}
	}
	out, _ := rc.top(0)
	return out
}
