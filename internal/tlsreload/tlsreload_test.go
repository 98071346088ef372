package tlsreload_test

import (
	"crypto/tls"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/firetower-go/firetower/internal/tlsreload"
	"github.com/firetower-go/firetower/internal/tlstest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLoadErrors(t *testing.T) {
	certFile, keyFile := tlstest.Files(t)
	if _, err := tlsreload.Load(certFile, ""); err == nil {
		t.Error("Load without a key file: no error")
	}
	if _, err := tlsreload.Load(certFile, keyFile); err == nil || !strings.Contains(err.Error(), certFile) {
		t.Errorf("Load of missing files: %v, want an error naming %s", err, certFile)
	}
	ca := tlstest.NewCA(t)
	ca.Issue(t, certFile, keyFile)
	otherCert, otherKey := tlstest.Files(t)
	ca.Issue(t, otherCert, otherKey)
	if _, err := tlsreload.Load(certFile, otherKey); err == nil {
		t.Error("Load of a key that does not match the certificate: no error")
	}
}

// A reload serves the new pair to new handshakes; a failed one keeps the
// old pair.
func TestReload(t *testing.T) {
	ca := tlstest.NewCA(t)
	certFile, keyFile := tlstest.Files(t)
	first := ca.Issue(t, certFile, keyFile)
	c, err := tlsreload.Load(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := serve(t, c, ca); got != first || c.Leaf().SerialNumber.Int64() != first {
		t.Fatalf("serial %d (leaf %v), want %d", got, c.Leaf().SerialNumber, first)
	}
	second := ca.Issue(t, certFile, keyFile)
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := serve(t, c, ca); got != second {
		t.Fatalf("after Reload: serial %d, want %d", got, second)
	}
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(); err == nil {
		t.Fatal("Reload of a bad file: no error")
	}
	if got := serve(t, c, ca); got != second {
		t.Fatalf("after a failed Reload: serial %d, want the old %d", got, second)
	}
}

// serve makes one TLS handshake over an in-memory pipe and returns the
// serial number the client saw.
func serve(t *testing.T, c *tlsreload.Certificate, ca *tlstest.CA) int64 {
	t.Helper()
	sc, cc := net.Pipe()
	srv := tls.Server(sc, c.Config())
	done := make(chan error, 1)
	go func() { done <- srv.Handshake() }()
	// Close the pipe, not the TLS connections: their close_notify would
	// wait for a reader.
	defer func() { _ = sc.Close(); _ = cc.Close() }()
	cfg := ca.ClientConfig()
	cfg.ServerName = "localhost"
	cli := tls.Client(cc, cfg)
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return tlstest.Serial(cli.ConnectionState())
}
