package gateway_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
)

// Drain makes the gateway not ready and refuses nothing else; draining
// again changes nothing; Shutdown still stops it; a closed gateway cannot
// drain.
func TestDrainThenShutdown(t *testing.T) {
	g, err := gateway.New(gateway.Config{Logger: silentLogger})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Drain(time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := g.Ready(); !errors.Is(err, gateway.ErrDraining) {
		t.Errorf("Ready after Drain: %v, want ErrDraining", err)
	}
	if !g.Info().Draining {
		t.Error("Info().Draining is false after Drain")
	}
	if err := g.Drain(time.Second); err != nil {
		t.Errorf("second Drain: %v", err)
	}
	if err := g.Publish(context.Background(), "/t", []byte(`1`)); err != nil {
		t.Errorf("Publish while draining: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx, time.Second); err != nil {
		t.Errorf("Shutdown after Drain: %v", err)
	}
	if err := g.Drain(time.Second); !errors.Is(err, gateway.ErrGatewayClosed) {
		t.Errorf("Drain after Shutdown: %v, want ErrGatewayClosed", err)
	}
}
