package pushapi

import (
	"net/http"

	"github.com/firetower-go/firetower/internal/apikey"
)

// Auth says who may call the API: the holders of one key, or, only when
// asked for explicitly with InsecureAuth, anyone. The zero Auth lets no one
// in, so that the API never runs open by accident.
type Auth struct {
	key      string
	insecure bool
}

// NewAuth returns an Auth that accepts key (sent as "Authorization: Bearer
// KEY" or "X-API-Key: KEY", the same names in gRPC metadata). An empty key
// is refused with ErrNoKey.
func NewAuth(key string) (Auth, error) {
	if key == "" {
		return Auth{}, ErrNoKey
	}
	return Auth{key: key}, nil
}

// InsecureAuth returns an Auth that lets every caller in.
func InsecureAuth() Auth { return Auth{insecure: true} }

// Insecure reports whether a lets every caller in.
func (a Auth) Insecure() bool { return a.insecure }

// Check reports whether a presented key (possibly empty) is accepted. The
// comparison takes constant time.
func (a Auth) Check(presented string) bool {
	return a.insecure || apikey.Equal(presented, a.key)
}

// CheckHeader reports whether the headers that get returns carry an
// accepted key (get is http.Header.Get or a gRPC metadata lookup).
func (a Auth) CheckHeader(get func(name string) string) bool {
	return a.insecure || a.Check(apikey.FromHeader(get))
}

// CheckRequest reports whether r carries an accepted key.
func (a Auth) CheckRequest(r *http.Request) bool { return a.CheckHeader(r.Header.Get) }

// Wrap returns next behind a: a request without an accepted key gets 401
// with the API's error body.
func (a Auth) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.CheckRequest(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="firetower"`)
			writeError(w, errorf(CodeUnauthenticated, "missing or wrong API key (send Authorization: Bearer KEY or X-API-Key: KEY)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
