// Package settle holds an external broker back for a while after its link
// to the broker server (a Redis or NATS server, a topic manager) is
// restored.
//
// When a broker server restarts, every gateway loses its link and comes
// back on its own schedule: within its reconnect backoff cap after the
// server is back, plus the time to re-subscribe. A publish acknowledged by
// a gateway that is back before another one has re-subscribed reaches the
// server but not that other gateway, and is lost although acknowledged. So
// after a restore the broker keeps refusing publishes (with an error
// wrapping broker.ErrUnavailable, as during the outage) and reports itself
// not ready for a settle period long enough for the others to be back. The
// first connection of a broker does not settle: nobody was cut off.
package settle

import (
	"fmt"
	"sync"
	"time"

	"github.com/firetower-go/firetower/broker"
)

// Margin is what Default adds to the reconnect backoff cap: the time for
// another gateway to dial, handshake and re-subscribe its whole interest
// table once its next attempt comes, well under a second on a LAN.
const Margin = time.Second

// Default is the settle period of a broker whose reconnect backoff is
// capped at backoffMax: the other gateways, which use the same cap, make
// their next attempt within backoffMax of the server's return (their
// failed attempts meanwhile are refused at once), and re-subscribe within
// Margin.
func Default(backoffMax time.Duration) time.Duration { return backoffMax + Margin }

// Resolve turns a Config's Settle field into the period to use: zero means
// Default(backoffMax), a negative value turns the window off (0).
func Resolve(configured, backoffMax time.Duration) time.Duration {
	switch {
	case configured < 0:
		return 0
	case configured == 0:
		return Default(backoffMax)
	}
	return configured
}

// Param is the query parameter of the broker URLs that sets the period.
const Param = "settle"

// ParseParam parses the value of a settle=D URL parameter into a Config's
// Settle field: a duration, where 0 turns the window off (-1 in the
// Config, whose zero value means the default).
func ParseParam(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v) // "0" parses too
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s %q is not a duration of 0 or more", Param, v)
	}
	if d == 0 {
		return -1, nil
	}
	return d, nil
}

// Gate tracks one link to a broker server: whether it is up, and until when
// it settles after a restore. Its methods are safe for concurrent use; its
// mutex is a leaf (no other lock is taken under it).
type Gate struct {
	period time.Duration
	now    func() time.Time

	mu     sync.Mutex
	everUp bool
	up     bool
	since  time.Time // when the link last came up
	until  time.Time // end of the settle window
}

// NewGate returns a gate whose link is not connected yet; period 0 turns
// the settle window off.
func NewGate(period time.Duration) *Gate {
	return &Gate{period: period, now: time.Now}
}

// Period is the settle period (0: off).
func (g *Gate) Period() time.Duration { return g.period }

// Up records that the link is established. After a loss (not on the first
// connection) it starts the settle window and returns its length; else 0.
func (g *Gate) Up() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.up {
		return 0
	}
	restored := g.everUp
	g.everUp, g.up = true, true
	g.since = g.now()
	if !restored || g.period <= 0 {
		g.until = time.Time{}
		return 0
	}
	g.until = g.since.Add(g.period)
	return g.period
}

// Down records that the link is lost.
func (g *Gate) Down() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.up = false
}

// Remaining returns how much longer the link settles: 0 when it is not
// settling (open, down, or never connected).
func (g *Gate) Remaining() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.up {
		return 0
	}
	return max(g.until.Sub(g.now()), 0)
}

// Err returns nil while publishes may go, else an error wrapping
// broker.ErrUnavailable, prefixed with what (the link's name), that says
// why: the link was lost and is not back, or it is settling. Before the
// link's first connection it returns nil: the broker's own checks decide.
func (g *Gate) Err(what string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case !g.everUp:
		return nil
	case !g.up:
		return fmt.Errorf("%w: %s: connection lost, reconnecting", broker.ErrUnavailable, what)
	}
	now := g.now()
	if left := g.until.Sub(now); left > 0 {
		return fmt.Errorf("%w: %s: reconnected %v ago; settling for another %v until the other nodes have re-subscribed",
			broker.ErrUnavailable, what, now.Sub(g.since).Round(time.Millisecond), left.Round(time.Millisecond))
	}
	return nil
}
