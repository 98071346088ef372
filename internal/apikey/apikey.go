// Package apikey checks the API key that protects the push API and the
// dashboard: sent as "Authorization: Bearer KEY" or "X-API-Key: KEY" over
// HTTP, and the same names in gRPC metadata. Keys are compared in constant
// time.
package apikey

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
)

// Header is the alternative to "Authorization: Bearer".
const Header = "X-API-Key"

// Generate returns a new random key (32 bytes, URL-safe base64).
func Generate() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// FromHeader returns the key a request carries: the Bearer token of the
// Authorization header, else the X-API-Key header. get is http.Header.Get or
// a gRPC metadata lookup.
func FromHeader(get func(name string) string) string {
	if v := get("Authorization"); v != "" {
		if scheme, token, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(token)
		}
	}
	return strings.TrimSpace(get(Header))
}

// Equal compares a presented key with the configured one in constant time
// (for keys of equal length; the length itself is not secret). An empty
// configured key matches nothing.
func Equal(presented, want string) bool {
	if want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(presented), []byte(want)) == 1
}

// Valid reports whether r carries the key want.
func Valid(r *http.Request, want string) bool {
	return Equal(FromHeader(r.Header.Get), want)
}
