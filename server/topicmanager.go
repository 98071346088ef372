package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/firetower-go/firetower/internal/cluster"
	"github.com/firetower-go/firetower/internal/tlsreload"
	"github.com/firetower-go/firetower/topicmgr"
)

// ManagerOptions are the settings of `firetower topicmanager`, gathered like
// those of serve (flags over FIRETOWER_* over a config file), except that a
// config file is read only when named (--config or FIRETOWER_CONFIG): the
// ./fireTower.toml of a gateway beside it holds gateway settings.
type ManagerOptions struct {
	Addr string
	// HTTPAddr, if set, serves /healthz and /metrics (ManagerHandler).
	HTTPAddr string
	// TLSCert and TLSKey (PEM files, both or neither) serve Addr over TLS:
	// gateways then dial tms://. TopicManager.Reload reads them again.
	TLSCert, TLSKey string
	Manager         topicmgr.Config
	LogLevel        slog.Level
	LogFormat       string
	Ignored         []string
}

// ParseTopicManager parses the arguments of `firetower topicmanager`.
func ParseTopicManager(args []string, getenv func(string) string, stderr io.Writer) (*ManagerOptions, error) {
	o := &ManagerOptions{LogFormat: "text"}
	fs := flag.NewFlagSet("topicmanager", flag.ContinueOnError)
	fs.SetOutput(stderr)
	m := &o.Manager
	var configPath string
	fs.StringVar(&configPath, "config", "", "config file (TOML), read only when given")
	fs.StringVar(&o.Addr, "addr", topicmgr.DefaultAddr, "cluster protocol listen address HOST:PORT")
	fs.StringVar(&o.HTTPAddr, "http-addr", "", "serve /healthz and /metrics on this address HOST:PORT (empty: no HTTP)")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "PEM certificate (chain): serve --addr over TLS (gateways use --broker tms://...); reread on SIGHUP")
	fs.StringVar(&o.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&m.NodeID, "node-id", "", "manager id in WELCOME and logs (default: host-pid)")
	fs.StringVar(&m.Token, "cluster-token", "", "shared secret every gateway and publisher must send (empty: none; then bind to a private address)")
	fs.DurationVar(&m.Lease, "lease", topicmgr.DefaultLease, "how long a vanished gateway's counts are kept")
	fs.DurationVar(&m.Heartbeat, "heartbeat", topicmgr.DefaultHeartbeat, "ping interval; a session silent for 3 intervals is closed")
	fs.DurationVar(&m.WriteTimeout, "write-timeout", topicmgr.DefaultWriteTimeout, "deadline of one write to a session")
	fs.IntVar(&m.MaxFrame, "max-frame", cluster.DefaultMaxFrame, "longest frame accepted, bytes (payload plus topic and headers)")
	fs.IntVar(&m.QueueFrames, "queue-frames", topicmgr.DefaultQueueFrames, "frames waiting for one session before it is cut off")
	fs.IntVar(&m.QueueBytes, "queue-bytes", topicmgr.DefaultQueueBytes, "bytes waiting for one session before it is cut off")
	fs.TextVar(&o.LogLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "log-format", "text", "text or json")

	ignored, err := parseLayers(fs, args, getenv, false)
	if err != nil {
		return nil, err
	}
	o.Ignored = ignored
	if o.LogFormat != "text" && o.LogFormat != "json" {
		return nil, fmt.Errorf("topicmanager: --log-format must be text or json, not %q", o.LogFormat)
	}
	if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		return nil, fmt.Errorf("topicmanager: bad address %q: %w", o.Addr, err)
	}
	if _, _, err := net.SplitHostPort(o.HTTPAddr); o.HTTPAddr != "" && err != nil {
		return nil, fmt.Errorf("topicmanager: bad --http-addr %q: %w", o.HTTPAddr, err)
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("topicmanager: --tls-cert and --tls-key go together")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// NewLogger builds the process logger from the options.
func (o *ManagerOptions) NewLogger(w io.Writer) *slog.Logger {
	return newLogger(w, o.LogLevel, o.LogFormat)
}

// TopicManager is the `firetower topicmanager` process: a topic manager,
// its optional HTTP listener, and its reloadable certificate.
type TopicManager struct {
	o    *ManagerOptions
	log  *slog.Logger
	srv  *topicmgr.Server
	cert *tlsreload.Certificate // nil: plain TCP
}

// NewTopicManager builds the manager of o; a TLS certificate that cannot be
// loaded is an error here.
func NewTopicManager(o *ManagerOptions, log *slog.Logger) (*TopicManager, error) {
	m := &TopicManager{o: o, log: log}
	cfg := o.Manager
	cfg.Logger = log
	if o.TLSCert != "" || o.TLSKey != "" {
		var err error
		if m.cert, err = tlsreload.Load(o.TLSCert, o.TLSKey); err != nil {
			return nil, fmt.Errorf("topicmanager: TLS: %w", err)
		}
		cfg.TLS = m.cert.Config()
	}
	srv, err := topicmgr.New(cfg)
	if err != nil {
		return nil, err
	}
	m.srv = srv
	return m, nil
}

// Reload reads the TLS certificate and key files again (on SIGHUP):
// sessions opened after it get the new certificate, open ones are not
// touched, and on error the old certificate stays. Without TLS it does
// nothing.
func (m *TopicManager) Reload() error {
	if m.cert == nil {
		return nil
	}
	if err := m.cert.Reload(); err != nil {
		m.log.Error("TLS certificate not reloaded; the old one stays in use", "err", err)
		return err
	}
	leaf := m.cert.Leaf()
	m.log.Info("TLS certificate reloaded", "subject", leaf.Subject.String(), "serial", leaf.SerialNumber.String(), "notAfter", leaf.NotAfter)
	return nil
}

// Run serves on o.Addr until ctx ends, then shuts the manager down (each
// session is told the manager is going away).
func (m *TopicManager) Run(ctx context.Context) error {
	if m.o.HTTPAddr != "" {
		stop, err := serveManagerHTTP(m.o.HTTPAddr, m.srv, m.log)
		if err != nil {
			_ = m.srv.Close()
			return err
		}
		defer stop()
	}
	err := m.srv.ListenAndServe(ctx, m.o.Addr)
	m.log.Info("stopped")
	if err == topicmgr.ErrServerClosed {
		return nil
	}
	return err
}

// RunTopicManager is NewTopicManager and Run.
func RunTopicManager(ctx context.Context, o *ManagerOptions, log *slog.Logger) error {
	m, err := NewTopicManager(o, log)
	if err != nil {
		return err
	}
	return m.Run(ctx)
}
