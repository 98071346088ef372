package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

//go:embed static
var embedded embed.FS

// ContentSecurityPolicy is sent with the dashboard's pages: as the chat
// page's (package web), scripts, styles and connections from the page's own
// origin only, no inline script or style; and forms may post to the origin
// (the login form).
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

type asset struct {
	name, ctype, etag string
	body              []byte
}

var assets = func() map[string]*asset {
	out := map[string]*asset{}
	err := fs.WalkDir(embedded, "static", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		body, err := embedded.ReadFile(p)
		if err != nil {
			return err
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			panic("dashboard: no content type for " + p)
		}
		sum := sha256.Sum256(body)
		name := strings.TrimPrefix(p, "static/")
		out[name] = &asset{name: name, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, body: body}
		return nil
	})
	if err != nil {
		panic(err) // a build whose files we cannot read is a programming error
	}
	return out
}()

// Files returns the names of the embedded files.
func Files() []string {
	names := make([]string, 0, len(assets))
	for n := range assets {
		names = append(names, n)
	}
	return names
}

func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

// serveAsset serves an embedded file by name, 404 for an unknown one.
func serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	a := assets[name]
	if a == nil || name == "login.html" {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache") // revalidate: the ETag makes that cheap
	h.Set("ETag", a.etag)
	if strings.HasPrefix(a.ctype, "text/html") {
		setPageHeaders(h)
	}
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}

// serveLogin serves the login form with status; failed shows that the key
// was wrong.
func serveLogin(w http.ResponseWriter, status int, failed bool) {
	body := assets["login.html"].body
	if failed {
		body = bytes.Replace(body, []byte(`id="error" hidden`), []byte(`id="error"`), 1)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	setPageHeaders(h)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
