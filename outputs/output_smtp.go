package outputs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

const (
	smtpFieldAddress       = "address"
	smtpFieldTLS           = "tls"
	smtpFieldTLSSkipVerify = "tls_skip_verify"
	smtpFieldRootCAsFile   = "root_cas_file"
	smtpFieldUsername      = "username"
	smtpFieldPassword      = "password"
	smtpFieldFrom          = "from"
	smtpFieldTo            = "to"
	smtpFieldCc            = "cc"
	smtpFieldSubject       = "subject"
	smtpFieldBody          = "body"
	smtpFieldContentType   = "content_type"
	smtpFieldMessageID     = "message_id"
	smtpFieldTimeout       = "timeout"
	smtpFieldRateLimit     = "rate_limit"
)

// Values of the tls field.
const (
	smtpTLSStartTLS = "starttls"
	smtpTLSImplicit = "tls"
	smtpTLSNone     = "none"
)

// The prefixes of the errors Write returns. A pipeline routes on them (the
// fallback output's fallback_error metadata), so they are part of the
// output's contract.
const (
	smtpErrUnavailable = "smtp unavailable"
	smtpErrRejected    = "smtp rejected"
	smtpErrInvalid     = "smtp invalid message"
)

// smtpExampleAlert and smtpExampleFallback are the spec's examples; the
// tests run them against a stand-in server, so they cannot rot.
const smtpExampleAlert = `
output:
  label: email
  smtp:
    address: ${SMTP_ADDRESS:smtp.example.com:587}
    tls: starttls
    root_cas_file: ${SMTP_ROOT_CAS_FILE:}
    username: ${SMTP_USERNAME:}
    password: ${SMTP_PASSWORD:}
    from: ${ALERTS_EMAIL_FROM:iTel Cabinet alerts <alerts@example.com>}
    to: [ "${ALERTS_EMAIL_TO:ops@example.com}" ]
    subject: '[${! json("rule") }] assignment ${! json("assignment_id") }'
    message_id: ${! json("alert_id") }
    body: |
      ${! json("summary") }

      Rule:        ${! json("rule") } (${! json("severity") })
      Assignment:  ${! json("assignment_id") } (project ${! json("project_id") }, task ${! json("task_id") })
      Status:      ${! json("from_status").or("new") } → ${! json("to_status") }
      Event:       ${! json("event_id") } at ${! json("event_time") }
      Alert:       ${! json("alert_id") }
    rate_limit: email_rate

rate_limit_resources:
  - label: email_rate
    local:
      count: ${ALERTS_EMAIL_PER_SECOND:1}
      interval: 1s
`

const smtpExampleFallback = `
output:
  fallback:
    - smtp:
        address: ${SMTP_ADDRESS:smtp.example.com:587}
        root_cas_file: ${SMTP_ROOT_CAS_FILE:}
        from: alerts@example.com
        to: [ "${ALERTS_EMAIL_TO:ops@example.com}" ]
        subject: '[${! json("rule") }] assignment ${! json("assignment_id") }'
        message_id: ${! json("alert_id") }
        body: ${! json("summary") }
    - switch:
        cases:
          # The message's own failures: log them and go on.
          - check: '@fallback_error.has_prefix("smtp rejected") || @fallback_error.has_prefix("smtp invalid message")'
            output:
              drop: {}
              processors:
                - log:
                    level: ERROR
                    message: 'alert e-mail not sent: ${! @fallback_error }'
                    fields_mapping: 'root.alert_id = this.alert_id'
          # Anything else (the server down, a 4xx): fail again, so the alert
          # is retried and holds the stream.
          - output:
              reject: '${! @fallback_error }'
`

func smtpOutputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Summary("Sends each message as an e-mail through an SMTP server (a relay or a provider's submission port).").
		Description(`
Each message is one e-mail to every address of `+"`to`"+` and `+"`cc`"+`, with a subject and body
interpolated from the message: edit the templates in the YAML.

The output opens a connection for each message (dial, TLS, AUTH, MAIL, RCPT, DATA, QUIT)
rather than keeping one open: alerts are rare, and a pooled connection goes stale between
them (servers drop idle sessions after a minute or so), which would turn the first send after
a quiet spell into a failure. `+"`timeout`"+` bounds the whole exchange, dial included.

### Security

- `+"`tls: starttls`"+` (the default, port 587 or 25) requires the server to offer STARTTLS
  and upgrades before anything else is sent; a server that does not offer it is a failure,
  never a fallback to clear text.
- `+"`tls: tls`"+` is implicit TLS (port 465).
- `+"`tls: none`"+` is for a relay on the same host or pod only. With a `+"`username`"+`, Go's
  net/smtp refuses to send the password (AUTH PLAIN) over an unencrypted connection to
  anything but localhost, and the output refuses such a config when it starts.

The certificate is checked against the system roots, or `+"`root_cas_file`"+`, for the host of
`+"`address`"+`; `+"`tls_skip_verify`"+` turns the check off (tests only). Give the password from the
environment: `+"`password: ${SMTP_PASSWORD}`"+`.

### Addresses and headers

`+"`from`"+` is one address, `+"`to`"+` and `+"`cc`"+` lists of interpolated strings in which each item
may hold several comma-separated addresses (so one environment variable can carry a whole
list); items that interpolate to an empty string are skipped. Addresses are RFC 5322
(`+"`ops@example.com`"+` or `+"`Ops <ops@example.com>`"+`); one that does not parse is an error
naming the field and the value.

The e-mail carries From, To, Cc, Subject (Q-encoded when it is not plain ASCII), Date,
Message-ID, MIME-Version, Content-Type (`+"`content_type`"+`, charset utf-8),
Content-Transfer-Encoding (7bit, or quoted-printable when the body is not plain ASCII or has
lines too long for SMTP) and Auto-Submitted: auto-generated (which keeps vacation responders
quiet). A line break in the subject, an address or the message id is refused (header
injection), naming the field.

The Message-ID is `+"`<message_id@domain of from>`"+` with the characters an id may not hold
percent-encoded; without `+"`message_id`"+`, a hash of the message's content. It is the same on
every retry of a message, so a recipient whose client saw an earlier attempt (after a lost
final reply, say) can thread or dedupe the copies.

A message is sent to all its recipients or to none: when the server refuses a recipient the
transaction is reset, so a retry never sends a second copy to the ones that were accepted.

### Failures

Write fails, and the message is not acknowledged, with an error that begins with one of:

- `+"`"+smtpErrUnavailable+"`"+`: the server's or the network's: dial, TLS, timeout, no STARTTLS,
  AUTH refused, any 4xx reply (421, 451, 452…). Retrying is right; inside a `+"`fan_out`"+`
  broker the output is retried with backoff, holding the stream until the server is back.
- `+"`"+smtpErrRejected+"`"+`: a permanent (5xx) reply to MAIL FROM, to a recipient (the error names
  each refused recipient with its code and the server's text, e.g. 550 5.1.1 no such user) or
  to the message's content. Retrying the same message will not help.
- `+"`"+smtpErrInvalid+"`"+`: the message's own fault, found before connecting: a field that does
  not interpolate, an address that does not parse, a line break in a header.

Nothing is dropped by the output: every failure is an error, so without more the pipeline
retries the message until it is sent, which for the last two kinds means until the config or
the server changes. To let such a message go (log it, or send it to an errors topic), wrap
the output in a `+"`fallback`"+` and route on `+"`@fallback_error`"+`, failing anything else again
with `+"`reject`"+` so the hold is kept (second example).`).
		Fields(
			service.NewStringField(smtpFieldAddress).
				Description("The server's `host:port`.").
				Example("smtp.example.com:587").
				Example("smtp.example.com:465").
				Example("localhost:25"),
			service.NewStringAnnotatedEnumField(smtpFieldTLS, map[string]string{
				smtpTLSStartTLS: "Connect in clear text and upgrade with STARTTLS, which the server must offer (ports 587 and 25).",
				smtpTLSImplicit: "TLS from the first byte (port 465).",
				smtpTLSNone:     "No encryption: only for a relay on the same host or pod.",
			}).
				Description("How the connection is encrypted.").
				Default(smtpTLSStartTLS),
			service.NewBoolField(smtpFieldTLSSkipVerify).
				Description("Do not verify the server's certificate. For tests only.").
				Default(false).
				Advanced(),
			service.NewStringField(smtpFieldRootCAsFile).
				Description("A PEM file of the certificate authorities that sign the server's certificate, instead of the system roots. Empty: the system roots.").
				Default("").
				Example("/etc/ssl/certs/corp-ca.pem").
				Advanced(),
			service.NewStringField(smtpFieldUsername).
				Description("User for AUTH PLAIN. Empty: no authentication.").
				Default(""),
			service.NewStringField(smtpFieldPassword).
				Description("Password for AUTH PLAIN; give it from the environment.").
				Default("").
				Example("${SMTP_PASSWORD}").
				Secret(),
			service.NewInterpolatedStringField(smtpFieldFrom).
				Description("The sender: the From header and the envelope's MAIL FROM.").
				Example("alerts@example.com").
				Example("iTel Cabinet alerts <alerts@example.com>"),
			service.NewInterpolatedStringListField(smtpFieldTo).
				Description("Recipients. Each item may hold several comma-separated addresses; items that interpolate to an empty string are skipped, but there must be one recipient at least.").
				Example([]string{"ops@example.com"}).
				Example([]string{"${ALERTS_EMAIL_TO}"}).
				Example([]string{"Ops <ops@example.com>", "${! @owner_email }"}),
			service.NewInterpolatedStringListField(smtpFieldCc).
				Description("Copy recipients, as `to`.").
				Default([]any{}).
				Advanced(),
			service.NewInterpolatedStringField(smtpFieldSubject).
				Description("The subject; Q-encoded when it is not plain ASCII.").
				Example(`[${! json("rule") }] assignment ${! json("assignment_id") }`),
			service.NewInterpolatedStringField(smtpFieldBody).
				Description("The body.").
				Default("${! content() }"),
			service.NewStringEnumField(smtpFieldContentType, "text/plain", "text/html").
				Description("The body's media type (charset utf-8).").
				Default("text/plain"),
			service.NewInterpolatedStringField(smtpFieldMessageID).
				Description("What makes the Message-ID: one value per message that is the same on every delivery of it, such as the alert's id. Without it, a hash of the message's content.").
				Example(`${! json("alert_id") }`).
				Optional(),
			service.NewDurationField(smtpFieldTimeout).
				Description("The most one e-mail may take, from dialling to the server's acceptance.").
				Default("10s"),
			service.NewStringField(smtpFieldRateLimit).
				Description("A `rate_limit` resource to wait on before each e-mail. Empty: none.").
				Default("").
				Example("email_rate"),
			service.NewOutputMaxInFlightField().Default(1),
		).
		Example("Alert e-mails", "One e-mail per alert of the alerts stream, through a submission port with STARTTLS and a password from the environment, at most one a second.", smtpExampleAlert).
		Example("Letting permanent failures go", "A refused recipient or a bad message is logged and acknowledged; the server down or a 4xx still holds the stream.", smtpExampleFallback)
}

func init() {
	service.MustRegisterOutput("smtp", smtpOutputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.Output, int, error) {
			maxInFlight, err := conf.FieldMaxInFlight()
			if err != nil {
				return nil, 0, err
			}
			o, err := newSMTPOutput(conf, mgr)
			if err != nil {
				return nil, 0, err
			}
			return o, maxInFlight, nil
		})
}

// smtpConfig is the parsed config; the templates are kept as interpolations.
type smtpConfig struct {
	address     string
	host        string
	tlsMode     string
	tlsConf     *tls.Config
	username    string
	password    string
	from        *service.InterpolatedString
	to          []*service.InterpolatedString
	cc          []*service.InterpolatedString
	subject     *service.InterpolatedString
	body        *service.InterpolatedString
	contentType string
	messageID   *service.InterpolatedString // nil: a hash of the content
	timeout     time.Duration
	rateLimit   string
}

func parseSMTPConfig(conf *service.ParsedConfig, mgr *service.Resources) (*smtpConfig, error) {
	c := &smtpConfig{}
	var err error
	if c.address, err = conf.FieldString(smtpFieldAddress); err != nil {
		return nil, err
	}
	if c.host, _, err = net.SplitHostPort(c.address); err != nil || c.host == "" {
		return nil, fmt.Errorf("field %s: %q is not host:port", smtpFieldAddress, c.address)
	}
	if c.tlsMode, err = conf.FieldString(smtpFieldTLS); err != nil {
		return nil, err
	}
	skipVerify, err := conf.FieldBool(smtpFieldTLSSkipVerify)
	if err != nil {
		return nil, err
	}
	casFile, err := conf.FieldString(smtpFieldRootCAsFile)
	if err != nil {
		return nil, err
	}
	c.tlsConf = &tls.Config{ServerName: c.host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: skipVerify}
	if casFile != "" {
		pem, err := os.ReadFile(casFile)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", smtpFieldRootCAsFile, err)
		}
		c.tlsConf.RootCAs = x509.NewCertPool()
		if !c.tlsConf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("field %s: no PEM certificate in %s", smtpFieldRootCAsFile, casFile)
		}
	}
	if c.username, err = conf.FieldString(smtpFieldUsername); err != nil {
		return nil, err
	}
	if c.password, err = conf.FieldString(smtpFieldPassword); err != nil {
		return nil, err
	}
	if c.password != "" && c.username == "" {
		return nil, fmt.Errorf("field %s is set but %s is empty", smtpFieldPassword, smtpFieldUsername)
	}
	// net/smtp would refuse at the first send anyway; failing at start
	// says why before any alert is held.
	if c.username != "" && c.tlsMode == smtpTLSNone && !smtpIsLocalhost(c.host) {
		return nil, fmt.Errorf("field %s: %s with tls: %s would send the password in clear text to %s; net/smtp allows that only to localhost: use starttls or tls", smtpFieldUsername, smtpFieldUsername, smtpTLSNone, c.host)
	}
	if c.from, err = conf.FieldInterpolatedString(smtpFieldFrom); err != nil {
		return nil, err
	}
	if c.to, err = conf.FieldInterpolatedStringList(smtpFieldTo); err != nil {
		return nil, err
	}
	if len(c.to) == 0 {
		return nil, fmt.Errorf("field %s: no recipient", smtpFieldTo)
	}
	if c.cc, err = conf.FieldInterpolatedStringList(smtpFieldCc); err != nil {
		return nil, err
	}
	if c.subject, err = conf.FieldInterpolatedString(smtpFieldSubject); err != nil {
		return nil, err
	}
	if c.body, err = conf.FieldInterpolatedString(smtpFieldBody); err != nil {
		return nil, err
	}
	if c.contentType, err = conf.FieldString(smtpFieldContentType); err != nil {
		return nil, err
	}
	if conf.Contains(smtpFieldMessageID) {
		if c.messageID, err = conf.FieldInterpolatedString(smtpFieldMessageID); err != nil {
			return nil, err
		}
	}
	if c.timeout, err = conf.FieldDuration(smtpFieldTimeout); err != nil {
		return nil, err
	}
	if c.timeout <= 0 {
		return nil, fmt.Errorf("field %s must be positive", smtpFieldTimeout)
	}
	if c.rateLimit, err = conf.FieldString(smtpFieldRateLimit); err != nil {
		return nil, err
	}
	if c.rateLimit != "" && !mgr.HasRateLimit(c.rateLimit) {
		return nil, fmt.Errorf("field %s: rate limit resource %q not found", smtpFieldRateLimit, c.rateLimit)
	}
	return c, nil
}

// smtpIsLocalhost is net/smtp's own test for sending PLAIN without TLS.
func smtpIsLocalhost(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

func newSMTPOutput(conf *service.ParsedConfig, mgr *service.Resources) (*smtpOutput, error) {
	c, err := parseSMTPConfig(conf, mgr)
	if err != nil {
		return nil, err
	}
	o := &smtpOutput{conf: c, mgr: mgr, log: mgr.Logger(), helo: "localhost"}
	// Some relays refuse an EHLO of localhost; the host name is what a
	// mail client would say.
	if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, "\r\n ") {
		o.helo = h
	}
	if c.username != "" {
		o.auth = smtp.PlainAuth("", c.username, c.password, c.host)
	}
	return o, nil
}

// smtpOutput sends one e-mail per Write, on its own connection.
type smtpOutput struct {
	conf *smtpConfig
	mgr  *service.Resources
	log  *service.Logger
	helo string
	auth smtp.Auth
	now  func() time.Time // the Date header; tests fix it
}

// smtpError is an error of Write: its kind is the prefix of its text.
type smtpError struct {
	kind string // smtpErrUnavailable, smtpErrRejected or smtpErrInvalid
	msg  string
	err  error
}

func (e *smtpError) Error() string {
	if e.err == nil {
		return e.kind + ": " + e.msg
	}
	return e.kind + ": " + e.msg + ": " + e.err.Error()
}

func (e *smtpError) Unwrap() error { return e.err }

func smtpInvalid(format string, args ...any) error {
	return &smtpError{kind: smtpErrInvalid, msg: fmt.Sprintf(format, args...)}
}

// smtpMail is one composed e-mail: the envelope and the bytes of DATA.
type smtpMail struct {
	from      string
	rcpts     []string
	messageID string
	data      []byte
}

// Connect does nothing: Write connects for each message.
func (o *smtpOutput) Connect(context.Context) error { return nil }

func (o *smtpOutput) Write(ctx context.Context, msg *service.Message) error {
	m, err := o.compose(msg)
	if err != nil {
		return err
	}
	if err := o.waitRateLimit(ctx); err != nil {
		return err
	}
	start := time.Now()
	if err := o.send(ctx, m); err != nil {
		return err
	}
	o.log.With("address", o.conf.address, "message_id", m.messageID, "recipients", len(m.rcpts), "duration", time.Since(start).String()).Debug("e-mail sent")
	return nil
}

func (o *smtpOutput) Close(context.Context) error { return nil }

// smtpInterpolate evaluates field's template for msg, refusing line breaks when
// the value goes into a header.
func smtpInterpolate(field string, s *service.InterpolatedString, msg *service.Message, header bool) (string, error) {
	v, err := s.TryString(msg)
	if err != nil {
		return "", &smtpError{kind: smtpErrInvalid, msg: "field " + field, err: err}
	}
	if header && strings.ContainsAny(v, "\r\n") {
		return "", smtpInvalid("field %s: %q contains a line break (header injection refused)", field, v)
	}
	return v, nil
}

// smtpAddresses interpolates a list field into addresses.
func smtpAddresses(field string, items []*service.InterpolatedString, msg *service.Message) ([]*mail.Address, error) {
	var out []*mail.Address
	for _, item := range items {
		v, err := smtpInterpolate(field, item, msg, true)
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(v) == "" {
			continue
		}
		list, err := mail.ParseAddressList(v)
		if err != nil {
			return nil, &smtpError{kind: smtpErrInvalid, msg: fmt.Sprintf("field %s: %q", field, v), err: err}
		}
		out = append(out, list...)
	}
	return out, nil
}

func (o *smtpOutput) compose(msg *service.Message) (*smtpMail, error) {
	c := o.conf
	fromText, err := smtpInterpolate(smtpFieldFrom, c.from, msg, true)
	if err != nil {
		return nil, err
	}
	from, err := mail.ParseAddress(fromText)
	if err != nil {
		return nil, &smtpError{kind: smtpErrInvalid, msg: fmt.Sprintf("field %s: %q", smtpFieldFrom, fromText), err: err}
	}
	to, err := smtpAddresses(smtpFieldTo, c.to, msg)
	if err != nil {
		return nil, err
	}
	if len(to) == 0 {
		return nil, smtpInvalid("field %s: no recipient", smtpFieldTo)
	}
	cc, err := smtpAddresses(smtpFieldCc, c.cc, msg)
	if err != nil {
		return nil, err
	}
	subject, err := smtpInterpolate(smtpFieldSubject, c.subject, msg, true)
	if err != nil {
		return nil, err
	}
	body, err := smtpInterpolate(smtpFieldBody, c.body, msg, false)
	if err != nil {
		return nil, err
	}
	var idLeft string
	if c.messageID != nil {
		v, err := smtpInterpolate(smtpFieldMessageID, c.messageID, msg, true)
		if err != nil {
			return nil, err
		}
		if v == "" {
			return nil, smtpInvalid("field %s is empty", smtpFieldMessageID)
		}
		idLeft = smtpMessageIDLeft(v)
	} else {
		raw, err := msg.AsBytes()
		if err != nil {
			return nil, &smtpError{kind: smtpErrInvalid, msg: "message content", err: err}
		}
		sum := sha256.Sum256(raw)
		idLeft = hex.EncodeToString(sum[:16])
	}
	messageID := "<" + idLeft + "@" + smtpMessageIDDomain(from.Address) + ">"

	now := time.Now
	if o.now != nil {
		now = o.now
	}
	var h strings.Builder
	smtpWriteHeader(&h, "From", from.String())
	smtpWriteHeader(&h, "To", smtpJoinAddresses(to))
	if len(cc) > 0 {
		smtpWriteHeader(&h, "Cc", smtpJoinAddresses(cc))
	}
	smtpWriteHeader(&h, "Subject", smtpEncodeSubject(subject))
	smtpWriteHeader(&h, "Date", now().Format(time.RFC1123Z))
	smtpWriteHeader(&h, "Message-ID", messageID)
	smtpWriteHeader(&h, "Auto-Submitted", "auto-generated")
	smtpWriteHeader(&h, "MIME-Version", "1.0")
	smtpWriteHeader(&h, "Content-Type", c.contentType+"; charset=utf-8")
	cte, encoded := smtpEncodeBody(body)
	smtpWriteHeader(&h, "Content-Transfer-Encoding", cte)
	h.WriteString("\r\n")

	m := &smtpMail{from: from.Address, messageID: messageID}
	seen := map[string]bool{}
	for _, a := range append(to, cc...) {
		if k := strings.ToLower(a.Address); !seen[k] {
			seen[k] = true
			m.rcpts = append(m.rcpts, a.Address)
		}
	}
	m.data = append([]byte(h.String()), encoded...)
	return m, nil
}

func smtpJoinAddresses(as []*mail.Address) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// smtpWriteHeader writes one header field, folded at spaces so that lines
// stay within 78 characters where the value allows (RFC 5322 2.1.1).
func smtpWriteHeader(b *strings.Builder, name, value string) {
	b.WriteString(name)
	b.WriteString(":")
	n := len(name) + 1
	for _, word := range strings.Split(value, " ") {
		// A fold may come right after the colon: "Subject:" CRLF " word"
		// is a valid line pair, and keeps an encoded word of 75 within 78.
		if word != "" && n+1+len(word) > 78 {
			b.WriteString("\r\n")
			n = 0
		}
		b.WriteString(" ")
		b.WriteString(word)
		n += 1 + len(word)
	}
	b.WriteString("\r\n")
}

// smtpEncodeSubject Q-encodes a subject that is not printable ASCII, or that
// holds "=?", which a client would take for an encoded word.
func smtpEncodeSubject(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 && s[i] != '\t' || s[i] > 0x7e {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	if strings.Contains(s, "=?") {
		return mime.QEncoding.Encode("utf-8", s)
	}
	return s
}

// smtpEncodeBody gives the body with CRLF line ends, the last line ended
// too: as it is (7bit) when it is ASCII with lines SMTP accepts (998
// octets), else quoted-printable.
func smtpEncodeBody(body string) (cte string, data []byte) {
	body = strings.ReplaceAll(body, "\r\n", "\n")
	body = strings.ReplaceAll(body, "\r", "\n")
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	plain := true
	for _, l := range lines {
		plain = plain && smtpIs7bitLine(l)
	}
	if plain {
		return "7bit", []byte(strings.Join(lines, "\r\n") + "\r\n")
	}
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	// Writes to a bytes.Buffer do not fail; the writer turns LF into CRLF.
	_, _ = w.Write([]byte(strings.Join(lines, "\n") + "\n"))
	_ = w.Close()
	return "quoted-printable", b.Bytes()
}

func smtpIs7bitLine(l string) bool {
	if len(l) > 998 {
		return false
	}
	for i := 0; i < len(l); i++ {
		if l[i] > 0x7e || l[i] < 0x20 && l[i] != '\t' {
			return false
		}
	}
	return true
}

// smtpMessageIDLeft makes v an id-left (RFC 5322 dot-atom-text): bytes
// other than letters, digits and the symbols atext allows are
// percent-encoded ('%' and '.' too, so the encoding is one-to-one and no dot
// can lead, trail or double).
func smtpMessageIDLeft(v string) string {
	const symbols = "!#$&'*+-/=?^_`{|}~"
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		ch := v[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte(symbols, ch) >= 0 {
			b.WriteByte(ch)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", ch)
	}
	return b.String()
}

// smtpMessageIDDomain is the id-right: the sender's domain when it is a
// plain host name.
func smtpMessageIDDomain(addr string) string {
	d := addr[strings.LastIndexByte(addr, '@')+1:]
	if d == "" || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
		return "claimx-connect"
	}
	for i := 0; i < len(d); i++ {
		ch := d[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.') {
			return "claimx-connect"
		}
	}
	return d
}

func (o *smtpOutput) waitRateLimit(ctx context.Context) error {
	if o.conf.rateLimit == "" {
		return nil
	}
	for {
		var wait time.Duration
		var rerr error
		if err := o.mgr.AccessRateLimit(ctx, o.conf.rateLimit, func(r service.RateLimit) {
			wait, rerr = r.Access(ctx)
		}); err != nil {
			return fmt.Errorf("access rate limit %s: %w", o.conf.rateLimit, err)
		}
		if rerr != nil {
			return fmt.Errorf("rate limit %s: %w", o.conf.rateLimit, rerr)
		}
		if wait <= 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

func (o *smtpOutput) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{}
	if o.conf.tlsMode == smtpTLSImplicit {
		td := &tls.Dialer{NetDialer: d, Config: o.conf.tlsConf.Clone()}
		return td.DialContext(ctx, "tcp", o.conf.address)
	}
	return d.DialContext(ctx, "tcp", o.conf.address)
}

// unavailable wraps a failure of the server or the network.
func (o *smtpOutput) unavailable(m *smtpMail, what string, err error) error {
	return &smtpError{kind: smtpErrUnavailable, msg: fmt.Sprintf("%s (server %s, message %s)", what, o.conf.address, m.messageID), err: err}
}

// reply classifies the server's answer to a step of the transaction: 5xx
// to MAIL FROM or to the content is the message's (rejected), anything
// else the server's.
func (o *smtpOutput) reply(m *smtpMail, what string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return &smtpError{kind: smtpErrRejected, msg: fmt.Sprintf("%s: %d %s; message %s not sent", what, te.Code, te.Msg, m.messageID)}
	}
	return o.unavailable(m, what, err)
}

func (o *smtpOutput) send(ctx context.Context, m *smtpMail) error {
	deadline := time.Now().Add(o.conf.timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	conn, err := o.dial(ctx)
	if err != nil {
		return o.unavailable(m, "connect", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	// A shutdown (ctx cancelled) unblocks a read or write in progress.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c, err := smtp.NewClient(conn, o.conf.host)
	if err != nil {
		return o.unavailable(m, "greeting", err)
	}
	defer c.Close()
	if err := c.Hello(o.helo); err != nil {
		return o.unavailable(m, "EHLO", err)
	}
	if o.conf.tlsMode == smtpTLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return o.unavailable(m, "STARTTLS", errors.New("the server does not offer STARTTLS (tls: none is only for a local relay)"))
		}
		if err := c.StartTLS(o.conf.tlsConf.Clone()); err != nil {
			return o.unavailable(m, "STARTTLS", err)
		}
	}
	if o.auth != nil {
		if ok, _ := c.Extension("AUTH"); !ok {
			return o.unavailable(m, "AUTH", errors.New("the server does not offer AUTH"))
		}
		if err := c.Auth(o.auth); err != nil {
			return o.unavailable(m, fmt.Sprintf("AUTH as %q", o.conf.username), err)
		}
	}
	if err := c.Mail(m.from); err != nil {
		return o.reply(m, fmt.Sprintf("MAIL FROM %q", m.from), err)
	}

	// Every recipient is tried so that the error names all refused ones.
	var refused []string
	permanent := false
	for _, r := range m.rcpts {
		err := c.Rcpt(r)
		if err == nil {
			continue
		}
		var te *textproto.Error
		if !errors.As(err, &te) {
			return o.unavailable(m, fmt.Sprintf("RCPT TO %q", r), err)
		}
		permanent = permanent || te.Code >= 500
		refused = append(refused, fmt.Sprintf("recipient %q: %d %s", r, te.Code, te.Msg))
	}
	if len(refused) > 0 {
		// All or none: the accepted recipients are not sent this copy.
		_ = c.Reset()
		_ = c.Quit()
		what := strings.Join(refused, "; ")
		if permanent {
			return &smtpError{kind: smtpErrRejected, msg: fmt.Sprintf("%s; message %s not sent to any recipient", what, m.messageID)}
		}
		return o.unavailable(m, "RCPT TO", errors.New(what))
	}

	w, err := c.Data()
	if err != nil {
		return o.reply(m, "DATA", err)
	}
	if _, err := w.Write(m.data); err != nil {
		return o.unavailable(m, "send content", err)
	}
	if err := w.Close(); err != nil {
		return o.reply(m, "content", err)
	}
	// The server has the message: a failed QUIT does not undo that, and
	// failing here would send it twice.
	_ = c.Quit()
	return nil
}
