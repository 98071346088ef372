package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/firetower-go/firetower/internal/tlstest"
	"github.com/firetower-go/firetower/internal/wait"
	"github.com/gorilla/websocket"
)

// The binary serves wss with --tls-cert/--tls-key and rereads them on
// SIGHUP without stopping: new connections get the new certificate, one
// opened before keeps working, a bad file is logged and changes nothing.
func TestBinaryTLSReloadOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := build(t)
	ca := tlstest.NewCA(t)
	certFile, keyFile := tlstest.Files(t)
	first := ca.Issue(t, certFile, keyFile)

	t.Run("flags refused", func(t *testing.T) {
		out, code := run(t, bin, "serve", "--tls-cert", certFile)
		if code != 2 || !strings.Contains(out, "--tls-cert and --tls-key go together") {
			t.Errorf("--tls-cert alone: exit %d, output %q", code, out)
		}
		out, code = run(t, bin, "serve", "--addr", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", certFile+".missing")
		if code != 1 || !strings.Contains(out, certFile+".missing") {
			t.Errorf("missing key file: exit %d, output %q", code, out)
		}
	})

	addr := freeAddr(t)
	c := spawn(t, bin, "serve", []string{"FIRETOWER_DRAIN_WINDOW=100ms"}, "serve", "--addr", addr, "--tls-cert", certFile, "--tls-key", keyFile, "--announce-counts=false")
	c.waitLog(t, "firetower serving")

	dial := func() (*websocket.Conn, int64, error) {
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: ca.ClientConfig()}
		ws, _, err := d.Dial("wss://"+addr+"/ws", nil)
		if err != nil {
			return nil, 0, err
		}
		return ws, tlstest.Serial(ws.UnderlyingConn().(*tls.Conn).ConnectionState()), nil
	}
	// serialAfter polls new connections until they show want.
	serialAfter := func(want int64) {
		t.Helper()
		wait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
			ws, serial, err := dial()
			if err != nil {
				return err
			}
			_ = ws.Close()
			if serial != want {
				return fmt.Errorf("serial %d, want %d", serial, want)
			}
			return nil
		})
	}
	old, serial, err := dial()
	if err != nil {
		t.Fatalf("wss: %v\n%s", err, c.logs.String())
	}
	defer old.Close()
	if serial != first {
		t.Fatalf("serial %d, want %d", serial, first)
	}
	roundTrip := func(ws *websocket.Conn, data string) {
		t.Helper()
		frame := `{"type":"publish","topic":"/tls","data":"` + data + `"}`
		_ = ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatalf("publish %s: %v", data, err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %s: %v", data, err)
			}
			if string(b) == `"`+data+`"` {
				return
			}
		}
	}
	_ = old.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","topic":"/tls","data":""}`))
	roundTrip(old, "before")

	second := ca.Issue(t, certFile, keyFile)
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	serialAfter(second)
	c.waitLog(t, "TLS certificate reloaded")
	roundTrip(old, "after") // the connection from before the reload

	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	c.waitLog(t, "TLS certificate not reloaded")
	serialAfter(second)
	roundTrip(old, "after a failed reload")

	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.exited:
		c.exited <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, c.logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGTERM:\n%s", c.logs.String())
	}
}
