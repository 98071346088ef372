package gateway

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
)

// Upgrade checks the request's Origin against the allow-list, negotiates the
// protocol (the "firetower.v2" subprotocol, or v1) and upgrades it to a
// websocket for BuildTower. On failure it has already answered the request
// (403 for a foreign origin, 503 while draining or above MaxConnections,
// 429 above MaxConnectionsPerIP or ConnectRate, 401 when Config.Authenticator refuses the
// request, 400 for a bad handshake) and returns the error. With
// Config.Authenticator the connection's Identity is kept for BuildTower (and
// dropped when the connection is garbage collected if no tower is built).
func (g *Gateway) Upgrade(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	g.mu.Lock()
	draining, closed := g.draining, g.closed.Load()
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
	if err := g.checkConnLimits(w, r); err != nil {
		return nil, err
	}
	var id *Identity
	if g.cfg.Authenticator != nil {
		var err error
		if id, err = g.cfg.Authenticator.Authenticate(r); err != nil || id == nil {
			g.stats.authFailures.Add(1)
			msg := "no identity"
			if err != nil {
				msg = err.Error()
			}
			g.log.Info("websocket upgrade unauthorized", "remote", r.RemoteAddr, "err", msg)
			w.Header().Set("WWW-Authenticate", `Bearer realm="firetower"`)
			http.Error(w, "firetower: unauthorized: "+msg, http.StatusUnauthorized)
			return nil, fmt.Errorf("%w: %s", ErrUnauthorized, msg)
		}
	}
	ws, err := g.upgrader().Upgrade(w, r, nil)
	if err == nil && id != nil {
		g.idents.put(ws, id)
	}
	return ws, err
}

// checkConnLimits answers 503 above MaxConnections and 429 above
// MaxConnectionsPerIP or ConnectRate. The connection limits are checked
// against the running towers: upgrades racing each other may pass them by
// the few not yet running. An upgrade refused by them takes no token of
// the connection rate.
func (g *Gateway) checkConnLimits(w http.ResponseWriter, r *http.Request) error {
	if g.cfg.MaxConnections == 0 && g.cfg.MaxConnectionsPerIP == 0 && g.cfg.ConnectRate == 0 {
		return nil
	}
	ip := hostOf(r.RemoteAddr)
	g.mu.Lock()
	total, perIP := len(g.towers), g.perIP[ip]
	g.mu.Unlock()
	if g.cfg.MaxConnections > 0 && total >= g.cfg.MaxConnections {
		g.stats.connLimited.Add(1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "firetower: node connection limit reached, connect to another node", http.StatusServiceUnavailable)
		return ErrTooManyConns
	}
	if g.cfg.MaxConnectionsPerIP > 0 && perIP >= g.cfg.MaxConnectionsPerIP {
		g.stats.ipLimited.Add(1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "firetower: too many connections from this address", http.StatusTooManyRequests)
		return ErrTooManyConnsIP
	}
	if g.cfg.ConnectRate > 0 {
		ok, retry, full := g.connRate.allow(connRateKey(ip), time.Now(), g.cfg.ConnectRate, g.cfg.ConnectBurst, g.cfg.ConnectRateMaxAddresses)
		if !ok {
			g.stats.connRateLimited.Add(1)
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
			msg := "firetower: too many new connections from this address, retry later"
			if full {
				msg = "firetower: too many addresses connecting at once, retry later"
			}
			http.Error(w, msg, http.StatusTooManyRequests)
			return ErrConnectRate
		}
	}
	return nil
}

// hostOf returns the host part of a "host:port" address (the address
// itself if it has no port).
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
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
