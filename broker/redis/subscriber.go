package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/firetower-go/firetower/broker/internal/backoff"
)

// subscribeChunk bounds the channels named in one SUBSCRIBE command.
const subscribeChunk = 1000

// subscriber is the state of the subscription connection: the live
// session's PubSub (nil while down) and the topics subscribed on it.
// Guarded by its mutex, which is held while (un)subscribing, so that a new
// session and the interest loop never interleave their commands.
type subscriber struct {
	mu         sync.Mutex
	ps         *goredis.PubSub
	subscribed map[string]struct{}
	closed     bool
}

// shutdown closes the live session, which ends a Receive in progress, and
// keeps any new one from starting.
func (s *subscriber) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.ps != nil {
		_ = s.ps.Close()
		s.ps = nil
	}
}

// receiveLoop runs subscription sessions until Close: it opens one with
// every channel the node needs, reads it until it fails, and opens the
// next after a backoff.
func (b *Broker) receiveLoop() {
	defer b.wg.Done()
	attempt, failures := 0, 0
	first := true
	var lostAt time.Time // when the last session ended; zero before the first
	for {
		if !first {
			timer := time.NewTimer(backoff.Delay(attempt, b.cfg.BackoffMin, b.cfg.BackoffMax))
			attempt++
			select {
			case <-timer.C:
			case <-b.stop:
				timer.Stop()
				return
			}
		}
		ps, err := b.openSession()
		if first {
			first = false
			close(b.tried)
		}
		if err != nil {
			if b.isClosed() {
				return
			}
			failures++
			// The first failure of an outage is worth a warning; the
			// retries are not.
			level := slog.LevelDebug
			if failures == 1 {
				level = slog.LevelWarn
			}
			b.log.Log(context.Background(), level, "cannot subscribe at redis; retrying with backoff", "err", err, "failures", failures)
			continue
		}
		failures = 0
		b.stats.sessions.Add(1)
		b.stats.connected.Store(true)
		settling := b.gate.Up()
		if lostAt.IsZero() {
			b.log.Info("subscribed at redis")
		} else {
			gap := time.Since(lostAt)
			b.stats.lastOutage.Store(int64(gap))
			b.stats.totalOutage.Add(int64(gap))
			b.log.Info("redis subscription restored; messages published during the outage were not received; publishes are refused while the other nodes re-subscribe",
				"outage", gap, "settle", settling)
		}
		// Redis may have restarted empty: write the whole count table.
		b.mu.Lock()
		b.resync = true
		b.mu.Unlock()
		signal(b.wake)

		began := time.Now()
		err = b.receive(ps)
		b.endSession(ps)
		b.stats.connected.Store(false)
		b.gate.Down()
		if b.isClosed() {
			return
		}
		lostAt = time.Now()
		b.stats.outages.Add(1)
		b.log.Warn("redis subscription lost; resubscribing with backoff", "err", err)
		if time.Since(began) >= b.cfg.BackoffMax {
			attempt = 0
		}
	}
}

// openSession opens a subscription connection with the command channel and
// every topic the node has subscribers for.
func (b *Broker) openSession() (*goredis.PubSub, error) {
	s := &b.sub
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("closed")
	}
	b.mu.Lock()
	topics := make([]string, 0, len(b.interest))
	for topic := range b.interest {
		topics = append(topics, topic)
	}
	b.mu.Unlock()

	ps := b.client.Subscribe(b.ctx)
	fail := func(err error) (*goredis.PubSub, error) {
		_ = ps.Close()
		return nil, err
	}
	// The first SUBSCRIBE dials the connection.
	if err := ps.Subscribe(b.ctx, b.names.commands); err != nil {
		return fail(err)
	}
	for len(topics) > 0 {
		n := min(len(topics), subscribeChunk)
		if err := b.subscribe(ps, topics[:n]); err != nil {
			return fail(err)
		}
		for _, topic := range topics[:n] {
			s.subscribed[topic] = struct{}{}
		}
		topics = topics[n:]
	}
	s.ps = ps
	return ps, nil
}

// endSession forgets a session that failed: the next one subscribes anew.
func (b *Broker) endSession(ps *goredis.PubSub) {
	s := &b.sub
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = ps.Close()
	if s.ps == ps {
		s.ps = nil
	}
	clear(s.subscribed)
}

// subscribe subscribes ps to the topics' channels. Sharded channels go one
// per command: on a Redis Cluster the channels of one SSUBSCRIBE must share
// a hash slot.
func (b *Broker) subscribe(ps *goredis.PubSub, topics []string) error {
	chans := b.channels(topics)
	if !b.cfg.Sharded {
		return ps.Subscribe(b.ctx, chans...)
	}
	for _, ch := range chans {
		if err := ps.SSubscribe(b.ctx, ch); err != nil {
			return err
		}
	}
	return nil
}

func (b *Broker) unsubscribe(ps *goredis.PubSub, topics []string) error {
	chans := b.channels(topics)
	if !b.cfg.Sharded {
		return ps.Unsubscribe(b.ctx, chans...)
	}
	for _, ch := range chans {
		if err := ps.SUnsubscribe(b.ctx, ch); err != nil {
			return err
		}
	}
	return nil
}

func (b *Broker) channels(topics []string) []string {
	chans := make([]string, len(topics))
	for i, topic := range topics {
		chans[i] = b.names.topic(topic)
	}
	return chans
}

// syncSubscriptions subscribes to or unsubscribes from the channels of
// topics whose interest changed, on the live session. While there is none,
// it does nothing: the next session subscribes to what is needed then. A
// failed command ends the session, for the same effect.
func (b *Broker) syncSubscriptions(topics []string) {
	s := &b.sub
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ps == nil || len(topics) == 0 {
		return
	}
	var add, remove []string
	b.mu.Lock()
	for _, topic := range topics {
		_, have := s.subscribed[topic]
		if want := b.interest[topic] > 0; want && !have {
			add = append(add, topic)
		} else if !want && have {
			remove = append(remove, topic)
		}
	}
	b.mu.Unlock()
	for len(add) > 0 || len(remove) > 0 {
		var err error
		if len(add) > 0 {
			n := min(len(add), subscribeChunk)
			err = b.subscribe(s.ps, add[:n])
			for _, topic := range add[:n] {
				s.subscribed[topic] = struct{}{}
			}
			add = add[n:]
		} else {
			n := min(len(remove), subscribeChunk)
			err = b.unsubscribe(s.ps, remove[:n])
			for _, topic := range remove[:n] {
				delete(s.subscribed, topic)
			}
			remove = remove[n:]
		}
		if err != nil {
			b.log.Warn("redis (un)subscribe failed; restarting the subscription connection", "err", err)
			_ = s.ps.Close() // the receive loop sees it and resubscribes everything
			return
		}
	}
}

// receive reads the session until it fails or Close. A connection silent
// for HealthCheck is pinged; silent for another HealthCheck, it is dead.
func (b *Broker) receive(ps *goredis.PubSub) error {
	silent := 0
	for {
		msg, err := ps.ReceiveTimeout(b.ctx, b.cfg.HealthCheck)
		if err != nil {
			if b.ctx.Err() != nil {
				return err
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return err
			}
			silent++
			if silent >= 2 {
				return fmt.Errorf("no answer to a ping within %v", b.cfg.HealthCheck)
			}
			if err := ps.Ping(b.ctx); err != nil {
				return err
			}
			continue
		}
		silent = 0
		switch m := msg.(type) {
		case *goredis.Message:
			b.deliver(m.Channel, m.Payload)
		case *goredis.Subscription, *goredis.Pong:
		}
	}
}
