package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestBinary builds the real firetower binary and runs it as a user would.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := build(t)

	t.Run("version", func(t *testing.T) {
		out, code := run(t, bin, "version")
		if code != 0 || !strings.HasPrefix(out, "firetower ") || strings.Count(out, "\n") != 1 {
			t.Errorf("version: exit %d, output %q", code, out)
		}
	})
	t.Run("help", func(t *testing.T) {
		out, code := run(t, bin, "help")
		if code != 0 || !strings.Contains(out, "serve") {
			t.Errorf("help: exit %d, output %q", code, out)
		}
	})
	t.Run("unknown command", func(t *testing.T) {
		out, code := run(t, bin, "frobnicate")
		if code != 2 || !strings.Contains(out, `unknown command "frobnicate"`) || !strings.Contains(out, "usage:") {
			t.Errorf("unknown command: exit %d, output %q", code, out)
		}
	})
	t.Run("serve -h", func(t *testing.T) {
		out, code := run(t, bin, "serve", "-h")
		if code != 0 || !strings.Contains(out, "-announce-counts") || strings.Contains(out, "help requested") {
			t.Errorf("serve -h: exit %d, output %q", code, out)
		}
	})
	t.Run("bad flag value", func(t *testing.T) {
		out, code := run(t, bin, "serve", "--log-format=xml")
		if code != 2 || !strings.Contains(out, "--log-format must be text or json") {
			t.Errorf("serve --log-format=xml: exit %d, output %q", code, out)
		}
	})
	t.Run("serve and SIGTERM", func(t *testing.T) { testServeSIGTERM(t, bin) })
}

// build compiles the command into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	gotool, err := exec.LookPath("go")
	if err != nil {
		gotool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "firetower")
	cmd := exec.Command(gotool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// command prepares the binary to run in an empty directory (so no
// fireTower.toml is found) with no FIRETOWER_* variable from the caller's
// environment, and no gRPC listener unless env names one.
func command(t *testing.T, bin string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FIRETOWER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// No gRPC listener on the fixed default port unless a test asks: two
	// processes at once would collide there.
	cmd.Env = append(cmd.Env, "FIRETOWER_GRPC_ADDR=off")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// run runs a command that is expected to end by itself and returns its
// combined output and exit code.
func run(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := command(t, bin, nil, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("%q: %v", args, err)
		}
		return out.String(), cmd.ProcessState.ExitCode()
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%q did not exit within 10s; output %q", args, out.String())
		return "", 0
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago: the binary needs a known port, which port 0 would not give.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func testServeSIGTERM(t *testing.T, bin string) {
	const drain = 300 * time.Millisecond
	const margin = 5 * time.Second
	addr := freeAddr(t)
	// The drain window comes from the environment, the address from a flag.
	cmd := command(t, bin, []string{"FIRETOWER_DRAIN_WINDOW=" + drain.String()}, "serve", "--addr", addr)
	var logs bytes.Buffer // read only after the process has exited
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waited := false // set once exited has been received
	t.Cleanup(func() {
		if !waited {
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	// Poll /healthz until the server answers, failing early if it dies.
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		select {
		case werr := <-exited:
			waited = true
			t.Fatalf("firetower exited before serving (%v):\n%s", werr, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz did not answer within 15s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","topic":"/chat/world","data":""}`)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, b, err := ws.ReadMessage(); err != nil || string(b) != `{"type":"onSubscribe","data":1}` {
		t.Fatalf("subscribe: %q, %v", b, err)
	}
	// Keep reading, as a browser does, so the client answers the server's
	// close frame.
	closed := make(chan error, 1)
	_ = ws.SetReadDeadline(time.Now().Add(drain + margin))
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				closed <- err
				return
			}
		}
	}()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		waited = true
		if err != nil {
			t.Fatalf("firetower exited with %v after SIGTERM:\n%s", err, logs.String())
		}
	case <-time.After(drain + margin):
		t.Fatalf("firetower still running %v after SIGTERM", drain+margin)
	}
	if err := <-closed; !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("client ended with %v, want close 1001 (going away)", err)
	}
	if !strings.Contains(logs.String(), "stopped") {
		t.Errorf("no shutdown log line:\n%s", logs.String())
	}
}
