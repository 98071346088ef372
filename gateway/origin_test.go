package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
)

// TestOriginPolicy checks the cross-site websocket hijacking defence: a
// foreign Origin gets 403 with a message, same-origin and Origin-less
// requests are upgraded, and Config.AllowedOrigins matches exactly, "*", or
// subdomains of a "scheme://*.domain" pattern.
func TestOriginPolicy(t *testing.T) {
	const (
		allow   = http.StatusSwitchingProtocols
		refuse  = http.StatusForbidden
		noValue = "\x00" // send no Origin header
	)
	configs := []struct {
		name    string
		allowed []string
		cases   []struct {
			origin string
			want   int
		}
	}{
		{"default", nil, []struct {
			origin string
			want   int
		}{
			{noValue, allow},
			{"same-origin", allow},
			{"https://evil.example.net", refuse},
			{"http://127.0.0.1:1", refuse}, // same host, another port
			{"http://localhost", refuse},
			{"null", refuse}, // sandboxed documents
			{"", allow},      // an empty header is no Origin
			{"not a url", refuse},
		}},
		{"list", []string{"https://app.example.org", "https://*.example.com"}, []struct {
			origin string
			want   int
		}{
			{"https://app.example.org", allow},
			{"HTTPS://APP.EXAMPLE.ORG", allow}, // scheme and host are case-insensitive
			{"http://app.example.org", refuse},
			{"https://app.example.org:8443", refuse},
			{"https://other.example.org", refuse},
			{"https://a.example.com", allow},
			{"https://a.b.example.com", allow},
			{"https://A.Example.COM", allow},
			{"https://example.com", refuse}, // the pattern names subdomains only
			{"http://a.example.com", refuse},
			{"https://evilexample.com", refuse},
			{"https://a.example.com.evil.net", refuse},
			{"https://a.example.com:444", refuse},
			{"same-origin", allow},
			{noValue, allow},
		}},
		{"star", []string{"*"}, []struct {
			origin string
			want   int
		}{
			{"https://evil.example.net", allow},
			{"null", allow},
			{noValue, allow},
		}},
	}
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			ts := newTestServer(t, gateway.Config{Logger: silentLogger, AllowedOrigins: cfg.allowed}, nil)
			host := strings.TrimPrefix(ts.srv.URL, "http://")
			accepted := 0
			for _, tc := range cfg.cases {
				h := http.Header{}
				switch tc.origin {
				case noValue:
				case "same-origin":
					h.Set("Origin", "http://"+host)
				default:
					h["Origin"] = []string{tc.origin}
				}
				resp, body, rc := rawHandshake(t, ts.url, h)
				if rc != nil {
					accepted++
					_ = rc.nc.Close()
				}
				if resp.StatusCode != tc.want {
					t.Errorf("Origin %q: %s %q, want %d", h.Get("Origin"), resp.Status, body, tc.want)
					continue
				}
				if rc == nil && !strings.Contains(body, "origin not allowed") {
					t.Errorf("Origin %q: 403 body %q does not say why", h.Get("Origin"), body)
				}
			}
			// Refused requests never became connections.
			waitStats(t, ts.gw, "accepted connections ended", func(s gateway.Stats) bool {
				return s.ConnectsTotal == int64(accepted) && s.Connections == 0
			})
		})
	}
}

// TestUpgradeRefusedWhileDraining: once Shutdown has started, Upgrade
// answers 503 with Retry-After, whatever the Origin; and still after
// Shutdown returned.
func TestUpgradeRefusedWhileDraining(t *testing.T) {
	ts := newTestServer(t, gateway.Config{Logger: silentLogger, CloseGrace: 100 * time.Millisecond}, nil)
	baseline := runtime.NumGoroutine()
	dial(t, ts.url, false)
	dial(t, ts.url, true)
	waitStats(t, ts.gw, "clients connected", func(s gateway.Stats) bool { return s.Connections == 2 })

	// Two clients and a one-minute drain: the second close is 30 s away,
	// so the gateway is draining until the context is cancelled.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	shutdown := make(chan error, 1)
	go func() { shutdown <- ts.gw.Shutdown(ctx, time.Minute) }()

	refused := func(origin string) (*http.Response, string) {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		resp, body, rc := rawHandshake(t, ts.url, h)
		if rc != nil {
			_ = rc.nc.Close()
		}
		return resp, body
	}
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if resp, body := refused(""); resp.StatusCode != http.StatusServiceUnavailable {
			return errors.New("upgrade not refused yet: " + resp.Status + " " + body)
		}
		return nil
	})
	resp, body := refused("https://evil.example.net")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "shutting down") {
		t.Errorf("while draining: %s, Retry-After %q, body %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"), body)
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned during a one-minute drain: %v", err)
	default:
	}

	cancel()
	select {
	case err := <-shutdown:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after its context was cancelled")
	}
	if resp, body := refused(""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Shutdown: %s %q, want 503", resp.Status, body)
	}
	waitStats(t, ts.gw, "clients closed", func(s gateway.Stats) bool { return s.Connections == 0 && s.DisconnectsTotal == 2 })
	goroutinesSettle(t, baseline)
}
