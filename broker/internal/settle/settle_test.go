package settle

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
)

func TestGate(t *testing.T) {
	now := time.Unix(1000, 0)
	g := NewGate(3 * time.Second)
	g.now = func() time.Time { return now }
	if err := g.Err("x"); err != nil {
		t.Fatalf("before the first connection: %v", err)
	}
	if d := g.Up(); d != 0 {
		t.Fatalf("first Up started a %v window", d)
	}
	if err := g.Err("x"); err != nil || g.Remaining() != 0 {
		t.Fatalf("after the first connection: %v, %v left", err, g.Remaining())
	}
	g.Down()
	if err := g.Err("x"); !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), "lost") {
		t.Fatalf("down: %v", err)
	}
	now = now.Add(time.Second)
	if d := g.Up(); d != 3*time.Second {
		t.Fatalf("restore started a %v window, want 3s", d)
	}
	if d := g.Up(); d != 0 {
		t.Fatalf("a second Up while up started a %v window", d)
	}
	now = now.Add(time.Second)
	if err := g.Err("x"); !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), "settling for another 2s") {
		t.Fatalf("settling: %v", err)
	}
	if d := g.Remaining(); d != 2*time.Second {
		t.Fatalf("Remaining = %v, want 2s", d)
	}
	now = now.Add(2 * time.Second)
	if err := g.Err("x"); err != nil || g.Remaining() != 0 {
		t.Fatalf("after the window: %v, %v left", err, g.Remaining())
	}

	off := NewGate(0)
	off.Up()
	off.Down()
	if d := off.Up(); d != 0 || off.Err("x") != nil {
		t.Fatalf("window off: %v, %v", d, off.Err("x"))
	}
}

func TestResolveAndParam(t *testing.T) {
	if d := Resolve(0, 2*time.Second); d != 3*time.Second {
		t.Errorf("Resolve(0, 2s) = %v, want 3s", d)
	}
	if d := Resolve(-1, 2*time.Second); d != 0 {
		t.Errorf("Resolve(-1) = %v, want 0 (off)", d)
	}
	if d := Resolve(5*time.Second, 2*time.Second); d != 5*time.Second {
		t.Errorf("Resolve(5s) = %v", d)
	}
	for v, want := range map[string]time.Duration{"0": -1, "0s": -1, "1.5s": 1500 * time.Millisecond} {
		if d, err := ParseParam(v); err != nil || d != want {
			t.Errorf("ParseParam(%q) = %v, %v; want %v", v, d, err, want)
		}
	}
	for _, v := range []string{"", "-1s", "3", "soon"} {
		if _, err := ParseParam(v); err == nil {
			t.Errorf("ParseParam(%q) accepted", v)
		}
	}
}
