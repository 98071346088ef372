// Package gateway is the firetower library an application embeds to serve
// websocket clients: one Gateway per node owns the topic hub, the broker link
// to the other nodes, the logger and the counters; one FireTower per
// connection runs the firetower callback API (read, read-timeout,
// before-subscribe, subscribe, unsubscribe, connect, offline).
//
// The package keeps the original firetower API so its README example
// compiles with only the import path changed: ClusterId, BuildTower,
// NewFireInfo, FireInfo, FireLife, TopicMessage and the FireTower methods.
// BuildTower uses a default Gateway; applications that need configuration
// build their own with New and call Gateway.BuildTower, or install it with
// SetDefault.
//
// Transports (Config.Transport, one seam: transport.go): on the goroutine
// transport (the default, as the original) each connection has a reader, a
// writer and the goroutine that called Run, which runs the callbacks. On
// the netpoll transport (Linux; the default of `firetower serve`)
// BuildTower hands the socket to the gateway's epoll pollers: an idle
// connection holds no goroutine and no buffer, the callbacks run on the
// gateway's bounded worker pool (never on a poller), and FireTower.Start
// serves the connection without keeping the caller's goroutine (Run still
// works and waits). Both pass the same test suite.
//
// Concurrency: exactly one goroutine (the connection's writer, or its
// poller) writes to a websocket; everything else, including ToSelf and the
// fan-out, only appends immutable frames to the connection's bounded queue.
// A connection's callbacks run one at a time, in frame order, from its
// inbox (inbox.go), so a callback that blocks holds up its own connection
// only; the callbacks owed for Gateway.CloseTopic and the other kick-out
// operations (commands.go) go through the same inbox. The read-timeout
// callback runs on the goroutine that waited for room (the reader, or on
// netpoll a goroutine of its own). A publish is delivered locally at once
// and sent to the other nodes by an ordered, asynchronous sender
// (sender.go): a v2 client's ack waits for the broker's answer, its
// connection does not. The exported fields of a FireTower (UserId, Cookie)
// are not locked: set them before Run or in a callback, and change them
// later only if no read timeout can run at the same time. Kick-outs by
// client or user id (DisconnectClient, DisconnectUser, RemoveUserFromTopic)
// see ClientId and UserId as of the last callback that finished. A panic
// in any callback is recovered, logged with its stack, counted, and closes
// only that connection (close code 1011).
package gateway
