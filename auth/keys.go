package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"slices"

	"github.com/golang-jwt/jwt/v5"
)

// key is one verification key and the only algorithm it accepts: pinning
// the algorithm to the key is what refuses algorithm confusion (an HS256
// token "signed" with an RSA public key as the secret).
type key struct {
	kid string
	alg string
	key any // []byte, *rsa.PublicKey or *ecdsa.PublicKey
}

type keySet []key

func (ks keySet) algs() []string {
	var out []string
	for _, k := range ks {
		if !slices.Contains(out, k.alg) {
			out = append(out, k.alg)
		}
	}
	return out
}

// keyFunc picks the key for a token: by "kid" when the set has several keys,
// and only a key whose algorithm is the token's.
func (ks keySet) keyFunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	alg := t.Method.Alg()
	for _, k := range ks {
		if k.alg != alg || (len(ks) > 1 && kid != "" && k.kid != kid) {
			continue
		}
		return k.key, nil
	}
	return nil, fmt.Errorf("%w (alg %q, kid %q)", ErrUnknownKey, alg, kid)
}

func loadKeyFile(path string) (keySet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	if trimmed := bytes.TrimSpace(b); len(trimmed) > 0 && trimmed[0] == '{' {
		ks, err := parseJWKS(trimmed)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
		}
		return ks, nil
	}
	var ks keySet
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		pub, err := parsePEMBlock(block)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
		}
		k, err := publicKey("", pub)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
		}
		ks = append(ks, k)
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("%w: %s: no PEM public key or JWKS found", ErrKeyFile, path)
	}
	return ks, nil
}

func parsePEMBlock(block *pem.Block) (any, error) {
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	}
	return nil, fmt.Errorf("PEM block %q is not a public key (a private key does not belong here)", block.Type)
}

// publicKey pins the algorithm of an RSA or ECDSA public key.
func publicKey(kid string, pub any) (key, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < 2048 {
			return key{}, fmt.Errorf("RSA key of %d bits is below 2048", p.N.BitLen())
		}
		return key{kid: kid, alg: "RS256", key: p}, nil
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			return key{kid: kid, alg: "ES256", key: p}, nil
		case elliptic.P384():
			return key{kid: kid, alg: "ES384", key: p}, nil
		case elliptic.P521():
			return key{kid: kid, alg: "ES512", key: p}, nil
		}
		return key{}, fmt.Errorf("unsupported ECDSA curve %s", p.Curve.Params().Name)
	}
	return key{}, fmt.Errorf("unsupported public key type %T (want RSA or ECDSA)", pub)
}

// jwk is the subset of RFC 7517 used for RSA and EC public keys.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func parseJWKS(b []byte) (keySet, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, err
	}
	var ks keySet
	for i, j := range set.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		pub, err := j.public()
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, j.Kid, err)
		}
		k, err := publicKey(j.Kid, pub)
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, j.Kid, err)
		}
		if j.Alg != "" && j.Alg != k.alg {
			return nil, fmt.Errorf("key %d (kid %q): alg %q does not fit the key (%s)", i, j.Kid, j.Alg, k.alg)
		}
		ks = append(ks, k)
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("no signing key in the JWKS")
	}
	return ks, nil
}

func (j jwk) public() (any, error) {
	num := func(s string) (*big.Int, error) {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("bad base64url number %q", s)
		}
		return new(big.Int).SetBytes(b), nil
	}
	switch j.Kty {
	case "RSA":
		n, err := num(j.N)
		if err != nil {
			return nil, err
		}
		e, err := num(j.E)
		if err != nil {
			return nil, err
		}
		if !e.IsInt64() || e.Int64() > 1<<31-1 {
			return nil, fmt.Errorf("RSA exponent out of range")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("unsupported curve %q", j.Crv)
		}
		x, err := num(j.X)
		if err != nil {
			return nil, err
		}
		y, err := num(j.Y)
		if err != nil {
			return nil, err
		}
		//nolint:staticcheck // ecdsa.PublicKey from coordinates; validated by the check below
		if !curve.IsOnCurve(x, y) {
			return nil, fmt.Errorf("EC point is not on %s", j.Crv)
		}
		return &ecdsa.PublicKey{Curve: curve, X: x, Y: y}, nil
	}
	return nil, fmt.Errorf("unsupported kty %q", j.Kty)
}
