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
// MaxWriteBufferSize of 0 leaves it). Unlike the other baselines, more than
// one goroutine writes to a connection: the handlers of several publishers,
// and nbio's own pong and close answers. nbio.Conn serialises its writes
// under its lock, and each of ours is one whole frame, so frames never
// interleave. Like the other baselines it has no
// liveness checks of its own; nbio's default keepalive (a read deadline of
// 120 s, renewed by every message) stays, as it is the library's.

type nbioServer struct {
	mu     sync.RWMutex                        // guards conns, topics and every client's topics
	conns  map[*websocket.Conn]*nbioClient     // the open connections
	topics map[string]map[*nbioClient]struct{} // a topic's subscribers
}

// nbioClient is one connection, the requestHandler of its messages.
type nbioClient struct {
	s      *nbioServer
	c      *websocket.Conn
	topics map[string]struct{}
}

func newNbio() *nbioServer {
	return &nbioServer{
		conns:  make(map[*websocket.Conn]*nbioClient),
		topics: make(map[string]map[*nbioClient]struct{}),
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
	s.conns[c] = &nbioClient{s: s, c: c, topics: make(map[string]struct{})}
	s.mu.Unlock()
}

// message handles one client message (handleMessage).
func (s *nbioServer) message(c *websocket.Conn, mt websocket.MessageType, p []byte) {
	s.mu.RLock()
	cl := s.conns[c]
	s.mu.RUnlock()
	if cl != nil {
		handleMessage(cl, mt == websocket.TextMessage, p)
	}
}

// publish writes one frame, encoded once, to every subscriber of topic. A
// write to a connection that is closing fails; its OnClose cleans up.
func (cl *nbioClient) publish(topic string, data []byte) {
	frame := protocol.AppendFrame(make([]byte, 0, len(data)+10), opText, data)
	cl.s.mu.RLock()
	defer cl.s.mu.RUnlock()
	for sub := range cl.s.topics[topic] {
		sub.c.UnderlayerConn().Write(frame)
	}
}

func (cl *nbioClient) subscribe(topics []string) {
	s := cl.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[cl.c] != cl {
		return // closed already
	}
	for _, t := range topics {
		if _, ok := cl.topics[t]; ok {
			continue
		}
		if len(cl.topics) >= maxSubscriptions {
			return
		}
		cl.topics[t] = struct{}{}
		subs := s.topics[t]
		if subs == nil {
			subs = make(map[*nbioClient]struct{})
			s.topics[t] = subs
		}
		subs[cl] = struct{}{}
	}
}

func (cl *nbioClient) unsubscribe(topics []string) {
	cl.s.mu.Lock()
	defer cl.s.mu.Unlock()
	for _, t := range topics {
		cl.leaveLocked(t)
	}
}

func (s *nbioServer) close(c *websocket.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cl := s.conns[c]; cl != nil {
		for t := range cl.topics {
			cl.leaveLocked(t)
		}
	}
	delete(s.conns, c)
}

func (cl *nbioClient) leaveLocked(t string) {
	if _, ok := cl.topics[t]; !ok {
		return
	}
	delete(cl.topics, t)
	subs := cl.s.topics[t]
	delete(subs, cl)
	if len(subs) == 0 {
		delete(cl.s.topics, t)
	}
}

func (s *nbioServer) subscribers(topic string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.topics[topic])
}
