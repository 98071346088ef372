package dashboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/firetower-go/firetower/internal/apikey"
)

// CookieName is the session cookie set by the login form.
const CookieName = "firetower_dashboard"

// sessionVersion prefixes the cookie value; changing the format changes it,
// and older cookies stop working.
const sessionVersion = "v1"

// access is what a request may do.
type access int

const (
	accessNone access = iota // nothing but the login page
	accessView               // the views of the system (Config.Open)
	accessFull               // everything: the key, a session, or Insecure
)

// auth checks keys and session cookies.
//
// A session cookie is "v1.EXPIRY.MAC": EXPIRY in Unix seconds, MAC the
// HMAC-SHA256 of "v1.EXPIRY" under a key derived from the API key. It holds
// no secret, needs no server-side state, and is valid on every node that
// has the same API key (browsers send a host's cookies to all of its ports).
// Changing the API key ends every session; logging out clears the cookie in
// the browser but cannot revoke a copy of it before it expires.
type auth struct {
	key    string // the API key; "" when insecure
	macKey []byte
	ttl    time.Duration
}

func newAuth(key string, ttl time.Duration) auth {
	sum := sha256.Sum256([]byte("firetower dashboard session\x00" + key))
	return auth{key: key, macKey: sum[:], ttl: ttl}
}

func (a auth) mac(payload string) string {
	h := hmac.New(sha256.New, a.macKey)
	h.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// newSession returns a cookie value valid until now+ttl.
func (a auth) newSession(now time.Time) string {
	payload := sessionVersion + "." + strconv.FormatInt(now.Add(a.ttl).Unix(), 10)
	return payload + "." + a.mac(payload)
}

// validSession reports whether v is a session cookie of this key that has
// not expired.
func (a auth) validSession(v string, now time.Time) bool {
	if a.key == "" {
		return false
	}
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return false
	}
	payload, mac := v[:i], v[i+1:]
	ver, exp, ok := strings.Cut(payload, ".")
	if !ok || ver != sessionVersion {
		return false
	}
	expiry, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || now.Unix() >= expiry || expiry > now.Add(a.ttl).Unix()+60 {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(a.mac(payload)))
}

// access returns what r may do.
func (d *Dashboard) access(r *http.Request) access {
	if d.cfg.Insecure {
		return accessFull
	}
	if apikey.Valid(r, d.cfg.APIKey) {
		return accessFull
	}
	if c, err := r.Cookie(CookieName); err == nil && d.auth.validSession(c.Value, time.Now()) {
		return accessFull
	}
	if d.cfg.Open {
		return accessView
	}
	return accessNone
}

// sameOrigin refuses a cross-site browser request that would change
// something. The session cookie is SameSite=Strict already; this also
// covers browsers without SameSite. Sec-Fetch-Site, when the browser sends
// it, is decisive (our pages' no-referrer policy makes Chromium send
// "Origin: null" with same-origin form posts); otherwise Origin must name
// this host. Requests with neither header (curl, a script with the key)
// are not from a browser page.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return false
		}
	}
	return true
}

// setSession sets the session cookie.
func (d *Dashboard) setSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name:     CookieName,
		Value:    d.auth.newSession(time.Now()),
		Path:     "/",
		MaxAge:   int(d.cfg.SessionTTL / time.Second),
		HttpOnly: true,
		Secure:   isHTTPS(r),
		SameSite: http.SameSiteStrictMode,
	})
}

// clearSession removes the session cookie.
func clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: isHTTPS(r), SameSite: http.SameSiteStrictMode,
	})
}

// isHTTPS reports whether the browser reached us over TLS, directly or
// through a proxy that says so.
func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// RequireKey wraps h so that it answers only requests with the API key or a
// dashboard session (or every request when Insecure): 401 otherwise,
// whatever Config.Open says. The server puts pprof behind it.
func (d *Dashboard) RequireKey(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.access(r) != accessFull {
			w.Header().Set("WWW-Authenticate", `Bearer realm="firetower"`)
			http.Error(w, "401 unauthorized: the API key is required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
