package kafka

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// Connection fields shared by the kafka_franz input and output.
const (
	kfcFieldSeedBrokers            = "seed_brokers"
	kfcFieldClientID               = "client_id"
	kfcFieldTLS                    = "tls"
	kfcFieldSASL                   = "sasl"
	kfcFieldMetadataMaxAge         = "metadata_max_age"
	kfcFieldRequestTimeoutOverhead = "request_timeout_overhead"
	kfcFieldConnIdleTimeout        = "conn_idle_timeout"
)

// franzConnectionFields returns the fields describing how to reach a cluster,
// used identically by the input and the output.
func franzConnectionFields() []*service.ConfigField {
	return []*service.ConfigField{
		service.NewStringListField(kfcFieldSeedBrokers).
			Description("A list of broker addresses to connect to in order to establish connections. If an item of the list contains commas it will be expanded into multiple addresses.").
			Example([]string{"localhost:9092"}).
			Example([]string{"foo:9092", "bar:9092"}).
			Example([]string{"foo:9092,bar:9092"}),
		service.NewStringField(kfcFieldClientID).
			Description("An identifier for the client connection.").
			Default("claimx-connect").
			Advanced(),
		service.NewTLSToggledField(kfcFieldTLS),
		saslField(),
		service.NewDurationField(kfcFieldMetadataMaxAge).
			Description("The maximum age of metadata before it is refreshed.").
			Default("5m").
			Advanced(),
		service.NewDurationField(kfcFieldRequestTimeoutOverhead).
			Description("The request time overhead. Uses the given time as overhead while deadlining requests. Roughly equivalent to request.timeout.ms, but grants additional time to requests that have timeout fields.").
			Default("10s").
			Advanced(),
		service.NewDurationField(kfcFieldConnIdleTimeout).
			Description("The rough amount of time to allow connections to idle before they are closed.").
			Default("20s").
			Advanced(),
	}
}

// franzConnectionOptsFromConfig parses the fields of franzConnectionFields
// into client options.
func franzConnectionOptsFromConfig(conf *service.ParsedConfig) ([]kgo.Opt, error) {
	rawBrokers, err := conf.FieldStringList(kfcFieldSeedBrokers)
	if err != nil {
		return nil, err
	}
	brokers := splitCommaList(rawBrokers)
	if len(brokers) == 0 {
		return nil, fmt.Errorf("field %s: at least one broker address is required", kfcFieldSeedBrokers)
	}

	clientID, err := conf.FieldString(kfcFieldClientID)
	if err != nil {
		return nil, err
	}

	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID(clientID),
	}

	tlsConf, tlsEnabled, err := conf.FieldTLSToggled(kfcFieldTLS)
	if err != nil {
		return nil, err
	}
	if tlsEnabled {
		opts = append(opts, kgo.DialTLSConfig(tlsConf))
	}

	mechanisms, err := saslMechanismsFromConfig(conf)
	if err != nil {
		return nil, err
	}
	if len(mechanisms) > 0 {
		opts = append(opts, kgo.SASL(mechanisms...))
	}

	for _, d := range []struct {
		field string
		opt   func(time.Duration) kgo.Opt
	}{
		{kfcFieldMetadataMaxAge, kgo.MetadataMaxAge},
		{kfcFieldRequestTimeoutOverhead, kgo.RequestTimeoutOverhead},
		{kfcFieldConnIdleTimeout, kgo.ConnIdleTimeout},
	} {
		v, err := conf.FieldDuration(d.field)
		if err != nil {
			return nil, err
		}
		opts = append(opts, d.opt(v))
	}
	return opts, nil
}

// splitCommaList expands comma separated entries and drops empty ones, so
// that both `[a, b]` and `["a,b"]` describe the same list.
func splitCommaList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// byteSizeField is a field accepting either a number of bytes or a humanised
// size such as "50MiB" or "1MB", as Connect does.
func byteSizeField(name string) *service.ConfigField {
	return service.NewStringField(name)
}

// fieldByteSize reads a field defined with byteSizeField.
func fieldByteSize(conf *service.ParsedConfig, name string) (int64, error) {
	v, err := conf.FieldAny(name)
	if err != nil {
		return 0, err
	}
	var n int64
	switch t := v.(type) {
	case int:
		n = int64(t)
	case int64:
		n = t
	case float64:
		n = int64(t)
	case string:
		if n, err = parseByteSize(t); err != nil {
			return 0, fmt.Errorf("field %s: %w", name, err)
		}
	default:
		return 0, fmt.Errorf("field %s: expected a byte size, got %T", name, v)
	}
	if n < 0 {
		return 0, fmt.Errorf("field %s: byte size %d is negative", name, n)
	}
	return n, nil
}

var byteSizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"k":   1000,
	"kb":  1000,
	"ki":  1 << 10,
	"kib": 1 << 10,
	"m":   1000 * 1000,
	"mb":  1000 * 1000,
	"mi":  1 << 20,
	"mib": 1 << 20,
	"g":   1000 * 1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"gi":  1 << 30,
	"gib": 1 << 30,
}

// parseByteSize parses sizes like "1048576", "50MiB", "1.5 MB" or "1kb".
// Units are case insensitive; SI units are powers of 1000, IEC units (KiB,
// MiB, GiB) powers of 1024, as in go-humanize which Connect uses.
func parseByteSize(s string) (int64, error) {
	str := strings.TrimSpace(s)
	i := 0
	for i < len(str) && (str[i] >= '0' && str[i] <= '9' || str[i] == '.') {
		i++
	}
	num, unit := str[:i], strings.ToLower(strings.TrimSpace(str[i:]))
	if num == "" {
		return 0, fmt.Errorf("parsing byte size %q: no number", s)
	}
	mult, ok := byteSizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("parsing byte size %q: unknown unit %q", s, unit)
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing byte size %q: %w", s, err)
	}
	return int64(f * float64(mult)), nil
}

// int32Size narrows a byte size for a kgo option that takes an int32.
func int32Size(field string, n int64) (int32, error) {
	if n > 1<<31-1 {
		return 0, fmt.Errorf("field %s: byte size %d exceeds the maximum of 2GiB", field, n)
	}
	return int32(n), nil
}
