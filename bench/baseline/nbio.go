package baseline

import (
	"context"
	"net"
	"net/http"
	"sync"

	"github.com/firetower-go/firetower/protocol"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// The nbio server: a hub on github.com/lesismal/nbio as its examples write
// one, with the library's defaults. nbhttp's engine owns the sockets (its
// own epoll loop, no goroutine per connection), the handshake and the frame
// parser; the callbacks run on its task pool, one connection's messages in
// order. A publish encodes its frame once and writes the same bytes to every
// subscriber's nbio connection, which writes what the socket takes at once
// and copies the rest into its own write list (unbounded, as nbio's default
// MaxWriteBufferSize of 0 leaves it). Like the other baselines it has no
// liveness checks of its own; nbio's default keepalive (a read deadline of
// 120 s, renewed by every message) stays, as it is the library's.

type nbioServer struct {
	mu     sync.RWMutex                            // guards conns and topics
	conns  map[*websocket.Conn]map[string]struct{} // a connection's topics
	topics map[string]map[*websocket.Conn]struct{} // a topic's subscribers
}

func newNbio() *nbioServer {
	return &nbioServer{
		conns:  make(map[*websocket.Conn]map[string]struct{}),
		topics: make(map[string]map[*websocket.Conn]struct{}),
	}
}

func (s *nbioServer) serve(ctx context.Context, ln net.Listener) error {
	u := websocket.NewUpgrader()
	u.CheckOrigin = func(*http.Request) bool { return true }
	u.MessageLengthLimit = maxMessageSize
	u.OnOpen(s.open)
	u.OnMessage(s.message)
	u.OnClose(func(c *websocket.Conn, _ error) { s.close(c) })

	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		u.Upgrade(w, r, nil) // on failure nbio has answered the request
	})
	acceptErr := make(chan error, 1)
	engine := nbhttp.NewEngine(nbhttp.Config{
		Network: "tcp",
		Addrs:   []string{ln.Addr().String()},
		// The engine listens through this: it gets ln, which it accepts
		// from and closes on Stop.
		Listen:  func(string, string) (net.Listener, error) { return ln, nil },
		Handler: mux,
	})
	engine.OnAcceptError(func(err error) {
		select {
		case acceptErr <- err:
		default:
		}
	})
	if err := engine.Start(); err != nil {
		ln.Close()
		return err
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-acceptErr:
	}
	// Stop closes the listener and every connection and waits for the
	// engine's pollers.
	engine.Stop()
	return err
}

func (s *nbioServer) open(c *websocket.Conn) {
	s.mu.Lock()
	s.conns[c] = make(map[string]struct{})
	s.mu.Unlock()
}

// message handles one client message; see decodeRequest for what is dropped.
func (s *nbioServer) message(c *websocket.Conn, mt websocket.MessageType, p []byte) {
	if mt != websocket.TextMessage {
		return
	}
	req, ok := decodeRequest(p)
	if !ok {
		return
	}
	switch req.typ {
	case typeSubscribe:
		s.subscribe(c, req.topics)
	case typeUnsubscribe:
		s.unsubscribe(c, req.topics)
	case typePublish:
		s.publish(req.topics[0], req.data)
	}
}

// publish writes one frame, encoded once, to every subscriber of topic. A
// write to a connection that is closing fails; its OnClose cleans up.
func (s *nbioServer) publish(topic string, data []byte) {
	frame := protocol.AppendFrame(make([]byte, 0, len(data)+10), opText, data)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for c := range s.topics[topic] {
		c.UnderlayerConn().Write(frame)
	}
}

func (s *nbioServer) subscribe(c *websocket.Conn, topics []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mine, ok := s.conns[c]
	if !ok {
		return // closed already
	}
	for _, t := range topics {
		if _, ok := mine[t]; ok {
			continue
		}
		if len(mine) >= maxSubscriptions {
			return
		}
		mine[t] = struct{}{}
		subs := s.topics[t]
		if subs == nil {
			subs = make(map[*websocket.Conn]struct{})
			s.topics[t] = subs
		}
		subs[c] = struct{}{}
	}
}

func (s *nbioServer) unsubscribe(c *websocket.Conn, topics []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range topics {
		s.leaveLocked(c, t)
	}
}

func (s *nbioServer) close(c *websocket.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range s.conns[c] {
		s.leaveLocked(c, t)
	}
	delete(s.conns, c)
}

func (s *nbioServer) leaveLocked(c *websocket.Conn, t string) {
	mine := s.conns[c]
	if _, ok := mine[t]; !ok {
		return
	}
	delete(mine, t)
	subs := s.topics[t]
	delete(subs, c)
	if len(subs) == 0 {
		delete(s.topics, t)
	}
}

func (s *nbioServer) subscribers(topic string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.topics[topic])
}
