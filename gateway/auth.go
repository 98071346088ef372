package gateway

import (
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/gorilla/websocket"
)

// Authenticator checks the upgrade request of a connection (Config.
// Authenticator). It is called by Gateway.Upgrade, before the websocket
// handshake, possibly from many goroutines at once. An error refuses the
// upgrade with HTTP 401 and the error's text; package auth provides a JWT
// implementation.
type Authenticator interface {
	Authenticate(r *http.Request) (*Identity, error)
}

// TokenAuthenticator is an Authenticator that can also check a token on
// its own: v2 clients then renew their credentials on an open connection
// with {"type":"refresh","token":"..."} before they expire. The new
// identity must name the same user; its grants and expiry replace the old
// ones. Package auth's Verifier implements it.
type TokenAuthenticator interface {
	Authenticator
	AuthenticateToken(token string) (*Identity, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(r *http.Request) (*Identity, error)

// Authenticate calls f(r).
func (f AuthenticatorFunc) Authenticate(r *http.Request) (*Identity, error) { return f(r) }

// Identity is what an Authenticator learnt about a client. Grants are deny
// by default: a topic the client may use is listed exactly, or matched by a
// prefix ending in "*" ("chat.*"); "*" alone grants every topic.
type Identity struct {
	// UserID becomes the tower's UserId before Run.
	UserID string
	// Expires, if not zero, is when the credentials end: the connection is
	// then closed with 4403 (protocol.CloseTokenExpired).
	Expires time.Time
	// Subscribe and Publish are the topics the client may subscribe to and
	// publish on, checked before BeforeSubscribeHandler and ReadHandler.
	Subscribe []string
	Publish   []string
}

// Granted reports whether topic matches one of the grants: an exact topic,
// or a prefix followed by "*".
func Granted(grants []string, topic string) bool {
	for _, g := range grants {
		if prefix, ok := strings.CutSuffix(g, "*"); ok {
			if strings.HasPrefix(topic, prefix) {
				return true
			}
		} else if g == topic {
			return true
		}
	}
	return false
}

// identities hands the Identity found by Upgrade to BuildTower, keyed by
// the upgraded connection; BuildTower takes it out. The key is a weak
// pointer with a cleanup, so an application that upgrades and never builds
// a tower does not leave an entry behind once the connection is collected.
type identities struct {
	m sync.Map // weak.Pointer[websocket.Conn] -> *Identity
}

func (ids *identities) put(ws *websocket.Conn, id *Identity) {
	key := weak.Make(ws)
	ids.m.Store(key, id)
	runtime.AddCleanup(ws, func(k weak.Pointer[websocket.Conn]) { ids.m.Delete(k) }, key)
}

func (ids *identities) take(ws *websocket.Conn) *Identity {
	v, ok := ids.m.LoadAndDelete(weak.Make(ws))
	if !ok {
		return nil
	}
	return v.(*Identity)
}
