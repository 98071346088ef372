package server

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/tm"
)

// validateBroker checks a Config.Broker URL.
func validateBroker(url string) error {
	switch {
	case url == "":
		return nil
	case strings.HasPrefix(url, tm.Scheme+"://"):
		_, err := tm.ParseURL(url)
		return err
	}
	return fmt.Errorf("server: unknown broker %q (want empty for the embedded broker, or tm://host:port[,...])", url)
}

// newBroker builds the broker a Config.Broker URL names.
func newBroker(url, token string, log *slog.Logger) (broker.Broker, error) {
	if err := validateBroker(url); err != nil {
		return nil, err
	}
	cfg, err := tm.ParseURL(url)
	if err != nil {
		return nil, err
	}
	cfg.Token, cfg.Logger = token, log
	return tm.New(cfg)
}
