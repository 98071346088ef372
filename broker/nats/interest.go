package nats

import "time"

// interestLoop applies interest changes until Close: it subscribes to the
// subject of a topic that got its first local subscriber and unsubscribes
// from one that lost its last. nats.go buffers these commands and, while
// disconnected, remembers them for the next connection. The loop also
// sends the heartbeats.
func (b *Broker) interestLoop() {
	defer b.wg.Done()
	beat := time.NewTicker(b.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-b.wake:
			b.applyInterest()
		case <-beat.C:
			b.announce(kindBeat)
		}
	}
}

func (b *Broker) applyInterest() {
	b.mu.Lock()
	nc := b.nc
	type change struct {
		topic string
		want  bool
	}
	changes := make([]change, 0, len(b.dirty))
	for topic := range b.dirty {
		changes = append(changes, change{topic, b.interest[topic] > 0})
	}
	clear(b.dirty)
	b.mu.Unlock()

	for _, c := range changes {
		b.subsMu.Lock()
		sub, have := b.subs[c.topic]
		b.subsMu.Unlock()
		switch {
		case c.want && !have:
			s, err := nc.ChanSubscribe(b.subj.topic(c.topic), b.msgs)
			if err != nil {
				b.log.Error("nats subscribe failed; the topic's messages from other nodes are not received", "topic", c.topic, "err", err)
				continue
			}
			b.subsMu.Lock()
			b.subs[c.topic] = s
			b.subsMu.Unlock()
		case !c.want && have:
			b.subsMu.Lock()
			if n, err := sub.Dropped(); err == nil {
				b.dropped += int64(n)
			}
			_ = sub.Unsubscribe() // fails only on a closed connection
			delete(b.subs, c.topic)
			b.subsMu.Unlock()
		}
	}
}
