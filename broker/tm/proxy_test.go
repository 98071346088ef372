package tm_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// proxy is a TCP relay on a loopback port to a target: tests cut it to
// simulate a network failure, which neither side announces.
type proxy struct {
	target string
	l      net.Listener
	addr   string

	frozen atomic.Bool
	stop   chan struct{} // closed by close

	pauseMu sync.Mutex
	resumed chan struct{} // non-nil while paused; closed by resume

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{target: target, l: l, addr: l.Addr().String(), conns: make(map[net.Conn]struct{}), stop: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = up.Close()
			return
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn, freezable bool) {
			defer p.wg.Done()
			defer func() { _ = dst.Close(); _ = src.Close() }()
			buf := make([]byte, 32<<10)
			for {
				if freezable && p.frozen.Load() {
					<-p.stop // stop reading: the sender's buffers fill up
					return
				}
				n, err := src.Read(buf)
				if n > 0 {
					if !p.hold() {
						return
					}
					if _, werr := dst.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}
		go pipe(up, c, false)
		go pipe(c, up, true)
	}
}

// freeze stops relaying from the target to the clients, as a peer that
// stops reading would; the connections stay open.
func (p *proxy) freeze() { p.frozen.Store(true) }

// pause stops relaying in both directions, as a black hole or a paused
// peer: nothing is lost, and nothing passes until resume. The connections
// stay open.
func (p *proxy) pause() {
	p.pauseMu.Lock()
	defer p.pauseMu.Unlock()
	if p.resumed == nil {
		p.resumed = make(chan struct{})
	}
}

// resume relays again, first what was held.
func (p *proxy) resume() {
	p.pauseMu.Lock()
	defer p.pauseMu.Unlock()
	if p.resumed != nil {
		close(p.resumed)
		p.resumed = nil
	}
}

// hold waits while the proxy is paused; false if it closed meanwhile.
func (p *proxy) hold() bool {
	p.pauseMu.Lock()
	ch := p.resumed
	p.pauseMu.Unlock()
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	case <-p.stop:
		return false
	}
}

// cut closes every relayed connection; new ones are still accepted.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// close stops the proxy for good: nothing connects through it any more.
func (p *proxy) close() {
	p.mu.Lock()
	if !p.closed {
		close(p.stop)
	}
	p.closed = true
	p.mu.Unlock()
	_ = p.l.Close()
	p.cut()
	p.wg.Wait()
}
