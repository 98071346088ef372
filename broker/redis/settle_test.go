package redis_test

import (
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker/redis"
	"github.com/firetower-go/firetower/internal/clustertest"
)

// settleNode is a Redis broker for clustertest.SettleAfterRestart.
type settleNode struct{ *redis.Broker }

func (n settleNode) Connected() bool { return n.Stats().Connected }

// The settle window (Config.Settle) after a Redis restart: the shared
// scenario clustertest.SettleAfterRestart.
func TestSettleAfterRestart(t *testing.T) {
	srv := clustertest.StartRedis(t)
	prefix := clustertest.UniquePrefix(t)
	clustertest.SettleAfterRestart(t, srv, "Redis", 1500*time.Millisecond, func(settle time.Duration) clustertest.SettleNode {
		cfg := fastConfig(srv.Addr, prefix)
		cfg.Settle = settle
		return settleNode{newBroker(t, cfg)}
	})
}

// settle=D in the URL sets Config.Settle; settle=0 turns the window off.
func TestParseURLSettle(t *testing.T) {
	for url, want := range map[string]time.Duration{
		"redis://h:6379":                   0,
		"redis://h:6379?settle=5s":         5 * time.Second,
		"redis://h:6379?prefix=p&settle=0": -1,
	} {
		cfg, err := redis.ParseURL(url)
		if err != nil || cfg.Settle != want {
			t.Errorf("ParseURL(%q): Settle %v, %v; want %v", url, cfg.Settle, err, want)
		}
	}
	if _, err := redis.ParseURL("redis://h:6379?settle=-1s"); err == nil {
		t.Error("a negative settle was accepted")
	}
}
