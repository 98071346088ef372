// Package auth verifies the JSON Web Tokens of websocket clients for the
// gateway (gateway.Config.Authenticator): HS256 with a shared secret, or
// RS256 / ES256 (ES384, ES512) with a public key from a PEM file or a JWKS
// file. The accepted algorithm is pinned to the key, so "alg":"none" and a
// token signed with HS256 against an RSA public key are refused.
//
// A token names the user in "sub" and its topic grants in "subs" (topics it
// may subscribe to) and "pubs" (topics it may publish on): exact topics, or
// prefixes ending in "*". Without a grant a topic is refused. "exp" is
// required; "nbf", "aud" and "iss" are checked when configured or present.
package auth
