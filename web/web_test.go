package web_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/web"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wantFiles are the files the pages and the docs rely on, with their types.
var wantFiles = map[string]string{
	"index.html":      "text/html; charset=utf-8",
	"compat-v01.html": "text/html; charset=utf-8",
	"firetower.js":    "text/javascript; charset=utf-8",
	"firetower.mjs":   "text/javascript; charset=utf-8",
	"chat.js":         "text/javascript; charset=utf-8",
	"compat-v01.js":   "text/javascript; charset=utf-8",
	"chat.css":        "text/css; charset=utf-8",
	"favicon.svg":     "image/svg+xml",
}

func startServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	web.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, srv *httptest.Server, method, path string, header http.Header) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(body)}
}

func TestEmbeddedFiles(t *testing.T) {
	got := web.Files()
	for name, ctype := range wantFiles {
		if !slices.Contains(got, name) {
			t.Errorf("%s is not embedded (files: %q)", name, got)
		}
		if c := web.ContentType(name); c != ctype {
			t.Errorf("ContentType(%s) = %q, want %q", name, c, ctype)
		}
	}
	if c := web.ContentType("nope.js"); c != "" {
		t.Errorf("ContentType of a missing file = %q", c)
	}
	for _, name := range got {
		b, err := fs.ReadFile(web.FS(), name)
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %d bytes, %v", name, len(b), err)
		}
	}
}

func TestServeFiles(t *testing.T) {
	srv := startServer(t)
	for _, name := range web.Files() {
		want, err := fs.ReadFile(web.FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		r := do(t, srv, "GET", "/static/"+name, nil)
		if r.status != http.StatusOK || r.body != string(want) {
			t.Errorf("GET /static/%s: %d, %d bytes, want 200 and the embedded %d bytes", name, r.status, len(r.body), len(want))
		}
		if ct := r.header.Get("Content-Type"); ct != web.ContentType(name) {
			t.Errorf("GET /static/%s: Content-Type %q, want %q", name, ct, web.ContentType(name))
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET /static/%s: no nosniff", name)
		}
		isHTML := strings.HasSuffix(name, ".html")
		if csp := r.header.Get("Content-Security-Policy"); isHTML != (csp == web.ContentSecurityPolicy) {
			t.Errorf("GET /static/%s: CSP %q", name, csp)
		}
		etag := r.header.Get("ETag")
		if etag == "" {
			t.Fatalf("GET /static/%s: no ETag", name)
		}
		// A revalidation with the ETag costs no body.
		r = do(t, srv, "GET", "/static/"+name, http.Header{"If-None-Match": {etag}})
		if r.status != http.StatusNotModified || r.body != "" {
			t.Errorf("GET /static/%s with If-None-Match: %d, %d bytes, want 304", name, r.status, len(r.body))
		}
	}
}

func TestIndex(t *testing.T) {
	srv := startServer(t)
	want, _ := fs.ReadFile(web.FS(), "index.html")
	r := do(t, srv, "GET", "/", nil)
	if r.status != http.StatusOK || r.body != string(want) {
		t.Fatalf("GET /: %d, body is not index.html", r.status)
	}
	for k, v := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": web.ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := r.header.Get(k); got != v {
			t.Errorf("GET /: %s = %q, want %q", k, got, v)
		}
	}
	if r := do(t, srv, "HEAD", "/", nil); r.status != http.StatusOK || r.body != "" {
		t.Errorf("HEAD /: %d, %d bytes", r.status, len(r.body))
	}
	if r := do(t, srv, "POST", "/", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", r.status)
	}
}

func TestCSPIsStrict(t *testing.T) {
	csp := web.ContentSecurityPolicy
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "data:", "http:"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP %q allows %q", csp, bad)
		}
	}
}

func TestNotFound(t *testing.T) {
	srv := startServer(t)
	for _, p := range []string{
		"/static/", "/static/nope.js", "/static/../web.go", "/static/%2e%2e/web.go",
		"/static/static/index.html", "/index.html", "/static/index.html/",
	} {
		if r := do(t, srv, "GET", p, nil); r.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, r.status)
		}
	}
}

var (
	scriptTag     = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)
	inlineHandler = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	styleAttr     = regexp.MustCompile(`(?i)\sstyle\s*=`)
	localRef      = regexp.MustCompile(`(?i)\s(?:src|href)="([^"]*)"`)
)

// TestPagesHaveNoInlineCode keeps the pages working under the CSP: no
// inline script, event-handler attribute or inline style (the browser would
// refuse them), and every script, style and icon they load is embedded.
func TestPagesHaveNoInlineCode(t *testing.T) {
	for _, name := range web.Files() {
		if !strings.HasSuffix(name, ".html") {
			continue
		}
		b, _ := fs.ReadFile(web.FS(), name)
		page := string(b)
		for _, m := range scriptTag.FindAllStringSubmatch(page, -1) {
			if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
				t.Errorf("%s: inline script %q", name, m[0])
			}
		}
		if inlineHandler.MatchString(page) {
			t.Errorf("%s: an on*= event-handler attribute", name)
		}
		if styleAttr.MatchString(page) || strings.Contains(page, "<style") {
			t.Errorf("%s: inline style", name)
		}
		for _, m := range localRef.FindAllStringSubmatch(page, -1) {
			ref, ok := strings.CutPrefix(m[1], "/static/")
			if !ok || web.ContentType(ref) == "" {
				t.Errorf("%s: reference %q is not an embedded file", name, m[1])
			}
		}
	}
}

// TestScriptsInsertTextOnly guards against the original's XSS: no script
// may parse strings as HTML or code.
func TestScriptsInsertTextOnly(t *testing.T) {
	for _, name := range web.Files() {
		if !strings.HasSuffix(name, ".js") && !strings.HasSuffix(name, ".mjs") {
			continue
		}
		b, _ := fs.ReadFile(web.FS(), name)
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "createContextualFragment"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s uses %s", name, bad)
			}
		}
	}
}
