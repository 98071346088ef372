//go:build !linux

package gateway

import "sync/atomic"

// The netpoll transport needs epoll: elsewhere every connection stays on
// the goroutine transport (Config.withDefaults).
const netpollSupported = false

type poller struct{}

func (*poller) schedule(*FireTower) {}

type npConn struct {
	p     *poller
	abort atomic.Bool
	done  chan struct{}
}

func (*Gateway) detach(*FireTower) *npConn { return nil }

func (*Gateway) stopPollers() {}

func (*FireTower) startNetpoll() { panic("firetower: netpoll transport on a system without epoll") }

func (*npConn) refuse([]byte) {}

func (*Gateway) startPollers() error { return nil }

func (*npConn) resume() {}

func (*npConn) ended(*FireTower) {}
