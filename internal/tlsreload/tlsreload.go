// Package tlsreload serves a certificate and key read from PEM files that
// can be read again while listeners run (on SIGHUP, say): connections
// accepted after a successful Reload get the new pair, those already
// established keep theirs, and a failed Reload changes nothing.
package tlsreload

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Certificate is a reloadable certificate and key. Its methods are safe
// for concurrent use.
type Certificate struct {
	certFile, keyFile string
	reload            sync.Mutex // serialises Reload; handshakes only load cur
	cur               atomic.Pointer[tls.Certificate]
}

// Load reads the pair from certFile and keyFile (PEM; the certificate file
// may hold the chain after the leaf). It fails if either cannot be read or
// the key does not match the certificate.
func Load(certFile, keyFile string) (*Certificate, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tlsreload: a certificate file and a key file are both required")
	}
	c := &Certificate{certFile: certFile, keyFile: keyFile}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files again. On error the certificate served so far
// stays in use.
func (c *Certificate) Reload() error {
	c.reload.Lock()
	defer c.reload.Unlock()
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("tlsreload: %s, %s: %w", c.certFile, c.keyFile, err)
	}
	if pair.Leaf == nil { // filled by LoadX509KeyPair unless GODEBUG x509keypairleaf=0
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return fmt.Errorf("tlsreload: %s: %w", c.certFile, err)
		}
	}
	c.cur.Store(&pair)
	return nil
}

// Leaf returns the certificate being served.
func (c *Certificate) Leaf() *x509.Certificate { return c.cur.Load().Leaf }

// GetCertificate is a tls.Config.GetCertificate returning the pair last
// loaded successfully.
func (c *Certificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

// Config returns a new server tls.Config serving c, TLS 1.2 and later. It
// sets no NextProtos: callers add the ALPN protocols they speak.
func (c *Certificate) Config() *tls.Config {
	return &tls.Config{GetCertificate: c.GetCertificate, MinVersion: tls.VersionTLS12}
}
