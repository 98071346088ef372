package server

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/nats"
	"github.com/firetower-go/firetower/broker/redis"
	"github.com/firetower-go/firetower/broker/tm"
)

// brokerSchemes lists the accepted Config.Broker URL forms, for errors.
const brokerSchemes = "tm://host:port[,...], tms://host:port[,...][?ca=FILE], redis://host:port[/db][?prefix=...], or nats://host:port[,...][?prefix=...]"

// validateBroker checks a Config.Broker URL.
func validateBroker(url string) error {
	if url == "" {
		return nil
	}
	scheme, _, _ := strings.Cut(url, "://")
	var err error
	switch scheme {
	case tm.Scheme, tm.SchemeTLS:
		_, err = tm.ParseURL(url)
	case redis.Scheme, redis.SchemeTLS:
		_, err = redis.ParseURL(url)
	case nats.Scheme, nats.SchemeTLS:
		_, err = nats.ParseURL(url)
	default:
		err = fmt.Errorf("server: unknown broker %q (want empty for the embedded broker, or %s)", url, brokerSchemes)
	}
	return err
}

// defaultBrokerSettle is the settle window the external brokers use by
// default (their backoff cap, 2 s, + 1 s), shown by --broker-settle.
const defaultBrokerSettle = redis.DefaultSettle

// withSettle returns the broker URL with its settle window set to d (0:
// off), as a settle=D parameter after any given in the URL, which the
// last one overrides.
func withSettle(url string, d time.Duration) (string, error) {
	switch {
	case url == "":
		return "", errors.New("the embedded broker has no settle window; give an external --broker")
	case d < 0:
		return "", fmt.Errorf("%v is negative (0 turns the window off)", d)
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "settle=" + d.String(), nil
}

// newBroker builds the broker a Config.Broker URL names. The cluster token
// is the topic managers' shared secret; Redis and NATS take their
// credentials in the URL.
func newBroker(url, token string, log *slog.Logger) (broker.Broker, error) {
	if err := validateBroker(url); err != nil {
		return nil, err
	}
	scheme, _, _ := strings.Cut(url, "://")
	if scheme != tm.Scheme && scheme != tm.SchemeTLS && token != "" {
		log.Warn("--cluster-token is the topic managers' secret and is not used with this broker; put credentials in the --broker URL", "scheme", scheme)
	}
	switch scheme {
	case redis.Scheme, redis.SchemeTLS:
		redis.LogClientTo(log)
		return redis.NewURL(url, log)
	case nats.Scheme, nats.SchemeTLS:
		return nats.NewURL(url, log)
	}
	cfg, err := tm.ParseURL(url)
	if err != nil {
		return nil, err
	}
	cfg.Token, cfg.Logger = token, log
	return tm.New(cfg)
}
