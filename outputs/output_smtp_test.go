package outputs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// ---------------------------------------------------------------------------
// An SMTP server stand-in: enough of RFC 5321 (EHLO, STARTTLS, AUTH PLAIN,
// MAIL, RCPT, DATA, RSET, QUIT) to deliver to, with failures on demand.

type standInOpts struct {
	implicitTLS bool           // TLS from the first byte
	noStartTLS  bool           // do not offer STARTTLS
	user, pass  string         // AUTH PLAIN credentials, required before MAIL; "": no AUTH
	reject      map[string]int // recipient → reply code to its RCPT
	failFirst   int            // the first failFirst connections fail with failCode:
	failCode    int            // 421 at the greeting, 451 at the end of DATA
	silent      bool           // accept and never answer
}

// standInMail is one DATA the stand-in read, delivered (code 250) or not.
type standInMail struct {
	tls   bool
	user  string
	from  string
	rcpts []string
	data  string // as read: dot-unstuffed, LF line ends
	code  int
}

type standIn struct {
	addr string
	tls  *tls.Config

	mu    sync.Mutex
	opts  standInOpts
	conns int
	mails []standInMail
	cmds  []string // every command verb, in order, across connections
}

// startStandIn serves on addr ("127.0.0.1:0" for any port) until the test ends.
func startStandIn(t *testing.T, addr string, cert tls.Certificate, opts standInOpts) *standIn {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &standIn{addr: ln.Addr().String(), tls: &tls.Config{Certificates: []tls.Certificate{cert}}, opts: opts}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return s
}

func (s *standIn) set(fn func(*standInOpts)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.opts)
}

func (s *standIn) snapshot() (conns int, mails []standInMail, cmds []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, append([]standInMail(nil), s.mails...), append([]string(nil), s.cmds...)
}

func (s *standIn) delivered() []standInMail {
	_, mails, _ := s.snapshot()
	var out []standInMail
	for _, m := range mails {
		if m.code == 250 {
			out = append(out, m)
		}
	}
	return out
}

func (s *standIn) serve(c net.Conn) {
	s.mu.Lock()
	s.conns++
	n := s.conns
	o := s.opts
	s.mu.Unlock()
	failing := n <= o.failFirst

	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if o.silent {
		_, _ = io.Copy(io.Discard, c)
		return
	}
	secure := false
	if o.implicitTLS {
		c = tls.Server(c, s.tls)
		secure = true
	}
	tp := textproto.NewConn(c)
	if failing && o.failCode == 421 {
		_ = tp.PrintfLine("421 4.3.2 service not available, closing channel")
		return
	}
	_ = tp.PrintfLine("220 standin.test ESMTP")
	var mail standInMail
	user := ""
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		s.mu.Lock()
		s.cmds = append(s.cmds, verb)
		s.mu.Unlock()
		switch verb {
		case "EHLO":
			ext := []string{"standin.test"}
			if !secure && !o.noStartTLS {
				ext = append(ext, "STARTTLS")
			}
			if o.user != "" {
				ext = append(ext, "AUTH PLAIN")
			}
			for i, e := range ext {
				sep := "-"
				if i == len(ext)-1 {
					sep = " "
				}
				_ = tp.PrintfLine("250%s%s", sep, e)
			}
		case "STARTTLS":
			if secure || o.noStartTLS {
				_ = tp.PrintfLine("502 5.5.1 not offered")
				continue
			}
			_ = tp.PrintfLine("220 2.0.0 ready to start TLS")
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, tp, secure = tc, textproto.NewConn(tc), true
			mail, user = standInMail{}, ""
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			if !strings.EqualFold(mech, "PLAIN") || o.user == "" {
				_ = tp.PrintfLine("504 5.5.4 mechanism not supported")
				continue
			}
			if resp == "" {
				_ = tp.PrintfLine("334 ")
				if resp, err = tp.ReadLine(); err != nil {
					return
				}
			}
			raw, _ := base64.StdEncoding.DecodeString(resp)
			parts := strings.Split(string(raw), "\x00")
			if len(parts) != 3 || parts[1] != o.user || parts[2] != o.pass {
				_ = tp.PrintfLine("535 5.7.8 authentication credentials invalid")
				continue
			}
			user = parts[1]
			_ = tp.PrintfLine("235 2.7.0 authentication successful")
		case "MAIL":
			if o.user != "" && user == "" {
				_ = tp.PrintfLine("530 5.7.0 authentication required")
				continue
			}
			mail = standInMail{tls: secure, user: user, from: standInPath(arg)}
			_ = tp.PrintfLine("250 2.1.0 ok")
		case "RCPT":
			r := standInPath(arg)
			if code := o.reject[r]; code != 0 {
				_ = tp.PrintfLine("%d 5.1.1 <%s>: no such user", code, r)
				continue
			}
			mail.rcpts = append(mail.rcpts, r)
			_ = tp.PrintfLine("250 2.1.5 ok")
		case "DATA":
			if mail.from == "" || len(mail.rcpts) == 0 {
				_ = tp.PrintfLine("503 5.5.1 no valid recipients")
				continue
			}
			_ = tp.PrintfLine("354 end data with <CR><LF>.<CR><LF>")
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			mail.data, mail.code = string(data), 250
			if failing && o.failCode == 451 {
				mail.code = 451
			}
			s.mu.Lock()
			s.mails = append(s.mails, mail)
			s.mu.Unlock()
			if mail.code == 451 {
				_ = tp.PrintfLine("451 4.3.0 try again later")
			} else {
				_ = tp.PrintfLine("250 2.0.0 queued as %d", n)
			}
			mail = standInMail{tls: secure, user: user}
		case "RSET":
			mail = standInMail{tls: secure, user: user}
			_ = tp.PrintfLine("250 2.0.0 ok")
		case "NOOP":
			_ = tp.PrintfLine("250 2.0.0 ok")
		case "QUIT":
			_ = tp.PrintfLine("221 2.0.0 bye")
			return
		default:
			_ = tp.PrintfLine("502 5.5.2 command not recognized")
		}
	}
}

// standInPath is the address of "FROM:<a@b> BODY=8BITMIME" or "TO:<a@b>".
func standInPath(arg string) string {
	_, rest, _ := strings.Cut(arg, "<")
	addr, _, _ := strings.Cut(rest, ">")
	return addr
}

// testCert is a self-signed certificate for 127.0.0.1 and localhost, and a
// PEM file of it to trust.
func testCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "standin.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, caFile
}

// ---------------------------------------------------------------------------

const testAlert = `{"alert_id":"5423723:evt_3:completed","rule":"completed","severity":"info","assignment_id":"5423723","project_id":"4895140","task_id":32513,"from_status":"IN_PROGRESS","to_status":"COMPLETED","event_id":"evt_3","event_time":"2026-01-10T22:30:06.243000Z","summary":"iTel Cabinet assignment 5423723 (project 4895140) completed: IN_PROGRESS to COMPLETED"}`

var testDate = time.Date(2026, 1, 10, 22, 30, 7, 0, time.UTC)

func newTestSMTP(t *testing.T, yaml string, mgr *service.Resources) (*smtpOutput, error) {
	t.Helper()
	conf, err := smtpOutputSpec().ParseYAML(yaml, nil)
	if err != nil {
		t.Fatalf("parse config: %v\n%s", err, yaml)
	}
	if mgr == nil {
		mgr = service.MockResources()
	}
	o, err := newSMTPOutput(conf, mgr)
	if err != nil {
		return nil, err
	}
	o.now = func() time.Time { return testDate }
	return o, nil
}

// parsedMail is a delivered message read back as a recipient's client would.
type parsedMail struct {
	header  mail.Header
	subject string // decoded
	body    string // transfer-decoded, LF line ends
}

func parseMail(t *testing.T, data string) parsedMail {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("decode subject %q: %v", m.Header.Get("Subject"), err)
	}
	var body io.Reader = m.Body
	switch cte := m.Header.Get("Content-Transfer-Encoding"); cte {
	case "quoted-printable":
		body = quotedprintable.NewReader(m.Body)
	case "7bit":
	default:
		t.Fatalf("Content-Transfer-Encoding %q", cte)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return parsedMail{header: m.Header, subject: subject, body: strings.ReplaceAll(string(b), "\r\n", "\n")}
}

func assertEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestSMTPOutputWrite(t *testing.T) {
	cert, caFile := testCert(t)
	type write struct {
		content string
		err     []string // substrings of the error; nil: success
		kind    string   // the error's kind
	}
	tests := []struct {
		name   string
		server standInOpts
		config string // after address (and root_cas_file)
		writes []write
		check  func(t *testing.T, s *standIn)
	}{
		{
			name:   "starttls and auth, 451 then delivered with the same Message-ID",
			server: standInOpts{user: "alerts", pass: "s3cret", failFirst: 1, failCode: 451},
			config: `
tls: starttls
username: alerts
password: s3cret
from: iTel Cabinet alerts <alerts@example.com>
to: [ "ops@example.com, Night Shift <oncall@example.com>" ]
cc: [ "ops@example.com", "${! json(\"cc\").or(\"\") }" ]
subject: '[${! json("rule") }] assignment ${! json("assignment_id") }'
message_id: ${! json("alert_id") }
body: |
  ${! json("summary") }
  Event: ${! json("event_id") }
`,
			writes: []write{
				{content: testAlert, err: []string{"451", "try again later", "<5423723%3Aevt_3%3Acompleted@example.com>"}, kind: smtpErrUnavailable},
				{content: testAlert},
			},
			check: func(t *testing.T, s *standIn) {
				_, mails, _ := s.snapshot()
				if len(mails) != 2 {
					t.Fatalf("%d DATA transactions, want 2", len(mails))
				}
				first, second := parseMail(t, mails[0].data), parseMail(t, mails[1].data)
				assertEqual(t, "Message-ID of the retry", second.header.Get("Message-ID"), first.header.Get("Message-ID"))
				d := s.delivered()
				if len(d) != 1 {
					t.Fatalf("%d delivered, want 1", len(d))
				}
				m := d[0]
				assertEqual(t, "TLS", m.tls, true)
				assertEqual(t, "AUTH user", m.user, "alerts")
				assertEqual(t, "MAIL FROM", m.from, "alerts@example.com")
				assertEqual(t, "RCPT TO", strings.Join(m.rcpts, " "), "ops@example.com oncall@example.com")
				p := parseMail(t, m.data)
				for h, want := range map[string]string{
					"From":                      `"iTel Cabinet alerts" <alerts@example.com>`,
					"To":                        `<ops@example.com>, "Night Shift" <oncall@example.com>`,
					"Cc":                        `<ops@example.com>`,
					"Subject":                   "[completed] assignment 5423723",
					"Date":                      "Sat, 10 Jan 2026 22:30:07 +0000",
					"Message-ID":                "<5423723%3Aevt_3%3Acompleted@example.com>",
					"MIME-Version":              "1.0",
					"Content-Type":              "text/plain; charset=utf-8",
					"Content-Transfer-Encoding": "7bit",
					"Auto-Submitted":            "auto-generated",
				} {
					assertEqual(t, h, p.header.Get(h), want)
				}
				assertEqual(t, "body", p.body, "iTel Cabinet assignment 5423723 (project 4895140) completed: IN_PROGRESS to COMPLETED\nEvent: evt_3\n")
			},
		},
		{
			name:   "implicit TLS, default body, Message-ID from the content stable across a retry",
			server: standInOpts{implicitTLS: true, failFirst: 1, failCode: 451},
			config: `
tls: tls
from: alerts@example.com
to: [ ops@example.com ]
subject: alert
`,
			writes: []write{
				{content: "plain text alert", err: []string{"451"}, kind: smtpErrUnavailable},
				{content: "plain text alert"},
			},
			check: func(t *testing.T, s *standIn) {
				_, mails, _ := s.snapshot()
				if len(mails) != 2 {
					t.Fatalf("%d DATA transactions, want 2", len(mails))
				}
				first, second := parseMail(t, mails[0].data), parseMail(t, mails[1].data)
				id := second.header.Get("Message-ID")
				assertEqual(t, "Message-ID of the retry", id, first.header.Get("Message-ID"))
				if !strings.HasSuffix(id, "@example.com>") || len(id) != len("<@example.com>")+32 {
					t.Errorf("Message-ID %q, want a 32-digit hash at example.com", id)
				}
				assertEqual(t, "TLS", mails[1].tls, true)
				assertEqual(t, "body", second.body, "plain text alert\n")
			},
		},
		{
			name:   "421 at the greeting twice, then delivered",
			server: standInOpts{failFirst: 2, failCode: 421},
			config: `
from: alerts@example.com
to: [ ops@example.com ]
subject: alert
`,
			writes: []write{
				{content: "a", err: []string{"greeting", "421", "service not available"}, kind: smtpErrUnavailable},
				{content: "a", err: []string{"421"}, kind: smtpErrUnavailable},
				{content: "a"},
			},
			check: func(t *testing.T, s *standIn) {
				conns, _, _ := s.snapshot()
				assertEqual(t, "connections", conns, 3)
				assertEqual(t, "delivered", len(s.delivered()), 1)
			},
		},
		{
			name:   "550 for a recipient names it, and no recipient gets the message",
			server: standInOpts{reject: map[string]int{"nobody@example.com": 550}},
			config: `
from: alerts@example.com
to: [ ops@example.com, nobody@example.com ]
subject: alert
message_id: a-1
`,
			writes: []write{
				{content: "a", err: []string{`recipient "nobody@example.com": 550 5.1.1 <nobody@example.com>: no such user`, "not sent to any recipient", "<a-1@example.com>"}, kind: smtpErrRejected},
			},
			check: func(t *testing.T, s *standIn) {
				_, mails, cmds := s.snapshot()
				assertEqual(t, "DATA transactions", len(mails), 0)
				if !strings.Contains(strings.Join(cmds, " "), "RCPT RCPT RSET QUIT") {
					t.Errorf("commands %v, want both RCPTs then RSET and QUIT", cmds)
				}
			},
		},
		{
			name:   "a 4xx for a recipient is the server's",
			server: standInOpts{reject: map[string]int{"ops@example.com": 450}},
			config: `
from: alerts@example.com
to: [ ops@example.com ]
subject: alert
`,
			writes: []write{{content: "a", err: []string{`recipient "ops@example.com": 450`}, kind: smtpErrUnavailable}},
		},
		{
			name: "line break in the subject is refused before connecting",
			config: `
from: alerts@example.com
to: [ ops@example.com ]
subject: '${! json("s") }'
`,
			writes: []write{{content: `{"s":"hello\r\nBcc: victim@example.org"}`, err: []string{"field subject", "line break", "header injection"}, kind: smtpErrInvalid}},
			check: func(t *testing.T, s *standIn) {
				conns, _, _ := s.snapshot()
				assertEqual(t, "connections", conns, 0)
			},
		},
		{
			name: "line break in a recipient is refused",
			config: `
from: alerts@example.com
to: [ '${! json("to") }' ]
subject: alert
`,
			writes: []write{{content: `{"to":"ops@example.com\nBcc: victim@example.org"}`, err: []string{"field to", "header injection"}, kind: smtpErrInvalid}},
		},
		{
			name: "an address that does not parse names the field and the value",
			config: `
from: alerts@example.com
to: [ ops@example.com ]
cc: [ '${! json("cc") }' ]
subject: alert
`,
			writes: []write{{content: `{"cc":"not an address"}`, err: []string{`field cc: "not an address"`}, kind: smtpErrInvalid}},
		},
		{
			name: "a template that fails names the field",
			config: `
from: alerts@example.com
to: [ ops@example.com ]
subject: '${! json("a").number() }'
`,
			writes: []write{{content: `{"a":"x"}`, err: []string{"field subject"}, kind: smtpErrInvalid}},
		},
		{
			name: "an empty message_id is refused",
			config: `
from: alerts@example.com
to: [ ops@example.com ]
subject: alert
message_id: '${! json("id").or("") }'
`,
			writes: []write{{content: `{}`, err: []string{"field message_id is empty"}, kind: smtpErrInvalid}},
		},
		{
			name: "non-ASCII subject Q-encoded, body quoted-printable, HTML",
			config: `
from: Équipe <alerts@example.com>
to: [ ops@example.com ]
subject: 'Zuweisung ${! json("id") } für Müller — erledigt'
content_type: text/html
body: '<p>${! json("id") } → fertig</p>'
`,
			writes: []write{{content: `{"id":"5423723"}`}},
			check: func(t *testing.T, s *standIn) {
				d := s.delivered()
				if len(d) != 1 {
					t.Fatalf("%d delivered, want 1", len(d))
				}
				p := parseMail(t, d[0].data)
				raw := p.header.Get("Subject")
				if !strings.HasPrefix(raw, "=?utf-8?q?") {
					t.Errorf("Subject %q is not Q-encoded", raw)
				}
				assertEqual(t, "Subject", p.subject, "Zuweisung 5423723 für Müller — erledigt")
				from, err := p.header.AddressList("From")
				if err != nil || len(from) != 1 || from[0].Name != "Équipe" {
					t.Errorf("From %v (%v), want Équipe", from, err)
				}
				assertEqual(t, "Content-Type", p.header.Get("Content-Type"), "text/html; charset=utf-8")
				assertEqual(t, "Content-Transfer-Encoding", p.header.Get("Content-Transfer-Encoding"), "quoted-printable")
				assertEqual(t, "body", p.body, "<p>5423723 → fertig</p>\n")
			},
		},
		{
			name:   "starttls required but not offered",
			server: standInOpts{noStartTLS: true},
			config: `
from: alerts@example.com
to: [ ops@example.com ]
subject: alert
`,
			writes: []write{{content: "a", err: []string{"does not offer STARTTLS"}, kind: smtpErrUnavailable}},
			check: func(t *testing.T, s *standIn) {
				_, _, cmds := s.snapshot()
				assertEqual(t, "commands", strings.Join(cmds, " "), "EHLO")
			},
		},
		{
			name:   "wrong password holds",
			server: standInOpts{user: "alerts", pass: "right"},
			config: `
username: alerts
password: wrong
from: alerts@example.com
to: [ ops@example.com ]
subject: alert
`,
			writes: []write{{content: "a", err: []string{`AUTH as "alerts"`, "535"}, kind: smtpErrUnavailable}},
		},
		{
			name:   "a local relay without TLS, with AUTH",
			server: standInOpts{noStartTLS: true, user: "relay", pass: "pw"},
			config: `
tls: none
username: relay
password: pw
from: alerts@example.com
to: [ ops@example.com ]
subject: alert
`,
			writes: []write{{content: "a"}},
			check: func(t *testing.T, s *standIn) {
				d := s.delivered()
				if len(d) != 1 {
					t.Fatalf("%d delivered, want 1", len(d))
				}
				assertEqual(t, "TLS", d[0].tls, false)
				assertEqual(t, "AUTH user", d[0].user, "relay")
			},
		},
		{
			name:   "dot-stuffing and long lines survive",
			server: standInOpts{},
			config: `
from: alerts@example.com
to: [ ops@example.com ]
subject: alert
`,
			writes: []write{{content: ".\n..leading dots\r\n" + strings.Repeat("x", 1200) + "\rend"}},
			check: func(t *testing.T, s *standIn) {
				d := s.delivered()
				if len(d) != 1 {
					t.Fatalf("%d delivered, want 1", len(d))
				}
				p := parseMail(t, d[0].data)
				assertEqual(t, "Content-Transfer-Encoding", p.header.Get("Content-Transfer-Encoding"), "quoted-printable")
				assertEqual(t, "body", p.body, ".\n..leading dots\n"+strings.Repeat("x", 1200)+"\nend\n")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startStandIn(t, "127.0.0.1:0", cert, tt.server)
			o, err := newTestSMTP(t, fmt.Sprintf("address: %s\nroot_cas_file: %s\n%s", s.addr, caFile, tt.config), nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range tt.writes {
				err := o.Write(t.Context(), service.NewMessage([]byte(w.content)))
				if w.err == nil {
					if err != nil {
						t.Fatalf("write %d: %v", i, err)
					}
					continue
				}
				if err == nil {
					t.Fatalf("write %d succeeded, want an error with %q", i, w.err)
				}
				for _, sub := range w.err {
					if !strings.Contains(err.Error(), sub) {
						t.Errorf("write %d: error %q does not contain %q", i, err, sub)
					}
				}
				var se *smtpError
				if !errors.As(err, &se) || se.kind != w.kind || !strings.HasPrefix(err.Error(), w.kind+": ") {
					t.Errorf("write %d: error %q is not of kind %q", i, err, w.kind)
				}
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

// The server down (nothing listening) and then up: the first Write fails
// and says so, the second delivers.
func TestSMTPOutputServerDownThenUp(t *testing.T) {
	cert, caFile := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()

	o, err := newTestSMTP(t, fmt.Sprintf(`
address: %s
root_cas_file: %s
from: alerts@example.com
to: [ ops@example.com ]
subject: alert
`, addr, caFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = o.Write(t.Context(), service.NewMessage([]byte("a")))
	if err == nil || !strings.HasPrefix(err.Error(), smtpErrUnavailable+": connect") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("write with the server down: %v, want smtp unavailable: connect … refused", err)
	}
	s := startStandIn(t, addr, cert, standInOpts{})
	if err := o.Write(t.Context(), service.NewMessage([]byte("a"))); err != nil {
		t.Fatalf("write with the server up: %v", err)
	}
	assertEqual(t, "delivered", len(s.delivered()), 1)
}

// timeout bounds the whole exchange, and a cancelled context ends it.
func TestSMTPOutputTimeout(t *testing.T) {
	cert, _ := testCert(t)
	tests := []struct {
		name    string
		timeout string
		cancel  time.Duration // cancel the context after this; 0: never
		want    string
	}{
		{name: "timeout", timeout: "300ms", want: "i/o timeout"},
		{name: "cancelled", timeout: "30s", cancel: 200 * time.Millisecond, want: "greeting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startStandIn(t, "127.0.0.1:0", cert, standInOpts{silent: true})
			o, err := newTestSMTP(t, fmt.Sprintf(`
address: %s
timeout: %s
from: alerts@example.com
to: [ ops@example.com ]
subject: alert
`, s.addr, tt.timeout), nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			if tt.cancel > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.cancel)
				defer cancel()
			}
			start := time.Now()
			err = o.Write(ctx, service.NewMessage([]byte("a")))
			if err == nil || !strings.HasPrefix(err.Error(), smtpErrUnavailable) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want smtp unavailable with %q", err, tt.want)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("write took %v", d)
			}
		})
	}
}

// The rate limit is waited on before each e-mail.
func TestSMTPOutputRateLimit(t *testing.T) {
	cert, _ := testCert(t)
	s := startStandIn(t, "127.0.0.1:0", cert, standInOpts{noStartTLS: true})
	var mu sync.Mutex
	calls := 0
	mgr := service.MockResources(service.MockResourcesOptAddRateLimit("email_rate", func(context.Context) (time.Duration, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls%2 == 1 {
			return 150 * time.Millisecond, nil
		}
		return 0, nil
	}))
	o, err := newTestSMTP(t, fmt.Sprintf(`
address: %s
tls: none
from: alerts@example.com
to: [ ops@example.com ]
subject: alert
rate_limit: email_rate
`, s.addr), mgr)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 2 {
		if err := o.Write(t.Context(), service.NewMessage([]byte("a"))); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("2 e-mails in %v, want the rate limit's 2×150ms waits", d)
	}
	assertEqual(t, "rate limit calls", calls, 4)
	assertEqual(t, "delivered", len(s.delivered()), 2)
}

func TestSMTPOutputConfigErrors(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, []byte("no pem here"), 0o600); err != nil {
		t.Fatal(err)
	}
	const base = "\nfrom: a@example.com\nto: [ b@example.com ]\nsubject: s\n"
	tests := []struct {
		name   string
		config string
		want   string
	}{
		{"password in clear to a remote host", "address: smtp.example.com:25\ntls: none\nusername: u\npassword: p" + base, "clear text"},
		{"password without user", "address: localhost:25\npassword: p" + base, "field password is set but username is empty"},
		{"address without port", "address: smtp.example.com" + base, "field address"},
		{"no PEM in root_cas_file", "address: localhost:25\nroot_cas_file: " + empty + base, "no PEM certificate"},
		{"unknown rate limit", "address: localhost:25\nrate_limit: nope" + base, `rate limit resource "nope" not found`},
		{"no recipient", "address: localhost:25\nfrom: a@example.com\nto: []\nsubject: s\n", "no recipient"},
		{"zero timeout", "address: localhost:25\ntimeout: 0s" + base, "timeout must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newTestSMTP(t, tt.config, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
	// A local relay may take a password in clear: net/smtp allows it.
	if _, err := newTestSMTP(t, "address: 127.0.0.1:25\ntls: none\nusername: u\npassword: p"+base, nil); err != nil {
		t.Errorf("local relay: %v", err)
	}
}

func TestSMTPMessageIDLeft(t *testing.T) {
	tests := []struct{ in, want string }{
		{"5423723:evt_3:completed", "5423723%3Aevt_3%3Acompleted"},
		{"a.b", "a%2Eb"},
		{"50%", "50%25"},
		{"<x@y>", "%3Cx%40y%3E"},
		{"ü", "%C3%BC"},
		{"ok-1_2+3", "ok-1_2+3"},
	}
	for _, tt := range tests {
		assertEqual(t, tt.in, smtpMessageIDLeft(tt.in), tt.want)
	}
	for addr, want := range map[string]string{
		"a@example.com": "example.com", "a@[10.0.0.1]": "claimx-connect", "a@bücher.de": "claimx-connect",
	} {
		assertEqual(t, addr, smtpMessageIDDomain(addr), want)
	}
}

// Header lines end in CRLF and are folded within 78 characters, and a
// folded header unfolds to what was written.
func TestSMTPComposeHeaders(t *testing.T) {
	var to []string
	for i := range 12 {
		to = append(to, fmt.Sprintf("Recipient Number %d <recipient%d@example.com>", i, i))
	}
	o, err := newTestSMTP(t, fmt.Sprintf(`
address: localhost:25
from: alerts@example.com
to: [ %q ]
subject: '%s'
`, strings.Join(to, ", "), strings.Repeat("Überwachung ", 20)), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := o.compose(service.NewMessage([]byte("line 1\nline 2")))
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := strings.Cut(string(m.data), "\r\n\r\n")
	if !ok {
		t.Fatalf("no blank line after the header:\n%s", m.data)
	}
	assertEqual(t, "body", body, "line 1\r\nline 2\r\n")
	for _, l := range strings.Split(head, "\r\n") {
		if len(l) > 78 {
			t.Errorf("header line of %d characters: %q", len(l), l)
		}
		if strings.ContainsAny(l, "\r\n") {
			t.Errorf("bare CR or LF in %q", l)
		}
	}
	assertEqual(t, "recipients", len(m.rcpts), 12)
	p := parseMail(t, string(m.data))
	assertEqual(t, "Subject", p.subject, strings.Repeat("Überwachung ", 20))
	got, err := p.header.AddressList("To")
	if err != nil || len(got) != 12 || got[11].Address != "recipient11@example.com" {
		t.Errorf("To %v (%v)", got, err)
	}
}

// ---------------------------------------------------------------------------
// Through benthos: the spec's examples run as streams.

// runStream runs a whole config until it ends by itself (the generate
// input's count) or the test's deadline.
func runStream(t *testing.T, env map[string]string, yaml string) {
	t.Helper()
	b := service.NewStreamBuilder()
	b.SetEnvVarLookupFunc(lookupIn(env))
	if err := b.SetYAML(yaml); err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	if err := b.SetLoggerYAML("level: warn"); err != nil {
		t.Fatal(err)
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("stream: %v", err)
	}
}

// The alert example: a stand-in with STARTTLS and AUTH that answers 451 to
// the first two attempts. The generate input's one alert is retried until
// it is delivered, then the stream ends.
func TestSMTPExampleAlertStream(t *testing.T) {
	cert, caFile := testCert(t)
	s := startStandIn(t, "127.0.0.1:0", cert, standInOpts{user: "alerts", pass: "s3cret", failFirst: 2, failCode: 451})
	env := map[string]string{
		"SMTP_ADDRESS": s.addr, "SMTP_ROOT_CAS_FILE": caFile, "SMTP_USERNAME": "alerts", "SMTP_PASSWORD": "s3cret",
		"ALERTS_EMAIL_TO": "ops@example.com, Night Shift <oncall@example.com>", "ALERTS_EMAIL_PER_SECOND": "100",
	}
	runStream(t, env, fmt.Sprintf(`
input:
  generate:
    count: 1
    interval: ""
    mapping: 'root = %s'
`, testAlert)+smtpExampleAlert)

	_, mails, _ := s.snapshot()
	if len(mails) != 3 {
		t.Fatalf("%d DATA transactions, want 3 (two 451, one delivery)", len(mails))
	}
	d := s.delivered()
	if len(d) != 1 {
		t.Fatalf("%d delivered, want 1", len(d))
	}
	assertEqual(t, "RCPT TO", strings.Join(d[0].rcpts, " "), "ops@example.com oncall@example.com")
	assertEqual(t, "AUTH over TLS", d[0].tls && d[0].user == "alerts", true)
	p := parseMail(t, d[0].data)
	for _, m := range mails {
		assertEqual(t, "Message-ID of each attempt", parseMail(t, m.data).header.Get("Message-ID"), "<5423723%3Aevt_3%3Acompleted@example.com>")
	}
	assertEqual(t, "Subject", p.subject, "[completed] assignment 5423723")
	assertEqual(t, "From", p.header.Get("From"), `"iTel Cabinet alerts" <alerts@example.com>`)
	want := `iTel Cabinet assignment 5423723 (project 4895140) completed: IN_PROGRESS to COMPLETED

Rule:        completed (info)
Assignment:  5423723 (project 4895140, task 32513)
Status:      IN_PROGRESS → COMPLETED
Event:       evt_3 at 2026-01-10T22:30:06.243000Z
Alert:       5423723:evt_3:completed
`
	assertEqual(t, "body", p.body, want)
}

// The fallback example: a refused recipient is let go (logged and
// acknowledged, not delivered), while a 451 still fails the message so its
// producer (the input) retries it.
func TestSMTPExampleFallbackStream(t *testing.T) {
	cert, caFile := testCert(t)
	s := startStandIn(t, "127.0.0.1:0", cert, standInOpts{reject: map[string]int{"ops@example.com": 550}})

	b := service.NewStreamBuilder()
	b.SetEnvVarLookupFunc(lookupIn(map[string]string{
		"SMTP_ADDRESS": s.addr, "SMTP_ROOT_CAS_FILE": caFile, "ALERTS_EMAIL_TO": "ops@example.com",
	}))
	if err := b.SetYAML(smtpExampleFallback); err != nil {
		t.Fatal(err)
	}
	produce, err := b.AddProducerFunc()
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	b.SetLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError})))
	st, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	defer func() {
		_ = st.Stop(ctx)
		<-done
	}()

	if err := produce(ctx, service.NewMessage([]byte(testAlert))); err != nil {
		t.Fatalf("a refused recipient: %v, want the message let go", err)
	}
	assertEqual(t, "delivered after the 550", len(s.delivered()), 0)
	for _, want := range []string{"alert e-mail not sent: smtp rejected", `recipient \"ops@example.com\": 550`, "alert_id=5423723:evt_3:completed"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log has no %q:\n%s", want, logs.String())
		}
	}

	// The recipient fixed, the server busy for one transaction.
	s.set(func(o *standInOpts) {
		o.reject = nil
		o.failFirst, o.failCode = 2, 451
	})
	err = produce(ctx, service.NewMessage([]byte(testAlert)))
	if err == nil || !strings.Contains(err.Error(), smtpErrUnavailable) || !strings.Contains(err.Error(), "451") {
		t.Fatalf("a 451: %v, want the message failed with smtp unavailable … 451", err)
	}
	assertEqual(t, "delivered after the 451", len(s.delivered()), 0)
	if err := produce(ctx, service.NewMessage([]byte(testAlert))); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	assertEqual(t, "delivered after the retry", len(s.delivered()), 1)
}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// syncBuffer is a bytes.Buffer the stream's goroutines may log to.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
