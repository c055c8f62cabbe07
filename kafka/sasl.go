package kafka

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/redpanda-data/benthos/v4/public/service"
)

const (
	saslFieldMechanism  = "mechanism"
	saslFieldUsername   = "username"
	saslFieldPassword   = "password"
	saslFieldToken      = "token"
	saslFieldExtensions = "extensions"
)

func saslField() *service.ConfigField {
	return service.NewObjectListField(kfcFieldSASL,
		service.NewStringAnnotatedEnumField(saslFieldMechanism, map[string]string{
			"none":          "Disable sasl authentication",
			"PLAIN":         "Plain text authentication.",
			"OAUTHBEARER":   "OAuth Bearer based authentication.",
			"SCRAM-SHA-256": "SCRAM based authentication as specified in RFC5802.",
			"SCRAM-SHA-512": "SCRAM based authentication as specified in RFC5802.",
		}).
			Description("The SASL mechanism to use."),
		service.NewStringField(saslFieldUsername).
			Description("A username to provide for PLAIN or SCRAM-* authentication.").
			Default(""),
		service.NewStringField(saslFieldPassword).
			Description("A password to provide for PLAIN or SCRAM-* authentication.").
			Default("").
			Secret(),
		service.NewStringField(saslFieldToken).
			Description("The token to use for a single session's OAUTHBEARER authentication.").
			Default("").
			Secret(),
		service.NewStringMapField(saslFieldExtensions).
			Description("Key/value pairs to add to OAUTHBEARER authentication requests.").
			Optional(),
	).
		Description("Specify one or more methods of SASL authentication. SASL is tried in order; if the broker supports the first mechanism, all connections will use that mechanism. If the first mechanism fails, the client will pick the first supported mechanism. If the broker does not support any client mechanisms, connections will fail.").
		Advanced().Optional().
		Example([]any{
			map[string]any{
				saslFieldMechanism: "SCRAM-SHA-512",
				saslFieldUsername:  "foo",
				saslFieldPassword:  "bar",
			},
		})
}

// saslMechanismsFromConfig builds the franz-go mechanisms for the sasl list.
// Errors name the list index, never a secret.
func saslMechanismsFromConfig(conf *service.ParsedConfig) ([]sasl.Mechanism, error) {
	if !conf.Contains(kfcFieldSASL) {
		return nil, nil
	}
	list, err := conf.FieldObjectList(kfcFieldSASL)
	if err != nil {
		return nil, err
	}
	var mechanisms []sasl.Mechanism
	for i, mConf := range list {
		m, err := saslMechanismFromConfig(mConf)
		if err != nil {
			return nil, fmt.Errorf("sasl[%d]: %w", i, err)
		}
		if m != nil {
			mechanisms = append(mechanisms, m)
		}
	}
	return mechanisms, nil
}

func saslMechanismFromConfig(c *service.ParsedConfig) (sasl.Mechanism, error) {
	mechanism, err := c.FieldString(saslFieldMechanism)
	if err != nil {
		return nil, err
	}
	username, err := c.FieldString(saslFieldUsername)
	if err != nil {
		return nil, err
	}
	password, err := c.FieldString(saslFieldPassword)
	if err != nil {
		return nil, err
	}
	switch mechanism {
	case "", "none":
		return nil, nil
	case "PLAIN":
		return plain.Auth{User: username, Pass: password}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: username, Pass: password}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: username, Pass: password}.AsSha512Mechanism(), nil
	case "OAUTHBEARER":
		token, err := c.FieldString(saslFieldToken)
		if err != nil {
			return nil, err
		}
		var extensions map[string]string
		if c.Contains(saslFieldExtensions) {
			if extensions, err = c.FieldStringMap(saslFieldExtensions); err != nil {
				return nil, err
			}
		}
		return oauth.Auth{Token: token, Extensions: extensions}.AsMechanism(), nil
	default:
		return nil, fmt.Errorf("unknown sasl mechanism %q", mechanism)
	}
}
