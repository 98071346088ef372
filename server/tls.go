package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/firetower-go/firetower/internal/tlsreload"
)

// serverTLS holds the reloadable certificates of a Server: main for Addr,
// api for APIAddr and GRPCAddr. api is main unless APITLSCert names a pair
// of its own; either may be nil (plain).
type serverTLS struct {
	main, api *tlsreload.Certificate
}

func (c *Config) validateTLS() error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("server: --tls-cert and --tls-key go together")
	}
	return nil
}

// loadTLS reads the configured certificates, failing fast on a missing or
// bad file.
func loadTLS(cfg *Config) (serverTLS, error) {
	var t serverTLS
	var err error
	if cfg.TLSCert != "" {
		if t.main, err = tlsreload.Load(cfg.TLSCert, cfg.TLSKey); err != nil {
			return t, fmt.Errorf("server: TLS: %w", err)
		}
	}
	t.api = t.main
	if cfg.APITLSCert != "" {
		if t.api, err = tlsreload.Load(cfg.APITLSCert, cfg.APITLSKey); err != nil {
			return t, fmt.Errorf("server: API TLS: %w", err)
		}
	}
	return t, nil
}

// apiConfig is the tls.Config of the API and gRPC listeners (nil: plain).
// gRPC adds its own "h2" to NextProtos.
func (t serverTLS) apiConfig() *tls.Config {
	if t.api == nil {
		return nil
	}
	return t.api.Config()
}

// listener wraps the main listener in TLS when a certificate is set. Only
// HTTP/1.1 is offered: a websocket upgrade needs it, and the goroutine
// transport takes over the TLS connection after the upgrade (the netpoll
// transport needs a raw socket).
func (t serverTLS) listener(l net.Listener) net.Listener {
	if t.main == nil {
		return l
	}
	cfg := t.main.Config()
	cfg.NextProtos = []string{"http/1.1"}
	return tls.NewListener(l, cfg)
}

// Reload reads the TLS certificate and key files again (`firetower serve`
// calls it on SIGHUP). New connections get the new certificate; open ones
// keep theirs. On error the certificates in use stay, and the error says
// which file failed. Without TLS it does nothing.
func (s *Server) Reload() error {
	certs := []*tlsreload.Certificate{s.tls.main}
	if s.tls.api != s.tls.main {
		certs = append(certs, s.tls.api)
	}
	var errs []error
	for _, c := range certs {
		if c == nil {
			continue
		}
		if err := c.Reload(); err != nil {
			errs = append(errs, err)
			s.log.Error("TLS certificate not reloaded; the old one stays in use", "err", err)
			continue
		}
		s.log.Info("TLS certificate reloaded", "subject", c.Leaf().Subject.String(), "serial", c.Leaf().SerialNumber.String(), "notAfter", c.Leaf().NotAfter)
	}
	return errors.Join(errs...)
}
