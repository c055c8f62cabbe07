package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// selfSignedCert returns a server certificate for 127.0.0.1 and its PEM.
func selfSignedCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kfake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestKafkaFranzTLS connects to a TLS listener with the CA given inline, as a
// file, and with verification skipped; without TLS or without the CA the
// connection fails.
func TestKafkaFranzTLS(t *testing.T) {
	cert, caPEM := selfSignedCert(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "tls"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte(caPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	indented := strings.ReplaceAll(strings.TrimSpace(caPEM), "\n", "\n    ")

	tests := []struct {
		name    string
		tls     string
		connect bool
	}{
		{name: "inline root_cas", tls: "tls:\n  enabled: true\n  root_cas: |\n    " + indented + "\n", connect: true},
		{name: "root_cas_file", tls: "tls:\n  enabled: true\n  root_cas_file: " + caFile + "\n", connect: true},
		{name: "skip_cert_verify", tls: "tls:\n  enabled: true\n  skip_cert_verify: true\n", connect: true},
		{name: "unknown CA", tls: "tls:\n  enabled: true\n"},
		{name: "no TLS", tls: ""},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			pConf, err := franzKafkaOutputSpec().ParseYAML(fmt.Sprintf("seed_brokers: [ %s ]\ntopic: tls\ntimeout: 2s\n%s", addr, test.tls), nil)
			if err != nil {
				t.Fatalf("parsing config: %v", err)
			}
			w, err := newFranzWriterFromConfig(pConf, service.MockResources())
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = w.Close(context.Background()) }()
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			err = w.Connect(ctx)
			if !test.connect {
				if err == nil {
					t.Fatal("connected, want a failure")
				}
				return
			}
			if err != nil {
				t.Fatalf("connecting: %v", err)
			}
			if err := w.WriteBatch(t.Context(), service.MessageBatch{service.NewMessage([]byte("over tls"))}); err != nil {
				t.Fatalf("writing: %v", err)
			}
		})
	}
}
