package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/internal/tlstest"
	"github.com/firetower-go/firetower/pushapi/pb"
	"github.com/firetower-go/firetower/server"
	"github.com/firetower-go/firetower/topicmgr"
	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// tlsServer serves cfg with the listeners of a test: main and gRPC on
// 127.0.0.1:0. It is stopped at the end of the test.
func tlsServer(t *testing.T, cfg server.Config) (srv *server.Server, addr, grpcAddr string) {
	t.Helper()
	cfg.Gateway.Logger = slog.New(slog.DiscardHandler)
	cfg.DrainWindow = 50 * time.Millisecond
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hl, gl := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeListeners(ctx, server.Listeners{HTTP: hl, GRPC: gl}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, hl.Addr().String(), gl.Addr().String()
}

// dialWSS opens a wss client trusting ca and returns it with the serial
// number of the certificate the server showed.
func dialWSS(t *testing.T, ca *tlstest.CA, addr string) (*websocket.Conn, int64) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: ca.ClientConfig()}
	c, _, err := d.Dial("wss://"+addr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial wss://%s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, tlstest.Serial(c.UnderlyingConn().(*tls.Conn).ConnectionState())
}

// publishHTTPS publishes through the push API on the main port, on a new
// connection, and returns the serial number the server showed.
func publishHTTPS(t *testing.T, ca *tlstest.CA, addr, topic, data string) int64 {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: ca.ClientConfig(), DisableKeepAlives: true}}
	req, err := http.NewRequest(http.MethodPost, "https://"+addr+"/api/publish", strings.NewReader(`{"topic":"`+topic+`","data":`+data+`}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/publish over TLS: status %d", resp.StatusCode)
	}
	return tlstest.Serial(*resp.TLS)
}

// grpcSerial calls Info over a new TLS gRPC connection and returns the
// serial number the server showed.
func grpcSerial(t *testing.T, ca *tlstest.CA, addr string) int64 {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(ca.ClientConfig())))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+testKey), 10*time.Second)
	defer cancel()
	var p peer.Peer
	if _, err := pb.NewPushServiceClient(cc).Info(ctx, &pb.InfoRequest{}, grpc.Peer(&p)); err != nil {
		t.Fatalf("gRPC Info over TLS: %v", err)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		t.Fatalf("gRPC peer auth %T, want TLS", p.AuthInfo)
	}
	return tlstest.Serial(info.State)
}

// One certificate serves wss, https (push API on the main port) and gRPC.
// After the files are replaced and Reload called, new connections of all
// three see the new certificate while a websocket opened before keeps
// receiving; a reload of a bad file fails and keeps the certificate.
func TestTLSReload(t *testing.T) {
	ca := tlstest.NewCA(t)
	certFile, keyFile := tlstest.Files(t)
	first := ca.Issue(t, certFile, keyFile)
	srv, addr, grpcAddr := tlsServer(t, server.Config{APIKey: testKey, QuietCounts: true, TLSCert: certFile, TLSKey: keyFile})

	old, serial := dialWSS(t, ca, addr)
	if serial != first {
		t.Fatalf("wss: serial %d, want %d", serial, first)
	}
	send(t, old, subscribeWorld)
	waitSubscribers(t, &testServer{srv: srv}, "/chat/world", 1)
	if got := publishHTTPS(t, ca, addr, "/chat/world", `"one"`); got != first {
		t.Errorf("https: serial %d, want %d", got, first)
	}
	expect(t, old, "old client", `"one"`)
	if got := grpcSerial(t, ca, grpcAddr); got != first {
		t.Errorf("gRPC: serial %d, want %d", got, first)
	}
	// A plain client is refused on the TLS port.
	if c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil); err == nil {
		_ = c.Close()
		t.Error("plain ws:// accepted on the TLS port")
	}

	second := ca.Issue(t, certFile, keyFile)
	if err := srv.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	fresh, serial := dialWSS(t, ca, addr)
	if serial != second {
		t.Fatalf("wss after Reload: serial %d, want %d", serial, second)
	}
	if got := grpcSerial(t, ca, grpcAddr); got != second {
		t.Errorf("gRPC after Reload: serial %d, want %d", got, second)
	}
	send(t, fresh, subscribeWorld)
	waitSubscribers(t, &testServer{srv: srv}, "/chat/world", 2)
	if got := publishHTTPS(t, ca, addr, "/chat/world", `"two"`); got != second {
		t.Errorf("https after Reload: serial %d, want %d", got, second)
	}
	expect(t, old, "client from before the reload", `"two"`)
	expect(t, fresh, "client from after the reload", `"two"`)
	// The old connection publishes too: its TLS session is intact.
	send(t, old, `{"type":"publish","topic":"/chat/world","data":"three"}`)
	expect(t, fresh, "client from after the reload", `"three"`)

	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(); err == nil || !strings.Contains(err.Error(), certFile) {
		t.Errorf("Reload of a bad certificate: %v, want an error naming %s", err, certFile)
	}
	if _, serial := dialWSS(t, ca, addr); serial != second {
		t.Errorf("wss after a failed Reload: serial %d, want the old %d", serial, second)
	}
	if got := grpcSerial(t, ca, grpcAddr); got != second {
		t.Errorf("gRPC after a failed Reload: serial %d, want the old %d", got, second)
	}
	expect(t, old, "client from before the failed reload", `"three"`)
}

// --api-tls-cert gives the API listeners a certificate of their own, also
// reloaded; the main port keeps --tls-cert's.
func TestTLSReloadSeparateAPICert(t *testing.T) {
	ca := tlstest.NewCA(t)
	certFile, keyFile := tlstest.Files(t)
	apiCert, apiKey := tlstest.Files(t)
	main := ca.Issue(t, certFile, keyFile)
	api := ca.Issue(t, apiCert, apiKey)
	srv, addr, grpcAddr := tlsServer(t, server.Config{APIKey: testKey, TLSCert: certFile, TLSKey: keyFile, APITLSCert: apiCert, APITLSKey: apiKey, GRPCAddr: "127.0.0.1:0"})
	if _, serial := dialWSS(t, ca, addr); serial != main {
		t.Errorf("wss: serial %d, want %d", serial, main)
	}
	if got := grpcSerial(t, ca, grpcAddr); got != api {
		t.Errorf("gRPC: serial %d, want the API's %d", got, api)
	}
	api = ca.Issue(t, apiCert, apiKey)
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := grpcSerial(t, ca, grpcAddr); got != api {
		t.Errorf("gRPC after Reload: serial %d, want %d", got, api)
	}
	if _, serial := dialWSS(t, ca, addr); serial != main {
		t.Errorf("wss after Reload: serial %d, want the unchanged %d", serial, main)
	}
}

// A cert without a key, or unreadable files, stop New with an error naming
// the problem.
func TestTLSConfigRefused(t *testing.T) {
	ca := tlstest.NewCA(t)
	certFile, keyFile := tlstest.Files(t)
	ca.Issue(t, certFile, keyFile)
	for name, tc := range map[string]struct {
		cfg  server.Config
		want string
	}{
		"cert without key": {server.Config{TLSCert: certFile}, "--tls-cert and --tls-key go together"},
		"key without cert": {server.Config{TLSKey: keyFile}, "--tls-cert and --tls-key go together"},
		"missing files":    {server.Config{TLSCert: certFile + ".nope", TLSKey: keyFile}, "no such file"},
		"key for the cert": {server.Config{TLSCert: keyFile, TLSKey: keyFile}, "server: TLS"},
	} {
		tc.cfg.Gateway.Logger = slog.New(slog.DiscardHandler)
		s, err := server.New(tc.cfg)
		if err == nil {
			_ = s.Gateway().Close()
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	o := parse(t, []string{"--tls-cert", certFile, "--tls-key", keyFile}, nil)
	if o.Server.TLSCert != certFile || o.Server.TLSKey != keyFile {
		t.Errorf("flags: cert %q key %q", o.Server.TLSCert, o.Server.TLSKey)
	}
	o = parse(t, nil, map[string]string{"FIRETOWER_TLS_CERT": certFile, "FIRETOWER_TLS_KEY": keyFile})
	if o.Server.TLSCert != certFile || o.Server.TLSKey != keyFile {
		t.Errorf("environment: cert %q key %q", o.Server.TLSCert, o.Server.TLSKey)
	}
}

// A topic manager with --tls-cert and gateways dialing tms://...?ca=FILE:
// chat crosses gateways over TLS; after the manager's Reload new sessions
// see the new certificate while the open ones keep carrying messages; a
// gateway that does not trust the manager's CA cannot publish.
func TestTLSTopicManager(t *testing.T) {
	ca := tlstest.NewCA(t)
	certFile, keyFile := tlstest.Files(t)
	first := ca.Issue(t, certFile, keyFile)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	addr := freeTCPAddr(t)
	tm, err := server.NewTopicManager(&server.ManagerOptions{
		Addr: addr, TLSCert: certFile, TLSKey: keyFile, Manager: topicmgr.Config{Token: "secret"},
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- tm.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("topic manager: %v", err)
		}
	}()
	managerSerial := func(want int64) {
		t.Helper()
		checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			c, err := tls.Dial("tcp", addr, ca.ClientConfig())
			if err != nil {
				return err
			}
			defer func() { _ = c.Close() }()
			if got := tlstest.Serial(c.ConnectionState()); got != want {
				return fmt.Errorf("manager serial %d, want %d", got, want)
			}
			return nil
		})
	}
	managerSerial(first)

	url := "tms://" + addr + "?ca=" + caFile
	a := startServer(t, server.Config{Broker: url, ClusterToken: "secret", QuietCounts: true, Gateway: gatewayConfig("gw-a", log)})
	b := startServer(t, server.Config{Broker: url, ClusterToken: "secret", QuietCounts: true, Gateway: gatewayConfig("gw-b", log)})
	seen := func(gw *testServer, n int64) {
		t.Helper()
		checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
			if got := gw.srv.Gateway().ConnectNum(context.Background(), "/chat/world"); got != n {
				return fmt.Errorf("the gateway counts %d subscribers, want %d", got, n)
			}
			return nil
		})
	}
	ca1 := dial(t, a.ws, nil)
	send(t, ca1, subscribeWorld)
	seen(b, 1)
	cb := dial(t, b.ws, nil)
	send(t, cb, publishChat)
	expect(t, ca1, "a, from b through the manager over TLS", chatData)

	second := ca.Issue(t, certFile, keyFile)
	if err := tm.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	managerSerial(second)
	send(t, cb, `{"type":"publish","topic":"/chat/world","data":"after reload"}`)
	expect(t, ca1, "a, over the sessions from before the reload", `"after reload"`)
	c := startServer(t, server.Config{Broker: url, ClusterToken: "secret", QuietCounts: true, Gateway: gatewayConfig("gw-c", log)})
	seen(c, 1)
	cc := dial(t, c.ws, nil)
	send(t, cc, `{"type":"publish","topic":"/chat/world","data":"new session"}`)
	expect(t, ca1, "a, from a gateway that joined after the reload", `"new session"`)

	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tm.Reload(); err == nil {
		t.Error("Reload of a bad key: no error")
	}
	managerSerial(second)

	otherCA := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(otherCA, tlstest.NewCA(t).PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	bad := startServer(t, server.Config{Broker: "tms://" + addr + "?ca=" + otherCA, ClusterToken: "secret", Gateway: gatewayConfig("gw-untrusting", slog.New(slog.NewTextHandler(&logs, nil)))})
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(logs.String(), "certificate signed by unknown authority") {
			return errors.New("no log of the refused certificate yet")
		}
		return nil
	})
	if err := bad.srv.Gateway().Publish(context.Background(), "/chat/world", []byte(`1`)); err == nil ||
		!strings.Contains(err.Error(), "unavailable") {
		t.Errorf("publish through a gateway that does not trust the manager: %v, want unavailable", err)
	}
}

func TestParseTopicManagerTLS(t *testing.T) {
	o, err := server.ParseTopicManager([]string{"--tls-cert", "c.pem", "--tls-key", "k.pem"}, fakeEnv(nil), io.Discard)
	if err != nil || o.TLSCert != "c.pem" || o.TLSKey != "k.pem" {
		t.Errorf("flags: %+v, %v", o, err)
	}
	if _, err := server.ParseTopicManager([]string{"--tls-cert", "c.pem"}, fakeEnv(nil), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "go together") {
		t.Errorf("--tls-cert alone: %v", err)
	}
	o, err = server.ParseTopicManager(nil, fakeEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.NewTopicManager(&server.ManagerOptions{Addr: "127.0.0.1:0", TLSCert: "missing.pem", TLSKey: "missing.pem", Manager: o.Manager}, slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("NewTopicManager with missing files: %v", err)
	}
}

// A client that opens a TCP connection to the TLS port and never starts
// the handshake is closed at ReadHeaderTimeout, as a slowloris on the
// plain port is.
func TestTLSHandshakeTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	ca := tlstest.NewCA(t)
	certFile, keyFile := tlstest.Files(t)
	ca.Issue(t, certFile, keyFile)
	_, addr, _ := tlsServer(t, server.Config{APIKey: testKey, TLSCert: certFile, TLSKey: keyFile, ReadHeaderTimeout: timeout})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the server wrote to a client that sent no ClientHello")
	}
	if d := time.Since(start); d < timeout/2 || d > 3*time.Second { // the server starts its clock first
		t.Errorf("closed after %v, want about %v", d, timeout)
	}
	// Meanwhile a real client is served.
	if _, serial := dialWSS(t, ca, addr); serial == 0 {
		t.Error("no certificate")
	}
}
