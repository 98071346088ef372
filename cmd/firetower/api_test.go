package main

import (
	"bytes"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runAPI runs an API command of the binary with env and returns its
// output and exit code.
func runAPI(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := command(t, bin, env, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("%q: %v", args, err)
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%q did not exit within 15s", args)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// TestBinaryAPI runs `firetower serve` without a key: it generates one and
// logs it, the API refuses calls without it, and `firetower publish` with
// it reaches a websocket client; the gRPC listener is on when asked for.
func TestBinaryAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := build(t)
	addr, grpcAddr := freeAddr(t), freeAddr(t)
	srv := spawn(t, bin, "serve", nil, "serve", "--addr", addr, "--grpc-addr", grpcAddr, "--announce-counts=false")
	waitHealthy(t, srv, addr)
	srv.waitLog(t, "gRPC push API serving")
	m := regexp.MustCompile(`no API key configured.*apiKey=(\S+)`).FindStringSubmatch(srv.logs.String())
	if m == nil {
		t.Fatalf("no generated key in the log:\n%s", srv.logs.String())
	}
	key := m[1]
	server := "http://" + addr

	if _, errs, code := runAPI(t, bin, []string{"FIRETOWER_SERVER=" + server}, "info"); code != 1 || !strings.Contains(errs, "401 unauthenticated") {
		t.Errorf("info without a key: exit %d, stderr %q", code, errs)
	}
	ws := connect(t, "ws://"+addr+"/ws", false)
	ws.send(t, `{"type":"subscribe","topic":"/bin/t","data":""}`)
	env := []string{"FIRETOWER_API_KEY=" + key}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, errs, code := runAPI(t, bin, env, "count", "--server", server, "--topic", "/bin/t")
		if code != 0 {
			t.Fatalf("count: exit %d, %s", code, errs)
		}
		if strings.Contains(out, `"count": 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("count never reached 1: %s", out)
		}
	}
	out, errs, code := runAPI(t, bin, env, "publish", "--server", server, "--topic", "/bin/t", "--data", `{"hello":"binary"}`)
	if code != 0 || !strings.Contains(out, `"topic": "/bin/t"`) {
		t.Fatalf("publish: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	ws.await(t, 5*time.Second, "the published message", func(s string) bool { return s == `{"hello":"binary"}` })
	if _, errs, code := runAPI(t, bin, env, "publish", "--server", server, "--topic", "/bin/t", "--data", "hello"); code != 2 || !strings.Contains(errs, "JSON") {
		t.Errorf("publish of non-JSON: exit %d, stderr %q", code, errs)
	}
}
