package clustertest

import (
	"errors"
	"log/slog"
	"net"
	"testing"

	"github.com/firetower-go/firetower/topicmgr"
)

// StartTopicManager runs a topic manager on 127.0.0.1 that requires token
// (empty: none) and returns its tm:// broker URL; it is closed in t.Cleanup.
func StartTopicManager(t testing.TB, token string) string {
	t.Helper()
	tm, err := topicmgr.New(topicmgr.Config{Logger: slog.New(slog.DiscardHandler), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- tm.Serve(l) }()
	t.Cleanup(func() {
		_ = tm.Close()
		if err := <-served; !errors.Is(err, topicmgr.ErrServerClosed) {
			t.Errorf("topic manager: %v", err)
		}
	})
	return "tm://" + l.Addr().String()
}
