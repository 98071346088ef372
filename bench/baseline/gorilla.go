package baseline

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// The gorilla server: gorilla/websocket's chat example (examples/chat) with
// topics. A hub goroutine owns the clients and the topic map and is reached
// through unbuffered channels, so one client's requests take effect in the
// order it sent them. Each client has a readPump, a writePump, the only
// goroutine that writes messages to its connection, and a send queue of
// sendQueue messages; the hub never blocks on a client and drops one whose
// queue is full. Unlike the chat example, each message is its own frame
// (deliveries must be), and there is no ping: no baseline checks liveness.

const (
	// sendQueue is the chat example's per-client queue, in messages.
	sendQueue = 256
)

// upgrader has the chat example's buffer sizes. Any origin is accepted: the
// load tool is not a browser.
var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
	CheckOrigin:     func(*http.Request) bool { return true },
}

type gorillaServer struct {
	hub *hub

	mu      sync.Mutex // guards closing and the wg.Add of new clients
	closing bool
	wg      sync.WaitGroup // the hub and every pump
}

func newGorilla() *gorillaServer {
	return &gorillaServer{hub: newHub()}
}

func (s *gorillaServer) serve(ctx context.Context, ln net.Listener) error {
	hubCtx, stopHub := context.WithCancel(context.Background())
	defer stopHub()
	s.wg.Go(func() { s.hub.run(hubCtx) })

	mux := http.NewServeMux()
	mux.HandleFunc("/ws", s.serveWs)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: handshakeWait,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	var err error
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
		srv.Shutdown(sctx)
		cancel()
		srv.Close()
		<-errc
	case err = <-errc:
		srv.Close()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	stopHub() // closes every send queue: the writePumps close their connections
	s.wg.Wait()
	return err
}

// serveWs upgrades a request and starts the client's pumps.
func (s *gorillaServer) serveWs(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &client{hub: s.hub, conn: conn, send: make(chan []byte, sendQueue)}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.wg.Add(2)
	s.mu.Unlock()
	select {
	case s.hub.register <- c:
	case <-s.hub.done:
		conn.Close()
		s.wg.Add(-2)
		return
	}
	go func() { defer s.wg.Done(); c.writePump() }()
	go func() { defer s.wg.Done(); c.readPump() }()
}

func (s *gorillaServer) subscribers(topic string) int {
	reply := make(chan int, 1)
	select {
	case s.hub.count <- countRequest{topic, reply}:
		return <-reply
	case <-s.hub.done:
		return 0
	}
}

// client is a connection and its send queue. writePump is the only goroutine
// that writes messages to conn (gorilla's default ping and close handlers
// answer from readPump with WriteControl, which gorilla allows).
type client struct {
	hub  *hub
	conn *websocket.Conn
	send chan []byte // closed by the hub when it drops the client

	topics map[string]struct{} // the hub goroutine's
}

// readPump reads the client's frames and hands them to the hub.
func (c *client) readPump() {
	defer func() {
		select {
		case c.hub.unregister <- c:
		case <-c.hub.done:
		}
		c.conn.Close()
	}()
	c.conn.SetReadLimit(maxMessageSize)
	for {
		mt, p, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		if mt != websocket.TextMessage {
			continue
		}
		cr, ok := decodeRequest(p)
		if !ok {
			continue
		}
		ch := c.hub.broadcast
		switch cr.typ {
		case typeSubscribe:
			ch = c.hub.subscribe
		case typeUnsubscribe:
			ch = c.hub.unsubscribe
		}
		req := request{client: c, topics: cr.topics, data: cr.data}
		select {
		case ch <- req:
		case <-c.hub.done:
			return
		}
	}
}

// writePump writes the queued messages, one frame and one write each.
func (c *client) writePump() {
	defer c.conn.Close()
	for msg := range c.send {
		c.conn.SetWriteDeadline(time.Now().Add(writeWait))
		if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			return
		}
	}
	// The hub closed the queue: dropped, or the server is shutting down.
	c.conn.SetWriteDeadline(time.Now().Add(writeWait))
	c.conn.WriteMessage(websocket.CloseMessage, []byte{})
}

// request is a subscribe, an unsubscribe or a publish (one topic, data).
type request struct {
	client *client
	topics []string
	data   []byte
}

type countRequest struct {
	topic string
	reply chan<- int
}

// hub owns the clients and the topics; only run touches them.
type hub struct {
	clients map[*client]struct{}
	topics  map[string]map[*client]struct{}

	register    chan *client
	unregister  chan *client
	subscribe   chan request
	unsubscribe chan request
	broadcast   chan request
	count       chan countRequest
	done        chan struct{} // closed when run returns
}

func newHub() *hub {
	return &hub{
		clients:     make(map[*client]struct{}),
		topics:      make(map[string]map[*client]struct{}),
		register:    make(chan *client),
		unregister:  make(chan *client),
		subscribe:   make(chan request),
		unsubscribe: make(chan request),
		broadcast:   make(chan request),
		count:       make(chan countRequest),
		done:        make(chan struct{}),
	}
}

func (h *hub) run(ctx context.Context) {
	defer close(h.done)
	for {
		select {
		case <-ctx.Done():
			for c := range h.clients {
				h.drop(c)
			}
			return
		case c := <-h.register:
			c.topics = make(map[string]struct{})
			h.clients[c] = struct{}{}
		case c := <-h.unregister:
			if _, ok := h.clients[c]; ok {
				h.drop(c)
			}
		case r := <-h.subscribe:
			if _, ok := h.clients[r.client]; !ok {
				continue // dropped already
			}
			for _, t := range r.topics {
				if len(r.client.topics) >= maxSubscriptions {
					break
				}
				r.client.topics[t] = struct{}{}
				subs := h.topics[t]
				if subs == nil {
					subs = make(map[*client]struct{})
					h.topics[t] = subs
				}
				subs[r.client] = struct{}{}
			}
		case r := <-h.unsubscribe:
			for _, t := range r.topics {
				h.leave(r.client, t)
			}
		case r := <-h.broadcast:
			for c := range h.topics[r.topics[0]] {
				select {
				case c.send <- r.data:
				default:
					h.drop(c)
				}
			}
		case r := <-h.count:
			r.reply <- len(h.topics[r.topic])
		}
	}
}

// drop forgets c and closes its send queue.
func (h *hub) drop(c *client) {
	for t := range c.topics {
		h.leave(c, t)
	}
	delete(h.clients, c)
	close(c.send)
}

func (h *hub) leave(c *client, t string) {
	if _, ok := c.topics[t]; !ok {
		return
	}
	delete(c.topics, t)
	subs := h.topics[t]
	delete(subs, c)
	if len(subs) == 0 {
		delete(h.topics, t)
	}
}
