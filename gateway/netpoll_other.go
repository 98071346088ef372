//go:build !linux

package gateway

import "github.com/gorilla/websocket"

// The netpoll transport needs epoll: elsewhere every connection stays on
// the goroutine transport (Config.withDefaults).
const netpollSupported = false

// npConn is never made here.
type npConn struct{}

func (*Gateway) detach(*FireTower, *websocket.Conn) transport { return nil }

func (*Gateway) startPollers() error { return nil }

func (*Gateway) stopPollers() {}

type poller struct{}
