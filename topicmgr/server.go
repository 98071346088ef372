// Package topicmgr is the topic manager (the original firetower's
// "topicService"): the server that lets gateways on many machines share
// topics with no Redis. Gateways connect to it with package broker/tm, tell
// it how many local subscribers they have per topic, and send it their
// publishes; it forwards each publish only to the other gateways with
// subscribers of its topic, and answers cluster-wide subscriber counts.
// External publishers connect the same way with the publisher role.
//
// Several managers shard the topics between them: every gateway picks a
// topic's manager by rendezvous hashing over the same list, so a manager only
// ever sees the topics it owns. A manager keeps no state on disk: after a
// restart the gateways reconnect and send their whole interest tables again.
//
// The wire protocol is package internal/cluster, described in
// docs/protocol.md.
package topicmgr

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/firetower-go/firetower/internal/cluster"
)

// Server is a topic manager. Build it with New, give it listeners with Serve,
// stop it with Shutdown (a goodbye to every session) or Close (abrupt).
//
// Lock order: Server.mu -> session.mu (a leaf). Server.mu guards the
// listeners, the sessions and the routing tables; it is held while a publish
// is fanned out, which only appends to session queues and never blocks.
type Server struct {
	cfg   Config
	log   *slog.Logger
	epoch uint64
	stats counters

	mu        sync.RWMutex
	tables    tables
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	closed    bool

	wg sync.WaitGroup // accept loops and session goroutines
}

// New validates cfg and returns a server that is not yet listening.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var e [8]byte
	_, _ = rand.Read(e[:])
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger.With("topicmanager", cfg.NodeID),
		epoch:     binary.BigEndian.Uint64(e[:]),
		tables:    newTables(),
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
	}
	return s, nil
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("topicmgr: server closed")

// Serve accepts connections on l (over TLS when Config.TLS is set) until
// Shutdown or Close, which close l. It returns ErrServerClosed then, or the
// accept error that ended it.
func (s *Server) Serve(l net.Listener) error {
	if s.cfg.TLS != nil {
		// The handshake runs on the session's first read, under its
		// HELLO deadline (HandshakeTimeout).
		l = tls.NewListener(l, s.cfg.TLS)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	s.log.Info("topic manager serving", "addr", l.Addr().String(), "tls", s.cfg.TLS != nil)

	var delay time.Duration // backoff on temporary accept errors (fd exhaustion)
	for {
		conn, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors: wait for some to be freed.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			s.mu.Lock()
			delete(s.listeners, l)
			s.mu.Unlock()
			return err
		}
		delay = 0
		s.startSession(conn)
	}
}

// ListenAndServe listens on addr and serves until ctx ends, then shuts down
// gracefully (bounded by the write timeout).
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(l) }()
	select {
	case err := <-errc:
		_ = s.Close()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
	defer cancel()
	err = s.Shutdown(sctx)
	<-errc
	return err
}

// Shutdown stops accepting, tells every session the manager is going away
// (gateways keep their counts' lease and reconnect with backoff), waits for
// the goodbyes to be written until ctx ends, then closes everything.
func (s *Server) Shutdown(ctx context.Context) error {
	sessions := s.stop()
	for _, ss := range sessions {
		ss.close(cluster.CodeGoingAway, "topic manager shutting down")
	}
	done := make(chan struct{})
	go func() {
		for _, ss := range sessions {
			<-ss.writerDone
		}
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	_ = s.Close()
	<-done
	return err
}

// Close stops the server at once: listeners and connections are closed
// without a goodbye, as if the process died, and every goroutine is waited
// for.
func (s *Server) Close() error {
	for _, ss := range s.stop() {
		ss.abort()
	}
	s.wg.Wait()
	s.mu.Lock()
	for _, g := range s.tables.gateways {
		if g.lease != nil {
			g.lease.Stop()
			g.lease = nil
		}
	}
	s.mu.Unlock()
	return nil
}

// stop marks the server closed, closes its listeners and returns the live
// sessions.
func (s *Server) stop() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for l := range s.listeners {
		_ = l.Close()
		delete(s.listeners, l)
	}
	out := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		out = append(out, ss)
	}
	return out
}

func (s *Server) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// Count returns the number of subscribers of topic over every gateway the
// manager knows, those whose lease runs included.
func (s *Server) Count(topic string) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tables.count(topic, nil)
}

// Topics returns the topics with subscribers, sorted.
func (s *Server) Topics() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tables.topicNames()
}

// Gateways returns the ids of the gateways the manager keeps state for,
// connected or within their lease, and how many of them are connected.
func (s *Server) Gateways() (ids []string, connected int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for id, g := range s.tables.gateways {
		ids = append(ids, id)
		if g.sess != nil {
			connected++
		}
	}
	return ids, connected
}

// Stats is a snapshot of a manager's counters. Totals count since New.
type Stats struct {
	Sessions      int64 // open now (gateways and publishers)
	Gateways      int64 // gateways with state now, connected or within their lease
	Topics        int64 // topics with subscribers now
	Published     int64 // PUBLISH frames received
	Commands      int64 // COMMAND frames received
	Routed        int64 // frames queued to gateways
	TooLarge      int64 // frames not routed because a gateway announced a smaller limit
	SlowCutoffs   int64 // sessions cut off for an overflowing queue
	LeaseExpiries int64 // gateways dropped at the end of their lease
	Replaced      int64 // sessions replaced by a newer one with the same node id
	ProtocolErrs  int64 // sessions ended for a malformed, oversized or unexpected frame
}

type counters struct {
	published, commands, routed, tooLarge        atomic.Int64
	slowCutoffs, leaseExpiries, replaced, protoE atomic.Int64
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.RLock()
	st := Stats{
		Sessions: int64(len(s.sessions)),
		Gateways: int64(len(s.tables.gateways)),
		Topics:   int64(len(s.tables.topics)),
	}
	s.mu.RUnlock()
	st.Published = s.stats.published.Load()
	st.Commands = s.stats.commands.Load()
	st.Routed = s.stats.routed.Load()
	st.TooLarge = s.stats.tooLarge.Load()
	st.SlowCutoffs = s.stats.slowCutoffs.Load()
	st.LeaseExpiries = s.stats.leaseExpiries.Load()
	st.Replaced = s.stats.replaced.Load()
	st.ProtocolErrs = s.stats.protoE.Load()
	return st
}
