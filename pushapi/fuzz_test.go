package pushapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/pushapi"
)

// fuzzMaxMessageSize is small so that the fuzzer reaches the too_large
// paths (data over the limit; the body limit is this + 64 KiB).
const fuzzMaxMessageSize = 64

// postRoutes are the endpoints whose bodies FuzzAPIBody sends, in the order
// of pushapi.Routes: a corpus entry's route is an index into them (modulo
// their number).
func postRoutes() []string {
	var paths []string
	for _, rt := range pushapi.Routes() {
		if rt.Method == http.MethodPost {
			paths = append(paths, rt.Path)
		}
	}
	return paths
}

// bodyTarget is the push API of a gateway of its own, with the Error lines
// it logs (internal errors) kept for the checks.
type bodyTarget struct {
	handler  http.Handler
	internal *lockedBuffer
	paths    []string
}

func newBodyTarget(tb testing.TB) *bodyTarget {
	tb.Helper()
	gw, err := gateway.New(gateway.Config{Logger: slog.New(slog.DiscardHandler), MaxMessageSize: fuzzMaxMessageSize, NodeInfoInterval: -1})
	if err != nil {
		tb.Fatal(err)
	}
	bt := &bodyTarget{internal: &lockedBuffer{}, paths: postRoutes()}
	logger := slog.New(slog.NewTextHandler(bt.internal, &slog.HandlerOptions{Level: slog.LevelError}))
	svc := pushapi.New(gw, pushapi.Config{Logger: logger, DrainWindow: time.Millisecond})
	bt.handler = svc.Handler(pushapi.InsecureAuth())
	tb.Cleanup(func() {
		svc.Close()
		_ = gw.Close()
	})
	return bt
}

// check states what every answer to a POST body must be: never 5xx; a
// refusal is a 4xx with {"error":{"code","message"}} and a message; a body
// that is not JSON is refused (but for the optional body of /api/drain);
// an answer 200 is JSON; nothing is logged as an internal error.
func (bt *bodyTarget) check(path string, body []byte, contentType string, status int, answer []byte) error {
	switch {
	case status >= 500:
		return fmt.Errorf("POST %s %q (%s): %d %s", path, body, contentType, status, answer)
	case status >= 400:
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(answer, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
			return fmt.Errorf("POST %s %q: %d with %q, want {\"error\":{\"code\",\"message\"}}", path, body, status, answer)
		}
	case status == http.StatusOK:
		if !json.Valid(body) && (len(body) != 0 || path != "/api/drain") {
			return fmt.Errorf("POST %s %q: a body that is not JSON was accepted: %s", path, body, answer)
		}
		if !json.Valid(answer) {
			return fmt.Errorf("POST %s %q: 200 with %q, not JSON", path, body, answer)
		}
	default:
		return fmt.Errorf("POST %s %q: unexpected status %d %s", path, body, status, answer)
	}
	if s := bt.internal.String(); s != "" {
		return fmt.Errorf("POST %s %q: internal error logged: %s", path, body, s)
	}
	return nil
}

// FuzzAPIBody sends arbitrary bodies and content types to every POST
// endpoint of the HTTP push API (the handler the server mounts, called in
// process: a real connection would cost 20 times as much per input; the
// committed corpus also runs over a real connection, in
// TestAPIBodyCorpusOverHTTP). The seeds are testdata/fuzz/FuzzAPIBody.
func FuzzAPIBody(f *testing.F) {
	bt := newBodyTarget(f)
	f.Fuzz(func(t *testing.T, route uint8, body []byte, contentType string) {
		path := bt.paths[int(route)%len(bt.paths)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		bt.handler.ServeHTTP(rec, req)
		if err := bt.check(path, body, contentType, rec.Code, rec.Body.Bytes()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestAPIBodyCorpusOverHTTP sends FuzzAPIBody's committed corpus to the
// push API over real HTTP connections on 127.0.0.1, with the same checks;
// it also makes sure the corpus reaches every POST endpoint with a body it
// accepts.
func TestAPIBodyCorpusOverHTTP(t *testing.T) {
	bt := newBodyTarget(t)
	srv := httptest.NewServer(bt.handler)
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		srv.Close()
	})
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzAPIBody", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus (%v)", err)
	}
	accepted := map[string]bool{}
	for _, file := range files {
		route, body, contentType := readBodyCorpus(t, file)
		path := bt.paths[int(route)%len(bt.paths)]
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		answer, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if err := bt.check(path, body, contentType, resp.StatusCode, answer); err != nil {
			t.Errorf("%s: %v", filepath.Base(file), err)
		}
		if want, ok := corpusStatus[filepath.Base(file)]; ok && resp.StatusCode != want {
			t.Errorf("%s: %d %s, want %d", filepath.Base(file), resp.StatusCode, answer, want)
		}
		if resp.StatusCode == http.StatusOK {
			accepted[path] = true
		}
	}
	for _, path := range bt.paths {
		if !accepted[path] {
			t.Errorf("no corpus entry is accepted by %s: the fuzzer would start from refusals only", path)
		}
	}
}

// corpusStatus is the answer each named seed must get (the entries the
// fuzzer adds have hashes for names and only the general checks).
var corpusStatus = map[string]int{
	"publish-unknown-field": http.StatusBadRequest,
	"publish-two-values":    http.StatusBadRequest,
	"publish-null-body":     http.StatusBadRequest,
	"publish-truncated":     http.StatusBadRequest,
	"publish-invalid-utf8":  http.StatusBadRequest,
	"publish-too-large":     http.StatusRequestEntityTooLarge,
	"publish-topic-comma":   http.StatusUnprocessableEntity,
	"publish-text-plain":    http.StatusUnsupportedMediaType,
	"broadcast-no-topics":   http.StatusBadRequest,
	"drain-bad-window":      http.StatusBadRequest,
	"publish-json-charset":  http.StatusOK,
}

// readBodyCorpus parses a corpus file of FuzzAPIBody ("go test fuzz v1",
// then uint8(...), []byte("...") and string("...")).
func readBodyCorpus(t *testing.T, file string) (route uint8, body []byte, contentType string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	var lines []string
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			lines = append(lines, line)
		}
	}
	if len(lines) != 4 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a corpus file of (uint8, []byte, string)", file)
	}
	arg := func(line, typ string) string {
		if !strings.HasPrefix(line, typ+"(") || !strings.HasSuffix(line, ")") {
			t.Fatalf("%s: %q is not %s(...)", file, line, typ)
		}
		return line[len(typ)+1 : len(line)-1]
	}
	n, err := strconv.ParseUint(arg(lines[1], "uint8"), 0, 8)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	bs, err := strconv.Unquote(arg(lines[2], "[]byte"))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	ct, err := strconv.Unquote(arg(lines[3], "string"))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return uint8(n), []byte(bs), ct
}

// lockedBuffer is a bytes.Buffer written by a logger on the server's
// goroutines and read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
