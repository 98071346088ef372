package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/internal/apitest"
	"github.com/firetower-go/firetower/pushapi"
	"github.com/firetower-go/firetower/pushapi/client"
	"github.com/firetower-go/firetower/server"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// run runs one CLI command with env as its environment.
func run(t *testing.T, env map[string]string, stdin string, name string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = client.Run(name, args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLI(t *testing.T) {
	s := apitest.Start(t, server.Config{QuietCounts: true})
	env := map[string]string{"FIRETOWER_SERVER": s.Base, "FIRETOWER_API_KEY": s.Key}
	ws := apitest.Dial(t, s.WS+"?client=c1&user=u1", false)
	apitest.Subscribe(t, s, ws, false, "/cli/a", 1)
	apitest.Subscribe(t, s, ws, false, "/cli/b", 1)

	ok := func(want string, name string, args ...string) string {
		t.Helper()
		code, out, errs := run(t, env, "", name, args...)
		if code != 0 {
			t.Fatalf("%s %q: exit %d, stderr %s", name, args, code, errs)
		}
		if want != "" {
			if got := apitest.Next(t, ws); got != want {
				t.Errorf("%s: the client got %s, want %s", name, got, want)
			}
		}
		return out
	}
	var p pushapi.Published
	if err := json.Unmarshal([]byte(ok(`{"a":1}`, "publish", "--topic", "/cli/a", "--data", `{"a":1}`)), &p); err != nil || p.Topic != "/cli/a" || p.ID == "" {
		t.Errorf("publish output: %+v, %v", p, err)
	}
	file := filepath.Join(t.TempDir(), "data.json")
	if err := os.WriteFile(file, []byte("[1, 2]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok(`[1,2]`, "publish", "--topic", "/cli/a", "--data-file", file) // re-encoded compactly
	code, _, errs := run(t, env, `"stdin"`, "publish", "--topic", "/cli/a", "--data-file", "-")
	if code != 0 {
		t.Fatalf("publish from stdin: %d %s", code, errs)
	}
	if got := apitest.Next(t, ws); got != `"stdin"` {
		t.Errorf("got %s", got)
	}
	out := ok("", "broadcast", "--topics", "/cli/a, /cli/b", "--data", `"b"`)
	if !strings.Contains(out, `"/cli/b"`) {
		t.Errorf("broadcast output %s", out)
	}
	for range 2 {
		if got := apitest.Next(t, ws); got != `"b"` {
			t.Errorf("got %s", got)
		}
	}
	ok(`"to c1"`, "push", "--client", "c1", "--data", `"to c1"`)
	if out := ok(`"to u1"`, "push", "--user", "u1", "--data", `"to u1"`); !strings.Contains(out, `"local": 1`) {
		t.Errorf("push output %s", out)
	}
	if out := ok("", "count", "--topic", "/cli/a"); !strings.Contains(out, `"count": 1`) {
		t.Errorf("count output %s", out)
	}
	var page pushapi.TopicPage
	if err := json.Unmarshal([]byte(ok("", "topics", "--limit", "1", "--all")), &page); err != nil || len(page.Topics) != 2 {
		t.Errorf("topics --all: %+v, %v", page, err)
	}
	if err := json.Unmarshal([]byte(ok("", "topics", "--limit", "1")), &page); err != nil || len(page.Topics) != 1 || page.NextCursor == "" {
		t.Errorf("topics --limit 1: %+v, %v", page, err)
	}
	if out := ok("", "info"); !strings.Contains(out, s.Gateway().NodeID()) {
		t.Errorf("info output %s", out)
	}
	if out := ok("", "nodes"); !strings.Contains(out, s.Gateway().NodeID()) {
		t.Errorf("nodes output %s", out)
	}
	if out := ok("", "kick", "--user", "u1", "--topic", "/cli/b"); !strings.Contains(out, `"local": 1`) {
		t.Errorf("kick output %s", out)
	}
	if out := ok("", "close-topic", "--topic", "/cli/a"); !strings.Contains(out, `"local": 1`) {
		t.Errorf("close-topic output %s", out)
	}
	if out := ok("", "disconnect", "--client", "c1"); !strings.Contains(out, `"local": 1`) {
		t.Errorf("disconnect output %s", out)
	}
	_, err := apitest.NextErr(ws, 5*time.Second)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4501 {
		t.Errorf("after disconnect: %v", err)
	}
	ok("", "disconnect", "--user", "nobody")

	// Flags win over the environment.
	code, _, errs = run(t, env, "", "info", "--api-key", "wrong")
	if code != 1 || !strings.Contains(errs, "401 unauthenticated") {
		t.Errorf("wrong key: exit %d, stderr %s", code, errs)
	}
	code, _, errs = run(t, map[string]string{"FIRETOWER_SERVER": s.Base}, "", "info")
	if code != 1 || !strings.Contains(errs, "401") {
		t.Errorf("no key: exit %d, stderr %s", code, errs)
	}
	code, _, errs = run(t, env, "", "publish", "--topic", "a,b", "--data", "1")
	if code != 1 || !strings.Contains(errs, "invalid_topic") {
		t.Errorf("invalid topic: exit %d, stderr %s", code, errs)
	}
}

func TestCLIUsage(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"publish", []string{"--topic", "a"}, "--data or --data-file is required"},
		{"publish", []string{"--topic", "a", "--data", "hello"}, "not one JSON value"},
		{"publish", []string{"--topic", "a", "--data", "1", "--data-file", "x"}, "not both"},
		{"push", []string{"--data", "1"}, "exactly one of --client and --user"},
		{"disconnect", []string{"--client", "a", "--user", "b"}, "exactly one of --client and --user"},
		{"count", []string{"stray"}, "unexpected argument"},
		{"count", []string{"--nope"}, "flag provided but not defined"},
		{"frobnicate", nil, "unknown API command"},
	} {
		code, _, errs := run(t, nil, "", c.name, c.args...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%s %q: exit %d, stderr %q, want 2 and %q", c.name, c.args, code, errs, c.want)
		}
	}
	if code, _, _ := run(t, nil, "", "publish", "-h"); code != 0 {
		t.Errorf("publish -h: exit %d", code)
	}
}

// The Go client reports API errors as *client.Error.
func TestClientErrors(t *testing.T) {
	s := apitest.Start(t, server.Config{QuietCounts: true})
	c := &client.Client{Server: s.Base, APIKey: s.Key}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Count(ctx, "")
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 422 || e.Code != pushapi.CodeInvalidTopic || !client.IsCode(err, pushapi.CodeInvalidTopic) {
		t.Errorf("count without a topic: %v", err)
	}
	if _, err := (&client.Client{Server: s.Base}).Info(ctx); !client.IsCode(err, pushapi.CodeUnauthenticated) {
		t.Errorf("no key: %v", err)
	}
	if _, err := c.Publish(ctx, "/x", json.RawMessage(`1`)); err != nil {
		t.Errorf("publish: %v", err)
	}
}
