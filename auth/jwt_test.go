package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/auth"
	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

var secret = []byte("test-secret-of-at-least-32-bytes!!")

// claims returns valid claims for user, with grants on "room.*".
func claims(user string) auth.Claims {
	now := time.Now()
	return auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   user,
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
			IssuedAt:  jwt.NewNumericDate(now),
		},
		Subs: []string{"room.*"},
		Pubs: []string{"room.*"},
	}
}

func sign(t testing.TB, m jwt.SigningMethod, c auth.Claims, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type server struct {
	url   string
	users chan string
	gw    *gateway.Gateway
}

// newServer runs a gateway authenticating with cfg over 127.0.0.1.
func newServer(t testing.TB, cfg auth.Config) *server {
	t.Helper()
	v, err := auth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{Authenticator: v, Logger: slog.New(slog.DiscardHandler), CloseGrace: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s := &server{users: make(chan string, 16), gw: gw}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := gw.Upgrade(w, r)
		if err != nil {
			return
		}
		tower := gw.BuildTower(ws, "")
		s.users <- tower.UserId
		tower.SetReadHandler(func(fire *gateway.FireInfo) bool { _ = tower.Publish(fire); return true })
		tower.Run()
	}))
	s.url = "ws" + strings.TrimPrefix(hs.URL, "http")
	t.Cleanup(func() {
		_ = gw.Close()
		hs.Close()
	})
	return s
}

// dial connects with token in the query (or, with bearer, the header) and
// returns the HTTP status and body of a refusal, or 101 and the connection.
func (s *server) dial(t testing.TB, token string, bearer bool) (int, string, *websocket.Conn) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{protocol.SubprotocolV2}}
	url, h := s.url, http.Header{}
	switch {
	case bearer:
		h.Set("Authorization", "Bearer "+token)
	case token != "":
		url += "?token=" + token
	}
	c, resp, err := d.Dial(url, h)
	if err == nil {
		resp.Body.Close()
		t.Cleanup(func() { c.Close() })
		return resp.StatusCode, "", c
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), nil
}

func (s *server) expectUser(t testing.TB, want string) {
	t.Helper()
	select {
	case u := <-s.users:
		if u != want {
			t.Fatalf("UserId %q, want %q", u, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no connection reached the server")
	}
}

func writePEM(t testing.TB, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHS256(t *testing.T) {
	s := newServer(t, auth.Config{Secret: secret, Audience: "chat", Issuer: "https://id.example"})
	good := claims("alice")
	good.Audience = jwt.ClaimStrings{"chat"}
	good.Issuer = "https://id.example"

	if status, body, _ := s.dial(t, sign(t, jwt.SigningMethodHS256, good, secret), false); status != http.StatusSwitchingProtocols {
		t.Fatalf("valid token in the query: %d %s", status, body)
	}
	s.expectUser(t, "alice")
	good.Subject = "bob"
	if status, body, _ := s.dial(t, sign(t, jwt.SigningMethodHS256, good, secret), true); status != http.StatusSwitchingProtocols {
		t.Fatalf("valid token as a bearer: %d %s", status, body)
	}
	s.expectUser(t, "bob")

	bad := map[string]string{"no token": ""}
	c := good
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-2 * time.Minute)) // past the 30 s leeway
	bad["expired"] = sign(t, jwt.SigningMethodHS256, c, secret)
	c = good
	c.NotBefore = jwt.NewNumericDate(time.Now().Add(2 * time.Minute))
	bad["not yet valid"] = sign(t, jwt.SigningMethodHS256, c, secret)
	c = good
	c.ExpiresAt = nil
	bad["no exp"] = sign(t, jwt.SigningMethodHS256, c, secret)
	bad["wrong key"] = sign(t, jwt.SigningMethodHS256, good, []byte("another-secret-of-at-least-32-bytes"))
	bad["alg none"] = sign(t, jwt.SigningMethodNone, good, jwt.UnsafeAllowNoneSignatureType)
	c = good
	c.Audience = jwt.ClaimStrings{"other"}
	bad["wrong audience"] = sign(t, jwt.SigningMethodHS256, c, secret)
	c = good
	c.Issuer = "https://evil.example"
	bad["wrong issuer"] = sign(t, jwt.SigningMethodHS256, c, secret)
	bad["HS512"] = sign(t, jwt.SigningMethodHS512, good, secret)
	bad["garbage"] = "not.a.token"
	for name, token := range bad {
		status, body, _ := s.dial(t, token, false)
		if status != http.StatusUnauthorized || !strings.Contains(body, "unauthorized") {
			t.Errorf("%s: %d %q, want 401 with a reason", name, status, body)
		}
	}
	if n := s.gw.Stats().AuthFailures; n != int64(len(bad)) {
		t.Fatalf("AuthFailures = %d, want %d", n, len(bad))
	}
}

// TestRS256: a key file pins RS256; an HS256 token whose "secret" is the
// public key's PEM (algorithm confusion) is refused.
func TestRS256(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	path := writePEM(t, "PUBLIC KEY", der)
	s := newServer(t, auth.Config{KeyFile: path})

	if status, body, _ := s.dial(t, sign(t, jwt.SigningMethodRS256, claims("rita"), priv), false); status != http.StatusSwitchingProtocols {
		t.Fatalf("valid RS256 token: %d %s", status, body)
	}
	s.expectUser(t, "rita")

	pemBytes, _ := os.ReadFile(path)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, token := range map[string]string{
		"HS256 signed with the public key": sign(t, jwt.SigningMethodHS256, claims("mallory"), pemBytes),
		"HS256 signed with the DER key":    sign(t, jwt.SigningMethodHS256, claims("mallory"), der),
		"alg none":                         sign(t, jwt.SigningMethodNone, claims("mallory"), jwt.UnsafeAllowNoneSignatureType),
		"wrong RSA key":                    sign(t, jwt.SigningMethodRS256, claims("mallory"), other),
	} {
		if status, body, _ := s.dial(t, token, false); status != http.StatusUnauthorized {
			t.Errorf("%s: %d %q, want 401", name, status, body)
		}
	}
}

func TestES256AndJWKS(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	s := newServer(t, auth.Config{KeyFile: writePEM(t, "PUBLIC KEY", der)})
	if status, body, _ := s.dial(t, sign(t, jwt.SigningMethodES256, claims("eve"), priv), false); status != http.StatusSwitchingProtocols {
		t.Fatalf("valid ES256 token: %d %s", status, body)
	}
	s.expectUser(t, "eve")

	// The same EC key and an RSA key in a JWKS, chosen by kid.
	rsaPriv, _ := rsa.GenerateKey(rand.Reader, 2048)
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	pub, _ := priv.PublicKey.ECDH() // the uncompressed point: 0x04 || X || Y
	point := pub.Bytes()
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "EC", "kid": "ec1", "crv": "P-256", "x": b64(point[1:33]), "y": b64(point[33:])},
		{"kty": "RSA", "kid": "rsa1", "alg": "RS256", "n": b64(rsaPriv.N.Bytes()), "e": b64(big.NewInt(int64(rsaPriv.E)).Bytes())},
	}})
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	s = newServer(t, auth.Config{KeyFile: path})
	withKid := func(m jwt.SigningMethod, kid string, c auth.Claims, key any) string {
		tok := jwt.NewWithClaims(m, c)
		tok.Header["kid"] = kid
		str, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return str
	}
	if status, body, _ := s.dial(t, withKid(jwt.SigningMethodES256, "ec1", claims("ec"), priv), false); status != http.StatusSwitchingProtocols {
		t.Fatalf("JWKS EC key: %d %s", status, body)
	}
	s.expectUser(t, "ec")
	if status, body, _ := s.dial(t, withKid(jwt.SigningMethodRS256, "rsa1", claims("rsa"), rsaPriv), false); status != http.StatusSwitchingProtocols {
		t.Fatalf("JWKS RSA key: %d %s", status, body)
	}
	s.expectUser(t, "rsa")
	if status, _, _ := s.dial(t, withKid(jwt.SigningMethodRS256, "ec1", claims("x"), rsaPriv), false); status != http.StatusUnauthorized {
		t.Fatalf("RS256 token naming the EC key: %d, want 401", status)
	}
}

// TestGrantsAndExpiry: the token's grants are enforced and the connection
// is closed with 4403 when the token expires.
func TestGrantsAndExpiry(t *testing.T) {
	s := newServer(t, auth.Config{Secret: secret, Leeway: -1})
	c := claims("gina")
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(2 * time.Second))
	status, body, ws := s.dial(t, sign(t, jwt.SigningMethodHS256, c, secret), false)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("dial: %d %s", status, body)
	}
	s.expectUser(t, "gina")
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, f := range []string{
		`{"id":1,"type":"subscribe","topic":"room.1"}`,
		`{"id":2,"type":"subscribe","topic":"admin"}`,
	} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
			t.Fatal(err)
		}
	}
	var replies []string
	for len(replies) < 2 {
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != protocol.PingV2 {
			replies = append(replies, string(b))
		}
	}
	if replies[0] != `{"type":"ack","id":1}` || !strings.Contains(replies[1], `"code":403`) {
		t.Fatalf("replies %q, want an ack then a 403", replies)
	}
	for {
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code != protocol.CloseTokenExpired {
				t.Fatalf("close code %d, want %d", ce.Code, protocol.CloseTokenExpired)
			}
			return
		}
		if err != nil {
			t.Fatalf("connection ended without a close frame: %v", err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := auth.New(auth.Config{}); !errors.Is(err, auth.ErrNoKey) {
		t.Errorf("no key: %v", err)
	}
	if _, err := auth.New(auth.Config{Secret: secret, KeyFile: "x"}); !errors.Is(err, auth.ErrBothKeys) {
		t.Errorf("both: %v", err)
	}
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(priv)
	if _, err := auth.New(auth.Config{KeyFile: writePEM(t, "EC PRIVATE KEY", der)}); !errors.Is(err, auth.ErrKeyFile) {
		t.Errorf("private key file: %v", err)
	}
}
