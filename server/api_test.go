package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firetower-go/firetower/pushapi/pb"
	"github.com/firetower-go/firetower/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// apiStatus calls GET /api/info with key (none if empty).
func apiStatus(t *testing.T, client *http.Client, base, key string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/api/info", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s/api/info: %v", base, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// Without a key and without --api-insecure the API is not open: a random
// key is generated and logged once, and only that key gets in.
func TestAPIKeyGenerated(t *testing.T) {
	var logs lockedBuffer
	ts := startServer(t, server.Config{Gateway: gatewayConfig("", slog.New(slog.NewTextHandler(&logs, nil)))})
	key := ts.srv.APIKey()
	if len(key) < 40 {
		t.Fatalf("generated key %q is too short", key)
	}
	if n := strings.Count(logs.String(), key); n != 1 {
		t.Errorf("the key appears %d times in the log, want once:\n%s", n, logs.String())
	}
	if !regexp.MustCompile(`level=WARN msg="no API key configured[^"]*" apiKey=` + regexp.QuoteMeta(key)).MatchString(logs.String()) {
		t.Errorf("no warning with the key in the log:\n%s", logs.String())
	}
	for _, k := range []string{"", "wrong", key[:len(key)-1]} {
		if got := apiStatus(t, http.DefaultClient, ts.base, k); got != http.StatusUnauthorized {
			t.Errorf("key %q: status %d, want 401", k, got)
		}
	}
	if got := apiStatus(t, http.DefaultClient, ts.base, key); got != http.StatusOK {
		t.Errorf("generated key: status %d", got)
	}
	if other := startServer(t, server.Config{}); other.srv.APIKey() == key {
		t.Error("two servers generated the same key")
	}
}

func TestAPIInsecure(t *testing.T) {
	var logs lockedBuffer
	ts := startServer(t, server.Config{APIInsecure: true, Gateway: gatewayConfig("", slog.New(slog.NewTextHandler(&logs, nil)))})
	if got := apiStatus(t, http.DefaultClient, ts.base, ""); got != http.StatusOK {
		t.Errorf("insecure API without a key: status %d", got)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "--api-insecure") {
		t.Errorf("no warning about the open API:\n%s", logs.String())
	}
	if ts.srv.APIKey() != "" {
		t.Errorf("key %q with --api-insecure", ts.srv.APIKey())
	}
}

func TestAPIConfigRefused(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	for name, cfg := range map[string]server.Config{
		"key and insecure":   {APIKey: "k", APIInsecure: true},
		"bad api-addr":       {APIAddr: "nohost"},
		"bad grpc-addr":      {GRPCAddr: "127.0.0.1"},
		"cert without key":   {APIAddr: "127.0.0.1:0", APITLSCert: missing},
		"TLS with no socket": {APITLSCert: missing, APITLSKey: missing},
		"unreadable cert":    {GRPCAddr: "127.0.0.1:0", APITLSCert: missing, APITLSKey: missing},
	} {
		cfg.Gateway.Logger = slog.New(slog.DiscardHandler)
		if s, err := server.New(cfg); err == nil {
			_ = s.Gateway().Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

// With --api-addr the HTTP API has its own listener (here over TLS, as the
// gRPC one) and is gone from the main port.
func TestAPIListenersTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	srv, err := server.New(server.Config{
		APIKey: "k1", APIAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", APITLSCert: certFile, APITLSKey: keyFile,
		DrainWindow: 50 * time.Millisecond, Gateway: gatewayConfig("", slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		t.Fatal(err)
	}
	hl, al, gl := listen(t), listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeListeners(ctx, server.Listeners{HTTP: hl, API: al, GRPC: gl}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer tlsClient.CloseIdleConnections()
	if got := apiStatus(t, tlsClient, "https://"+al.Addr().String(), "k1"); got != http.StatusOK {
		t.Errorf("API listener over TLS: status %d", got)
	}
	if got := apiStatus(t, tlsClient, "https://"+al.Addr().String(), ""); got != http.StatusUnauthorized {
		t.Errorf("API listener without a key: status %d", got)
	}
	if got := apiStatus(t, http.DefaultClient, "http://"+hl.Addr().String(), "k1"); got != http.StatusNotFound {
		t.Errorf("main port /api/ with --api-addr: status %d, want 404", got)
	}

	cc, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pool, "")))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	rctx, rcancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer k1"), 10*time.Second)
	defer rcancel()
	if _, err := pb.NewPushServiceClient(cc).Info(rctx, &pb.InfoRequest{}); err != nil {
		t.Errorf("gRPC over TLS: %v", err)
	}
	plain, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = plain.Close() }()
	if _, err := pb.NewPushServiceClient(plain).Info(rctx, &pb.InfoRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("plain gRPC to the TLS listener: %v, want UNAVAILABLE", err)
	}
}

// Serve opens the configured gRPC address itself, and fails at once,
// closing the gateway, when it cannot.
func TestGRPCAddr(t *testing.T) {
	taken := listen(t)
	defer func() { _ = taken.Close() }()
	srv, err := server.New(server.Config{GRPCAddr: taken.Addr().String(), Gateway: gatewayConfig("", slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Serve(context.Background(), listen(t))
	if err == nil || !strings.Contains(err.Error(), "gRPC") {
		t.Errorf("Serve with a taken gRPC port: %v", err)
	}
	if err := srv.Gateway().Publish(context.Background(), "t", []byte("1")); err == nil {
		t.Error("the gateway still runs after Serve failed")
	}

	addr := freeTCPAddr(t)
	ts := startServer(t, server.Config{APIKey: "k2", GRPCAddr: addr})
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-api-key", "k2"), 10*time.Second)
	defer cancel()
	info, err := pb.NewPushServiceClient(cc).Info(ctx, &pb.InfoRequest{})
	if err != nil || info.Id != ts.srv.Gateway().NodeID() {
		t.Errorf("gRPC on --grpc-addr: %v, %v", info, err)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// freeTCPAddr returns a loopback address whose port was free a moment ago.
func freeTCPAddr(t *testing.T) string {
	l := listen(t)
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// selfSigned writes a certificate for 127.0.0.1 and its key into a
// temporary directory.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "firetower test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestParseAPIFlags(t *testing.T) {
	emptyDir(t)
	o := parse(t, nil, nil)
	if o.Server.GRPCAddr != server.DefaultGRPCAddr || o.Server.APIKey != "" || o.Server.APIInsecure || o.Server.APIAddr != "" {
		t.Errorf("defaults: %+v", o.Server)
	}
	o = parse(t, nil, map[string]string{"FIRETOWER_API_KEY": "from-env", "FIRETOWER_GRPC_ADDR": "off"})
	if o.Server.APIKey != "from-env" || o.Server.GRPCAddr != "" {
		t.Errorf("environment: key %q, grpc %q", o.Server.APIKey, o.Server.GRPCAddr)
	}
	o = parse(t, []string{"--api-key", "flag", "--grpc-addr=", "--api-addr", "127.0.0.1:9997"}, map[string]string{"FIRETOWER_API_KEY": "env"})
	if o.Server.APIKey != "flag" || o.Server.GRPCAddr != "" || o.Server.APIAddr != "127.0.0.1:9997" {
		t.Errorf("flags: %+v", o.Server)
	}
	o = parse(t, []string{"--api-insecure"}, nil)
	if !o.Server.APIInsecure {
		t.Error("--api-insecure not set")
	}
	for _, bad := range [][]string{
		{"--api-insecure", "--api-key", "k"},
		{"--api-tls-cert", "c.pem"},
		{"--grpc-addr", "nohost"},
	} {
		if _, err := server.ParseServe(bad, fakeEnv(nil), &bytes.Buffer{}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
