package server_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/firetower-go/firetower/auth"
	"github.com/firetower-go/firetower/server"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// TestJWTFlags: the auth and limit flags reach the server's config.
func TestJWTFlags(t *testing.T) {
	emptyDir(t)
	o := parse(t, []string{"--jwt-audience", "chat", "--jwt-issuer", "me", "--jwt-leeway", "5s",
		"--max-connections", "1000", "--max-connections-per-ip", "20", "--publish-rate", "50", "--publish-burst", "100"},
		map[string]string{"FIRETOWER_JWT_SECRET": "s3cret"})
	j, gw := o.Server.JWT, o.Server.Gateway
	if string(j.Secret) != "s3cret" || j.Audience != "chat" || j.Issuer != "me" || j.Leeway != 5*time.Second {
		t.Errorf("JWT config %+v", j)
	}
	if gw.MaxConnections != 1000 || gw.MaxConnectionsPerIP != 20 || gw.PublishRate != 50 || gw.PublishBurst != 100 {
		t.Errorf("limits %d %d %v %d", gw.MaxConnections, gw.MaxConnectionsPerIP, gw.PublishRate, gw.PublishBurst)
	}
	if o := parse(t, nil, nil); len(o.Server.JWT.Secret) != 0 || o.Server.JWT.KeyFile != "" || o.Server.Gateway.MaxConnectionsPerIP != 0 {
		t.Errorf("defaults: auth or limits on without flags: %+v", o.Server.JWT)
	}
	if _, err := server.ParseServe([]string{"--jwt-secret", "a", "--jwt-key", "b"}, fakeEnv(nil), io.Discard); err == nil {
		t.Error("--jwt-secret with --jwt-key accepted")
	}
}

// TestJWTServe: with a secret, /ws refuses a client without a token (401)
// and serves the chat to one with a token granting the topic.
func TestJWTServe(t *testing.T) {
	secret := []byte("a-secret-for-the-server-test-0123456789")
	ts := startServer(t, server.Config{JWT: auth.Config{Secret: secret}})

	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial(ts.ws, nil)
	if err == nil {
		_ = c.Close()
		t.Fatal("upgraded without a token")
	}
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %v, want 401", err)
	}
	_ = resp.Body.Close()

	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u1", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		Subs:             []string{"/chat/*"},
		Pubs:             []string{"/chat/*"},
	}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	c = dial(t, ts.ws, http.Header{"Authorization": {"Bearer " + token}})
	send(t, c, subscribeWorld)
	expect(t, c, "authenticated client", `{"type":"onSubscribe","data":1}`)
	if n := ts.srv.Gateway().Stats().AuthFailures; n != 1 {
		t.Fatalf("AuthFailures = %d, want 1", n)
	}
}
