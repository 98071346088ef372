package nats_test

import (
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker/nats"
	"github.com/firetower-go/firetower/internal/clustertest"
)

// settleNode is a NATS broker for clustertest.SettleAfterRestart.
type settleNode struct{ *nats.Broker }

func (n settleNode) Connected() bool { return n.Stats().Connected }

// The settle window (Config.Settle) after a NATS restart: the shared
// scenario clustertest.SettleAfterRestart.
func TestSettleAfterRestart(t *testing.T) {
	srv := clustertest.StartNATS(t, "")
	prefix := clustertest.UniquePrefix(t)
	clustertest.SettleAfterRestart(t, srv, "NATS", 1500*time.Millisecond, func(settle time.Duration) clustertest.SettleNode {
		cfg := fastConfig("nats://"+srv.Addr, prefix)
		cfg.Settle = settle
		return settleNode{newBroker(t, cfg)}
	})
}

// settle=D in the URL sets Config.Settle; settle=0 turns the window off.
func TestParseURLSettle(t *testing.T) {
	for url, want := range map[string]time.Duration{
		"nats://h:4222":                        0,
		"nats://h:4222,g:4222?settle=5s":       5 * time.Second,
		"nats://h:4222?prefix=p&settle=0":      -1,
		"nats://h:4222?settle=1s&settle=250ms": 250 * time.Millisecond,
	} {
		cfg, err := nats.ParseURL(url)
		if err != nil || cfg.Settle != want {
			t.Errorf("ParseURL(%q): Settle %v, %v; want %v", url, cfg.Settle, err, want)
		}
	}
	if _, err := nats.ParseURL("nats://h:4222?settle=soon"); err == nil {
		t.Error("a bad settle was accepted")
	}
}
