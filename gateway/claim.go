package gateway

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/firetower-go/firetower/protocol"
)

// A gateway's message ids carry its node number (snowflake.go), so two
// nodes of a cluster must never use the same one. Each node claims its
// number through the broker's interest mechanism, with nothing but the
// broker.Broker interface: node n holds interest in the reserved topic
// "$firetower/node/<n>" (protocol.ReservedTopicPrefix: no client,
// publisher or listener can use it), set on the broker directly, not
// through the hub, so it is no subscriber anywhere users look. A claim is
// good when, once the claim has had time to reach the others
// (Config.ClusterIDWait), the broker counts nobody else on that topic.
// Of two nodes claiming the same number at once, the later Count sees the
// earlier claim; both may see each other, and then both try again.

// Timing and bounds of the claim.
const (
	// DefaultClusterIDWait is how long a claim is given to reach the other
	// nodes, for brokers that do not say (InterestDelayer): the external
	// brokers propagate an interest in one round trip, a few milliseconds
	// in a data centre, so this leaves a wide margin and costs a gateway
	// half a second at start.
	DefaultClusterIDWait = 500 * time.Millisecond
	// maxClusterIDWait bounds Config.ClusterIDWait: a gateway should start
	// within seconds.
	maxClusterIDWait = 10 * time.Second
	// claimAttempts bounds the random numbers an automatic claim tries
	// before New gives up: with 900 nodes holding numbers, 32 tries still
	// find a free one 98 times in 100. A number found held at once costs
	// one Count; one claimed at the same instant, two waits at most.
	claimAttempts = 32
	// claimCountTimeout bounds one Count of a claim.
	claimCountTimeout = 2 * time.Second
	// claimCheckEvery is how often a node checks again that nobody else
	// holds its number: a conflict can only arise when a claim could not be
	// checked (the broker was down at start) or the broker lost a node's
	// claim for a while (a partition longer than its lease).
	claimCheckEvery = 30 * time.Second
	// claimRetryEvery is how often an unconfirmed claim is checked until
	// the broker has answered twice.
	claimRetryEvery = 2 * time.Second
)

// InterestDelayer is an optional interface of a broker.Broker: InterestDelay
// is how long a SetInterest may take, in normal operation, to show in the
// other nodes' Count. The in-process broker (broker.Memory) returns 0: its
// interest shows at once, so a gateway on it claims its node number without
// waiting and needs no background check. A broker without the method is
// given DefaultClusterIDWait.
type InterestDelayer interface{ InterestDelay() time.Duration }

// errClaimStopped is returned by a claim interrupted by Shutdown.
var errClaimStopped = errors.New("gateway: node number claim stopped")

// claimTopic is the reserved topic whose interest claims node number n.
func claimTopic(n int64) string {
	return protocol.ReservedTopicPrefix + "node/" + strconv.FormatInt(n, 10)
}

// claimWait returns how long a claim is given to reach the other nodes.
func claimWait(cfg Config) time.Duration {
	if cfg.ClusterIDWait > 0 {
		return cfg.ClusterIDWait
	}
	if d, ok := cfg.Broker.(InterestDelayer); ok {
		return max(0, min(d.InterestDelay(), maxClusterIDWait))
	}
	return DefaultClusterIDWait
}

// ClusterID returns the node number (0..1023) this gateway's message ids
// carry: Config.ClusterID if one was given (1024 as 0), else the number
// claimed automatically, which may change if another node turns out to
// hold it.
func (g *Gateway) ClusterID() int64 { return int64(g.ids.nodeNumber()) }

// claimNodeNumber claims the gateway's node number when New starts it, and
// starts the background check when the broker needs one. It fails with
// ErrClusterIDTaken if the configured number is held by another node, and
// with ErrNoClusterID if no free number was found.
func (g *Gateway) claimNodeNumber() error {
	ctx := context.Background()
	var n int64
	var confirmed bool
	if explicit := g.cfg.ClusterID != 0; explicit {
		n = g.cfg.ClusterID % 1024
		outcome, err := g.tryClaim(ctx, n)
		if outcome != claimGot {
			return fmt.Errorf("%w: %d is held by another node (give each gateway its own --cluster-id, or leave it on auto)", ErrClusterIDTaken, n)
		}
		confirmed = err == nil
	} else {
		var err error
		if n, confirmed, err = g.claimFree(ctx, -1); err != nil {
			return err
		}
	}
	g.ids.setNode(uint64(n))
	if !confirmed {
		g.log.Warn("could not check with the broker that no other node holds this node's message-id number; using it, and checking again in the background",
			"cluster_id", n, "auto", g.cfg.ClusterID == 0)
	} else {
		g.log.Debug("message-id node number claimed", "cluster_id", n, "auto", g.cfg.ClusterID == 0)
	}
	if g.claimWait > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		g.claimStop, g.claimDone = cancel, make(chan struct{})
		go g.keepClaim(ctx, g.claimDone, confirmed)
	}
	return nil
}

// claimFree claims a random free number other than avoid. It returns the
// number and whether the broker confirmed it; a number the broker could
// not check is kept unconfirmed.
func (g *Gateway) claimFree(ctx context.Context, avoid int64) (int64, bool, error) {
	tried := map[int64]bool{avoid: true}
	for range claimAttempts {
		n := rand.Int64N(1024)
		for tried[n] {
			n = rand.Int64N(1024)
		}
		tried[n] = true
		outcome, err := g.tryClaim(ctx, n)
		switch {
		case errors.Is(err, errClaimStopped):
			return 0, false, err
		case err != nil:
			return n, false, nil
		case outcome == claimGot:
			return n, true, nil
		case outcome == claimContended:
			// The node that claimed n at the same instant saw this one
			// too and tries again as well: a random pause keeps the next
			// tries apart.
			if !sleep(ctx, rand.N(g.claimWait)) {
				return 0, false, errClaimStopped
			}
		}
	}
	return 0, false, fmt.Errorf("%w: %d random numbers were all held by other nodes", ErrNoClusterID, claimAttempts)
}

// The outcomes of tryClaim.
type claimOutcome int

const (
	claimGot       claimOutcome = iota // nobody else holds the number
	claimHeld                          // another node held it already
	claimContended                     // another node claimed it at the same time
)

// tryClaim sets this node's interest in n's claim topic and checks whether
// another node holds it too (then the interest is withdrawn). A non-nil
// error means the broker could not count; the interest is then kept.
func (g *Gateway) tryClaim(ctx context.Context, n int64) (claimOutcome, error) {
	topic := claimTopic(n)
	g.broker.SetInterest(topic, 1)
	others, err := g.countClaim(ctx, topic)
	outcome := claimHeld
	if err == nil && others == 0 && g.claimWait > 0 {
		// A node that claims n at this instant shows only once its claim
		// has reached the broker; by then, this one has too.
		if !sleep(ctx, g.claimWait) {
			return claimGot, errClaimStopped
		}
		others, err = g.countClaim(ctx, topic)
		outcome = claimContended
	}
	if err != nil {
		return claimGot, err
	}
	if others > 0 {
		g.broker.SetInterest(topic, 0)
		return outcome, nil
	}
	return claimGot, nil
}

// countClaim counts the other holders of a claim topic; it fails with
// errClaimStopped once ctx has ended.
func (g *Gateway) countClaim(ctx context.Context, topic string) (int64, error) {
	cctx, cancel := context.WithTimeout(ctx, claimCountTimeout)
	defer cancel()
	n, err := g.broker.Count(cctx, topic)
	if ctx.Err() != nil {
		return 0, errClaimStopped
	}
	return n, err
}

// keepClaim checks the node's claim now and then until ctx ends. It
// belongs to the gateway: Shutdown stops it and waits.
func (g *Gateway) keepClaim(ctx context.Context, done chan<- struct{}, confirmed bool) {
	defer close(done)
	defer g.recoverPanic("node number check", nil)
	st := claimState{confirmed: confirmed}
	for {
		every := claimCheckEvery
		if !st.confirmed {
			every = claimRetryEvery
		}
		// Spread over ±25%, so that nodes started together do not check together.
		if !sleep(ctx, every*3/4+rand.N(every/2)) || !g.checkClaim(ctx, &st) {
			return
		}
	}
}

// claimState is what keepClaim knows of the claim between two checks.
type claimState struct {
	confirmed bool
	answers   int // counts answered in a row while unconfirmed
}

// checkClaim checks once that no other node holds this node's number. On a
// conflict it logs an error and counts it (Stats.ClusterIDConflicts); an
// automatically chosen number is then exchanged for a free one, while a
// configured one is kept (the operator's choice; the error says what to
// fix). It returns false once ctx has ended.
func (g *Gateway) checkClaim(ctx context.Context, st *claimState) bool {
	n := int64(g.ids.nodeNumber())
	others, err := g.countClaim(ctx, claimTopic(n))
	switch {
	case errors.Is(err, errClaimStopped):
		return false
	case err != nil:
		st.answers = 0
		return true
	case others == 0:
		// The first answer after an outage may come before the other
		// nodes' claims are back in the broker; the second, a retry
		// interval later, does not.
		if st.answers++; st.answers >= 2 {
			st.confirmed = true
		}
		return true
	}
	g.stats.clusterIDConflicts.Add(1)
	if g.cfg.ClusterID != 0 {
		g.log.Error("another node holds this node's message-id number: message ids may repeat; give each gateway its own --cluster-id, or leave it on auto",
			"cluster_id", n)
		return true
	}
	g.log.Error("another node holds this node's message-id number; claiming another", "cluster_id", n)
	next, ok, err := g.claimFree(ctx, n)
	if err != nil {
		if errors.Is(err, errClaimStopped) {
			return false
		}
		g.log.Error("no other message-id number found; keeping this one", "cluster_id", n, "err", err)
		return true
	}
	g.ids.setNode(uint64(next))
	g.broker.SetInterest(claimTopic(n), 0)
	st.confirmed, st.answers = ok, 0
	g.log.Warn("message-id node number changed", "from", n, "to", next)
	return true
}

// stopClaim stops the background check of the claim and waits for it.
func (g *Gateway) stopClaim() {
	if g.claimStop != nil {
		g.claimStop()
		<-g.claimDone
	}
}

// sleep waits d, or until ctx ends (then it returns false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
