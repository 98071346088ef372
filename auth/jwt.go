package auth

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/golang-jwt/jwt/v5"
)

// DefaultLeeway is the clock skew allowed on "exp", "nbf" and "iat" when
// Config.Leeway is zero.
const DefaultLeeway = 30 * time.Second

// Config configures a Verifier. Exactly one of Secret and KeyFile is set.
type Config struct {
	// Secret is the HS256 shared secret.
	Secret []byte
	// KeyFile is a PEM file holding an RSA or ECDSA public key (or a
	// certificate), or a JWKS file ({"keys":[...]}) whose keys are chosen
	// by the token's "kid".
	KeyFile string
	// Audience, if set, must be one of the token's "aud".
	Audience string
	// Issuer, if set, must be the token's "iss".
	Issuer string
	// Leeway is the clock skew allowed (default DefaultLeeway; negative: none).
	Leeway time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Claims are the claims a firetower token carries.
type Claims struct {
	jwt.RegisteredClaims
	// Subs lists the topics the client may subscribe to.
	Subs []string `json:"subs,omitempty"`
	// Pubs lists the topics the client may publish on.
	Pubs []string `json:"pubs,omitempty"`
}

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	keys   keySet
	parser *jwt.Parser
	leeway time.Duration
}

var _ gateway.Authenticator = (*Verifier)(nil)

// New returns a Verifier for cfg, reading the key file once.
func New(cfg Config) (*Verifier, error) {
	var (
		keys keySet
		err  error
	)
	switch {
	case len(cfg.Secret) > 0 && cfg.KeyFile != "":
		return nil, ErrBothKeys
	case len(cfg.Secret) > 0:
		keys = keySet{{alg: "HS256", key: cfg.Secret}}
	case cfg.KeyFile != "":
		if keys, err = loadKeyFile(cfg.KeyFile); err != nil {
			return nil, err
		}
	default:
		return nil, ErrNoKey
	}
	leeway := cfg.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(keys.algs()),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(cfg.Now))
	}
	return &Verifier{keys: keys, parser: jwt.NewParser(opts...), leeway: leeway}, nil
}

// Verify checks a token and returns its claims.
func (v *Verifier) Verify(token string) (*Claims, error) {
	claims := &Claims{}
	_, err := v.parser.ParseWithClaims(token, claims, v.keys.keyFunc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return claims, nil
}

var _ gateway.TokenAuthenticator = (*Verifier)(nil)

// Authenticate implements gateway.Authenticator: the token comes from the
// "token" query parameter or an "Authorization: Bearer" header. The
// connection is closed (4403) when the token expires, leeway included.
func (v *Verifier) Authenticate(r *http.Request) (*gateway.Identity, error) {
	return v.AuthenticateToken(TokenFromRequest(r))
}

// AuthenticateToken implements gateway.TokenAuthenticator: the identity
// of a token, for the upgrade and for a v2 client's refresh.
func (v *Verifier) AuthenticateToken(token string) (*gateway.Identity, error) {
	if token == "" {
		return nil, ErrNoToken
	}
	claims, err := v.Verify(token)
	if err != nil {
		return nil, err
	}
	id := &gateway.Identity{UserID: claims.Subject, Subscribe: claims.Subs, Publish: claims.Pubs}
	if claims.ExpiresAt != nil {
		id.Expires = claims.ExpiresAt.Add(v.leeway)
	}
	return id, nil
}

// TokenFromRequest returns the "token" query parameter, or else the
// credentials of an "Authorization: Bearer" header, or "".
func TokenFromRequest(r *http.Request) string {
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(cred)
	}
	return ""
}
