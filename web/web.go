// Package web serves the browser side of firetower, embedded in the binary:
// the chat room page at /, and under /static/ the browser client library
// (firetower.js, firetower.mjs), the page's script and style, and the
// compatibility page written against the original firetower_v0.1.js API
// (/static/compat-v01.html).
//
// Every response carries X-Content-Type-Options: nosniff and an explicit
// Content-Type (never guessed from the host's mime tables); HTML pages carry
// a strict Content-Security-Policy that allows scripts, styles and
// websockets from the page's own origin only and no inline script or style.
// Files are served with a content-hash ETag and revalidated on every use.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"
)

//go:embed static
var embedded embed.FS

// ContentSecurityPolicy is sent with every HTML page. 'self' in connect-src
// covers ws: and wss: to the page's own host and port.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// contentTypes maps the extensions of the embedded files to their types.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// asset is one embedded file, read once at start.
type asset struct {
	name  string
	body  []byte
	ctype string
	etag  string
}

var assets = loadAssets()

func loadAssets() map[string]*asset {
	sub, err := fs.Sub(embedded, "static")
	if err != nil {
		panic(err)
	}
	out := make(map[string]*asset)
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("web: no content type for embedded file %s", p)
		}
		body, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		out[p] = &asset{name: p, body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic(err) // a build with a file we cannot serve is a programming error
	}
	return out
}

// FS returns the embedded files, rooted at the static directory.
func FS() fs.FS {
	sub, _ := fs.Sub(embedded, "static")
	return sub
}

// Files returns the names of the embedded files, sorted.
func Files() []string {
	names := make([]string, 0, len(assets))
	for name := range assets {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// ContentType returns the Content-Type that name is served with, or "".
func ContentType(name string) string {
	if a := assets[name]; a != nil {
		return a.ctype
	}
	return ""
}

// Register adds the routes GET / (the chat room) and GET /static/ (the
// embedded files) to mux.
func Register(mux *http.ServeMux) {
	mux.Handle("GET /{$}", Index())
	mux.Handle("GET /static/", http.StripPrefix("/static/", Static()))
}

// Index serves the chat room page.
func Index() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, assets["index.html"])
	})
}

// Static serves the embedded files by name, relative to the static
// directory (mount it with http.StripPrefix). Directories and unknown names
// are 404.
func Static() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := assets[strings.TrimPrefix(r.URL.Path, "/")]
		if a == nil {
			http.NotFound(w, r)
			return
		}
		serve(w, r, a)
	})
}

func serve(w http.ResponseWriter, r *http.Request, a *asset) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache") // revalidate: the ETag makes that cheap
	h.Set("ETag", a.etag)
	if strings.HasPrefix(a.ctype, "text/html") {
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
	}
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}
