package kafka

import (
	"fmt"
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

// int32Size narrows a byte size for a kgo option that takes an int32.
func int32Size(field string, n int64) (int32, error) {
	if n > 1<<31-1 {
		return 0, fmt.Errorf("field %s: byte size %d exceeds the maximum of 2GiB", field, n)
	}
	return int32(n), nil
}
