package gateway

import (
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
)

// Upgrade checks the request's Origin against the allow-list, negotiates the
// protocol (the "firetower.v2" subprotocol, or v1) and upgrades it to a
// websocket for BuildTower. On failure it has already answered the request
// (403 for a foreign origin, 503 while draining, 400 for a bad handshake)
// and returns the error.
func (g *Gateway) Upgrade(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	g.mu.Lock()
	draining, closed := g.draining, g.closed
	g.mu.Unlock()
	if draining || closed {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "firetower: server is shutting down, connect to another node", http.StatusServiceUnavailable)
		return nil, ErrDraining
	}
	if !g.originAllowed(r) {
		g.log.Info("websocket origin refused", "origin", r.Header.Get("Origin"), "host", r.Host, "remote", r.RemoteAddr)
		http.Error(w, "firetower: origin not allowed", http.StatusForbidden)
		return nil, ErrOriginNotAllowed
	}
	return g.upgrader().Upgrade(w, r, nil)
}

var writeBufferPool sync.Pool // gorilla writes only the rare error close frames itself

func (g *Gateway) upgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		HandshakeTimeout: g.cfg.HandshakeTimeout,
		ReadBufferSize:   1024,
		WriteBufferPool:  &writeBufferPool,
		Subprotocols:     []string{protocol.SubprotocolV2},
		// The origin was checked by Upgrade; compression stays off because
		// gorilla's read limit would count compressed bytes.
		CheckOrigin: func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			http.Error(w, "firetower: "+reason.Error(), status)
		},
	}
}

// originAllowed applies the Origin policy: no Origin header (a non-browser
// client) and same-origin requests are allowed; others must match
// Config.AllowedOrigins.
func (g *Gateway) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, allowed := range g.cfg.AllowedOrigins {
		if allowed == "*" {
			return true // also "Origin: null" (file: pages, sandboxed frames)
		}
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, allowed := range g.cfg.AllowedOrigins {
		if strings.EqualFold(allowed, origin) {
			return true
		}
		scheme, host, ok := strings.Cut(allowed, "://*.")
		if ok && strings.EqualFold(scheme, u.Scheme) && strings.HasSuffix(strings.ToLower(u.Host), "."+strings.ToLower(host)) {
			return true
		}
	}
	return false
}
