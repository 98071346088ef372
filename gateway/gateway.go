package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/internal/hub"
	"github.com/firetower-go/firetower/protocol"
)

// Gateway is one firetower node: it owns the local topic hub, the broker link
// to the other nodes, the logger and the counters. Build it with New, serve
// connections with Upgrade and BuildTower, and stop it with Shutdown or Close.
//
// Lock order: FireTower.subMu -> hub shard lock -> FireTower.out.mu and the
// broker's own locks (leaves); Gateway.mu is never held while calling out.
// Gateway.mu -> FireTower.index.mu -> index shard lock (leaves, index.go).
// Leaves, never held while calling anything: FireTower.inbox.mu, the
// workers' lock, a sender lane's lock, the count cache's lock.
type Gateway struct {
	cfg    Config
	log    *slog.Logger
	hub    *hub.Hub[subscriber]
	broker broker.Broker
	ids    *idGenerator
	stats  counters

	// connRate counts upgrades per client address (Config.ConnectRate,
	// connrate.go) under its own lock.
	connRate connRate

	// index finds the running towers by UserId and ClientId (index.go).
	index towerIndexes

	mu     sync.Mutex
	towers map[*FireTower]struct{}
	perIP  map[string]int // running towers per client IP (Config.MaxConnectionsPerIP)
	// listeners are the backend subscribers (listener.go); Shutdown closes them.
	listeners map[*Listener]struct{}
	draining  bool
	// closed is written with mu held, so that what mu guards agrees with
	// it, and read without mu by the hot paths (every Publish).
	closed atomic.Bool
	// drainStop and drainDone belong to the goroutine Drain starts (nil
	// when none runs): Shutdown closes drainStop and waits for drainDone.
	drainStop chan struct{}
	drainDone chan struct{}
	wg        sync.WaitGroup // one per running tower

	countWarned atomic.Int64   // UnixNano of the last count-failure log line
	bgWG        sync.WaitGroup // goTracked's goroutines and the count refreshes
	// bgCtx ends when Shutdown closes the broker: the background work
	// asking the broker stops.
	bgCtx    context.Context
	bgCancel context.CancelFunc
	counts   countCache // the other nodes' counts as known here (counts.go)

	sender  *sender  // the ordered, asynchronous queue to the broker (sender.go)
	workers *workers // the netpoll transport's executor (workers.go)

	started      time.Time
	peers        peers
	topics       topicTracker  // message rates and top topics (topics.go)
	announceStop chan struct{} // closed by Shutdown; nil when the broadcast is off
	announceDone chan struct{}
	stopOnce     sync.Once
	idents       identities // Upgrade -> BuildTower (auth.go)

	// The node number claim (claim.go): the wait for a claim to reach the
	// other nodes, and the background check (nil when none runs).
	claimWait time.Duration
	claimStop context.CancelFunc
	claimDone chan struct{}

	// The netpoll transport's epoll loops (netpoll_linux.go), set by New.
	pollers     []*poller
	pollStopped atomic.Bool
}

// abortGrace is how long Shutdown, past its deadline, waits for the
// connections it aborted to end: the pollers and the executors need a
// moment; a callback that blocks is not waited for.
const abortGrace = 500 * time.Millisecond

// countWarnEvery spaces the log lines about failed cluster counts.
const countWarnEvery = 10 * time.Second

// New validates cfg, starts the broker and returns a ready gateway.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.NodeID == "" {
		cfg.NodeID = defaultNodeID()
	}
	if cfg.Broker == nil {
		cfg.Broker = broker.NewMemory()
	}
	g := &Gateway{
		cfg:    cfg,
		log:    cfg.Logger.With("node", cfg.NodeID),
		broker: cfg.Broker,
		ids:    newIDGenerator(cfg.ClusterID),
		towers: make(map[*FireTower]struct{}),
		perIP:  make(map[string]int),

		claimWait: claimWait(cfg),
	}
	g.hub = hub.New[subscriber](g.broker.SetInterest)
	g.sender = newSender(g)
	g.bgCtx, g.bgCancel = context.WithCancel(context.Background())
	g.workers = newWorkers(cfg.Workers)
	g.started = time.Now()
	if err := g.broker.Start(context.Background(), cfg.NodeID, g.handleRemote); err != nil {
		return nil, fmt.Errorf("gateway: start broker: %w", err)
	}
	if err := g.claimNodeNumber(); err != nil {
		_ = g.broker.Close()
		return nil, err
	}
	if cfg.Transport == TransportNetpoll {
		// Started now rather than with the first connection, so that the
		// gateway's goroutines do not change while it serves.
		if err := g.startPollers(); err != nil {
			g.stopClaim()
			_ = g.broker.Close()
			return nil, fmt.Errorf("gateway: start the netpoll transport: %w", err)
		}
	}
	if cfg.NodeInfoInterval > 0 {
		g.announceStop, g.announceDone = make(chan struct{}), make(chan struct{})
		go g.announceLoop(g.announceStop, g.announceDone)
	}
	return g, nil
}

func defaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// NodeID returns the node id given to the broker.
func (g *Gateway) NodeID() string { return g.cfg.NodeID }

// Config returns the effective configuration, defaults applied.
func (g *Gateway) Config() Config { return g.cfg }

// Stats returns a snapshot of the gateway's counters.
func (g *Gateway) Stats() Stats {
	s := g.stats.snapshot()
	s.Topics = int64(g.hub.TopicCount())
	return s
}

// ClusterCount returns the number of subscribers of topic in the whole
// cluster and on this node. If the broker cannot be asked, total is the
// local count and err says why.
func (g *Gateway) ClusterCount(ctx context.Context, topic string) (total, local int64, err error) {
	local = g.hub.Count(topic)
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.PublishTimeout)
	defer cancel()
	remote, err := g.broker.Count(ctx, topic)
	if err != nil {
		return local, local, fmt.Errorf("gateway: count on other nodes: %w", err)
	}
	return local + remote, local, nil
}

// RangeTopics calls fn with every topic that has local subscribers and
// their number, in no particular order, until fn returns false. fn must not
// subscribe or unsubscribe anything.
func (g *Gateway) RangeTopics(fn func(topic string, local int64) bool) { g.hub.Range(fn) }

// ConnectNum returns the number of subscribers of topic in the whole
// cluster. If the broker cannot be asked, it logs the error and returns the
// local count.
func (g *Gateway) ConnectNum(ctx context.Context, topic string) int64 {
	total, _, err := g.ClusterCount(ctx, topic)
	if err != nil {
		g.warnCount(topic, err)
	}
	return total
}

// warnCount logs a failed count, once per countWarnEvery: during a broker
// outage, counts fail on every subscribe.
func (g *Gateway) warnCount(topic string, err error) {
	now := time.Now().UnixNano()
	if last := g.countWarned.Load(); now-last >= int64(countWarnEvery) && g.countWarned.CompareAndSwap(last, now) {
		g.log.Warn("cluster subscriber count failed; using the counts known", "topic", topic, "err", err)
	}
}

// LocalConnectNum returns the number of subscribers of topic on this node.
func (g *Gateway) LocalConnectNum(topic string) int64 { return g.hub.Count(topic) }

// CloseTopic removes every local subscriber from topic. Each affected
// connection's OnSystemRemove and UnSubscribeHandler callbacks fire. It
// returns how many connections were removed. CloseTopicEverywhere does it
// on every node.
func (g *Gateway) CloseTopic(topic string) int {
	n := 0
	for _, s := range g.hub.Subscribers(topic) {
		if t := s.tower(); t != nil && t.systemRemove(topic) {
			n++
		}
	}
	return n
}

// subscriber is a local subscriber of the gateway's hub: a connection, or a
// Listener (whose tower is nil).
type subscriber interface {
	hub.Subscriber
	tower() *FireTower
}

var (
	_ subscriber = (*FireTower)(nil)
	_ subscriber = (*Listener)(nil)
)

func (g *Gateway) isClosed() bool { return g.closed.Load() }

// register adds a running tower; it fails once the gateway drains or closes.
func (g *Gateway) register(t *FireTower) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closed.Load():
		return ErrGatewayClosed
	case g.draining:
		return ErrDraining
	}
	g.indexTower(t)
	g.towers[t] = struct{}{}
	g.perIP[t.ip]++
	g.wg.Add(1)
	g.stats.connections.Add(1)
	g.stats.connectsTotal.Add(1)
	return nil
}

func (g *Gateway) unregister(t *FireTower) {
	g.unindexTower(t)
	g.mu.Lock()
	delete(g.towers, t)
	if g.perIP[t.ip]--; g.perIP[t.ip] <= 0 {
		delete(g.perIP, t.ip)
	}
	g.mu.Unlock()
	g.stats.connections.Add(-1)
	g.stats.disconnectsTotal.Add(1)
	g.wg.Done()
}

// Drain puts the gateway in drain, as the first phase of Shutdown does, and
// returns at once: Upgrade refuses new connections with 503, Ready reports
// ErrDraining, the cluster view is told, and a goroutine closes the open
// connections with 1001 (going away) spread evenly over window so that they
// reconnect to other nodes. Everything else keeps working (Publish, the push
// commands, listeners, the broker) until Shutdown or Close, which stop the
// spreading and close what is left over their own window. Draining an
// already draining gateway does nothing; a closed one returns
// ErrGatewayClosed.
func (g *Gateway) Drain(window time.Duration) error {
	g.mu.Lock()
	if g.closed.Load() {
		g.mu.Unlock()
		return ErrGatewayClosed
	}
	if g.draining {
		g.mu.Unlock()
		return nil
	}
	g.draining = true
	towers := g.towerList()
	stop, done := make(chan struct{}), make(chan struct{})
	g.drainStop, g.drainDone = stop, done
	g.mu.Unlock()
	g.log.Info("draining", "connections", len(towers), "window", window)
	if g.announceStop != nil {
		g.announce()
	}
	go func() {
		defer close(done)
		closeSpread(towers, window, stop, false)
	}()
	return nil
}

// towerList returns the running towers not closing yet (after Drain,
// Shutdown spreads only those); g.mu is held.
func (g *Gateway) towerList() []*FireTower {
	towers := make([]*FireTower, 0, len(g.towers))
	for t := range g.towers {
		select {
		case <-t.closing:
		default:
			towers = append(towers, t)
		}
	}
	return towers
}

// closeSpread closes towers with 1001, evenly spaced over window. If stop
// closes first it returns false, after closing the rest at once if
// closeRest is set.
func closeSpread(towers []*FireTower, window time.Duration, stop <-chan struct{}, closeRest bool) bool {
	step := time.Duration(0)
	if len(towers) > 1 {
		step = window / time.Duration(len(towers))
	}
	ok, start := true, time.Now()
	for i, t := range towers {
		if i > 0 && step > 0 {
			// Against the start, so that timer lateness does not add up.
			timer := time.NewTimer(time.Until(start.Add(time.Duration(i) * step)))
			select {
			case <-timer.C:
			case <-stop:
				timer.Stop()
				if !closeRest {
					return false
				}
				ok, step = false, 0
			}
		}
		t.closeWith(protocol.CloseGoingAway, "server shutting down", true)
	}
	return ok
}

// Shutdown drains the gateway: Upgrade refuses new connections with 503,
// open connections are closed with 1001 (going away) spread evenly over
// drain, so that clients do not all reconnect in the same instant; then it
// waits for every connection to finish and closes the broker. It returns
// ctx's error if ctx ends first (connections still open are then closed at
// once). After Drain, the connections still open are spread over drain.
func (g *Gateway) Shutdown(ctx context.Context, drain time.Duration) error {
	g.mu.Lock()
	if g.closed.Load() {
		g.mu.Unlock()
		return nil
	}
	first := !g.draining
	g.draining = true
	drainStop, drainDone := g.drainStop, g.drainDone
	g.drainStop = nil
	g.mu.Unlock()
	if drainStop != nil {
		close(drainStop) // the towers Drain has not closed yet are closed below
	}
	if drainDone != nil {
		<-drainDone
	}
	g.mu.Lock()
	towers := g.towerList()
	g.mu.Unlock()
	if first && g.announceStop != nil {
		g.announce() // tell the cluster view that this node is draining
	}

	var err error
	if !closeSpread(towers, drain, ctx.Done(), true) {
		err = ctx.Err()
	}

	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	finished := true
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
		g.mu.Lock()
		for t := range g.towers {
			t.abort()
		}
		g.mu.Unlock()
		// The aborted connections end within moments; one whose callback
		// still blocks finishes on its own, without Shutdown waiting for
		// it past abortGrace.
		timer := time.NewTimer(abortGrace)
		select {
		case <-done:
		case <-timer.C:
			finished = false
			g.log.Warn("shutdown deadline: connections still in callbacks are left to finish on their own")
		}
		timer.Stop()
	}
	g.stopPollers() // no tower is left to serve
	g.workers.shutdown(finished)
	g.stopAnnouncer()
	g.stopClaim()
	g.mu.Lock()
	g.closed.Store(true)
	g.mu.Unlock()
	g.closeListeners()
	g.sender.close()
	if !g.sender.wait(ctx) && err == nil {
		err = ctx.Err() // the broker's close fails what is still in flight
	}
	g.counts.stop()
	g.bgCancel()
	if finished {
		g.bgWG.Wait()
	}
	if berr := g.broker.Close(); berr != nil && err == nil {
		err = fmt.Errorf("gateway: close broker: %w", berr)
	}
	return err
}

// goTracked runs fn, application code for t, on a goroutine of its own that
// Shutdown waits for; a panic is recovered (t closes with 1011).
func (g *Gateway) goTracked(where string, t *FireTower, fn func()) {
	g.bgWG.Add(1)
	go func() {
		defer g.bgWG.Done()
		defer g.recoverPanic(where, t)
		fn()
	}()
}

// Close closes every connection at once and the broker.
func (g *Gateway) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.WriteTimeout+g.cfg.CloseGrace)
	defer cancel()
	err := g.Shutdown(ctx, 0)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil // Shutdown aborted the stragglers; nothing is left running
	}
	return err
}

// recoverPanic is deferred by every goroutine and callback site. It logs the
// panic with its stack, counts it, and closes t (if any) with 1011.
func (g *Gateway) recoverPanic(where string, t *FireTower) {
	r := recover()
	if r == nil {
		return
	}
	g.stats.panics.Add(1)
	attrs := []any{"where", where, "panic", fmt.Sprint(r), "stack", string(debug.Stack())}
	if t != nil {
		attrs = append(attrs, "client", t.ClientId)
		t.closeWith(protocol.CloseInternal, "internal error", true)
	}
	g.log.Error("recovered panic", attrs...)
}

// NewID returns a new cluster-unique id from the gateway's snowflake
// generator (suitable for client ids, as in the original example).
func (g *Gateway) NewID() uint64 { return g.ids.next() }
