package gateway_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
)

// headerAuth accepts requests whose "user" query parameter is set, with the
// grants of the test; "expires" in the query sets the expiry in
// milliseconds from now.
func headerAuth(subs, pubs []string) gateway.Authenticator {
	return gateway.AuthenticatorFunc(func(r *http.Request) (*gateway.Identity, error) {
		user := r.URL.Query().Get("user")
		if user == "" {
			return nil, errors.New("no user")
		}
		id := &gateway.Identity{UserID: user, Subscribe: subs, Publish: pubs}
		if ms := r.URL.Query().Get("expires"); ms != "" {
			d, _ := time.ParseDuration(ms + "ms")
			id.Expires = time.Now().Add(d)
		}
		return id, nil
	})
}

// dialStatus dials and returns the HTTP status of a refused upgrade and its
// body, or 101 with the open connection.
func dialStatus(t testing.TB, url string, v2 bool) (int, string, *websocket.Conn) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if v2 {
		d.Subprotocols = []string{protocol.SubprotocolV2}
	}
	c, resp, err := d.Dial(url, nil)
	if err == nil {
		resp.Body.Close()
		t.Cleanup(func() { c.Close() })
		return resp.StatusCode, "", c
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	var body strings.Builder
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	body.Write(buf[:n])
	resp.Body.Close()
	return resp.StatusCode, body.String(), nil
}

// TestAuthenticatorRefusesAndSetsUser: an upgrade the Authenticator refuses
// gets 401 with the reason; an accepted one runs with the UserId it gave.
func TestAuthenticatorRefusesAndSetsUser(t *testing.T) {
	cfg := quietConfig()
	cfg.Authenticator = headerAuth([]string{"*"}, []string{"*"})
	users := make(chan string, 1)
	ts := newTestServer(t, cfg, func(tower *gateway.FireTower) { users <- tower.UserId })

	status, body, _ := dialStatus(t, ts.url, true)
	if status != http.StatusUnauthorized || !strings.Contains(body, "unauthorized: no user") {
		t.Fatalf("without credentials: %d %q, want 401 with the reason", status, body)
	}
	if s := ts.gw.Stats(); s.AuthFailures != 1 {
		t.Fatalf("AuthFailures = %d, want 1", s.AuthFailures)
	}
	dial(t, ts.url+"?user=alice", true)
	select {
	case u := <-users:
		if u != "alice" {
			t.Fatalf("UserId %q before Run, want alice", u)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no tower built")
	}
}

// TestGrants: subscribes and publishes outside the grants are refused with
// 403 (v2) or dropped and counted (v1) before any callback; those inside
// work.
func TestGrants(t *testing.T) {
	cfg := quietConfig()
	cfg.Authenticator = headerAuth([]string{"news", "chat.*"}, []string{"chat.*"})
	log := &eventLog{}
	ts := newTestServer(t, cfg, recordingSetup(log, nil))

	c := dial(t, ts.url+"?user=bob", true)
	send(t, c, `{"id":1,"type":"subscribe","topics":["chat.room1","news"]}`)
	expectAck(t, c, "1")
	send(t, c, `{"id":2,"type":"subscribe","topics":["news","secret"]}`)
	expectError(t, c, "2", protocol.CodeForbidden)
	send(t, c, `{"id":3,"type":"subscribe","topic":"chat"}`) // the prefix is "chat.", not "chat"
	expectError(t, c, "3", protocol.CodeForbidden)
	send(t, c, `{"id":4,"type":"publish","topic":"news","data":1}`)
	expectError(t, c, "4", protocol.CodeForbidden)
	send(t, c, `{"id":5,"type":"publish","topic":"chat.room1","data":2}`)
	got := []string{next(t, c), next(t, c)} // the delivery and the ack, in either order
	if !strings.Contains(strings.Join(got, " "), `"data":2`) {
		t.Fatalf("publish inside the grants: got %q", got)
	}
	if s, r := log.count("subscribe "), log.count("read "); s != 1 || r != 1 {
		t.Fatalf("SubscribeHandler ran %d times, ReadHandler %d, want 1 each (only inside the grants): %v", s, r, log.list())
	}

	v1 := dial(t, ts.url+"?user=carol", false)
	send(t, v1, `{"type":"subscribe","topic":"secret"}`)
	send(t, v1, `{"type":"publish","topic":"news","data":3}`)
	waitStats(t, ts.gw, "5 forbidden frames", func(s gateway.Stats) bool { return s.Forbidden == 5 })
	if topics := ts.gw.LocalConnectNum("secret"); topics != 0 {
		t.Fatalf("secret has %d subscribers", topics)
	}
}

// TestTokenExpiryClose: a connection whose identity expires is closed with
// 4403; another one is not disturbed.
func TestTokenExpiryClose(t *testing.T) {
	cfg := quietConfig()
	cfg.Authenticator = headerAuth([]string{"*"}, []string{"*"})
	ts := newTestServer(t, cfg, nil)
	long := dial(t, ts.url+"?user=long", true)
	short := dial(t, ts.url+"?user=short&expires=200", true)
	if code := closeCode(t, short); code != protocol.CloseTokenExpired {
		t.Fatalf("close code %d, want %d", code, protocol.CloseTokenExpired)
	}
	if s := ts.gw.Stats(); s.TokenExpired != 1 {
		t.Fatalf("TokenExpired = %d, want 1", s.TokenExpired)
	}
	send(t, long, `{"id":1,"type":"subscribe","topic":"x"}`)
	expectAck(t, long, "1")
}

// TestConnectionLimits: the connection past MaxConnectionsPerIP gets 429,
// past MaxConnections 503; the open ones keep working and a slot freed is
// usable again.
func TestConnectionLimits(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     func(*gateway.Config)
		status  int
		counter func(gateway.Stats) int64
	}{
		{"per node", func(c *gateway.Config) { c.MaxConnections = 3 }, http.StatusServiceUnavailable, func(s gateway.Stats) int64 { return s.ConnLimited }},
		{"per IP", func(c *gateway.Config) { c.MaxConnectionsPerIP = 3 }, http.StatusTooManyRequests, func(s gateway.Stats) int64 { return s.IPLimited }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := quietConfig()
			tc.cfg(&cfg)
			ts := newTestServer(t, cfg, nil)
			var open []*websocket.Conn
			for i := range 3 {
				open = append(open, dial(t, ts.url, true))
				waitStats(t, ts.gw, "connections", func(s gateway.Stats) bool { return s.Connections == int64(i+1) })
			}
			status, body, _ := dialStatus(t, ts.url, true)
			if status != tc.status || body == "" {
				t.Fatalf("connection 4: %d %q, want %d with a reason", status, body, tc.status)
			}
			if n := tc.counter(ts.gw.Stats()); n != 1 {
				t.Fatalf("refusals counted %d, want 1", n)
			}
			for _, c := range open {
				send(t, c, `{"id":1,"type":"subscribe","topic":"t"}`)
				expectAck(t, c, "1")
			}
			open[0].Close()
			waitStats(t, ts.gw, "a slot freed", func(s gateway.Stats) bool { return s.Connections == 2 })
			dial(t, ts.url, true)
		})
	}
}

// TestPublishRateLimit: past the burst, publishes are refused with 429 (v2)
// or dropped (v1) and counted.
func TestPublishRateLimit(t *testing.T) {
	cfg := quietConfig()
	cfg.PublishRate = 0.001 // no token comes back during the test
	cfg.PublishBurst = 2
	ts := newTestServer(t, cfg, nil)
	c := dial(t, ts.url, true)
	for i := 1; i <= 2; i++ {
		send(t, c, `{"id":`+string(rune('0'+i))+`,"type":"publish","topic":"r","data":1}`)
		expectAck(t, c, string(rune('0'+i)))
	}
	send(t, c, `{"id":3,"type":"publish","topic":"r","data":1}`)
	expectError(t, c, "3", protocol.CodeLimitExceeded)

	other := dial(t, ts.url, true) // its own bucket
	send(t, other, `{"id":1,"type":"publish","topic":"r","data":1}`)
	expectAck(t, other, "1")

	v1 := dial(t, ts.url, false)
	for range 3 {
		send(t, v1, `{"type":"publish","topic":"r","data":1}`)
	}
	waitStats(t, ts.gw, "2 rate-limited", func(s gateway.Stats) bool { return s.RateLimited == 2 })
}

func TestLimitConfigValidate(t *testing.T) {
	for _, cfg := range []gateway.Config{{MaxConnections: -1}, {MaxConnectionsPerIP: -1}, {PublishRate: -1}, {PublishBurst: -1}} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
