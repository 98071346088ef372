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
// Transports (Config.Transport): on the goroutine transport (the default,
// as the original) each connection has a reader, a writer and the
// goroutine that called Run. On the netpoll transport (Linux; the default
// of `firetower serve`) BuildTower hands the socket to the gateway's epoll
// pollers: an idle connection holds no goroutine and no buffer, callbacks
// run on the poller serving the connection (they must not block for
// long), the read-timeout callback never fires, and FireTower.Start
// serves the connection without keeping the caller's goroutine (Run still
// works and waits). Both pass the same test suite.
//
// Concurrency: exactly one goroutine (the connection's writer, or its
// poller) writes to a websocket; everything else, including ToSelf and the fan-out, only appends
// immutable frames to the connection's bounded queue. Callbacks run on the
// goroutine that called Run (on netpoll: the connection's poller), except the read-timeout callback, which runs on
// the connection's reader, and the callbacks fired by Gateway.CloseTopic and
// the other kick-out operations (commands.go), which run on their caller's
// goroutine, or on a goroutine of their own for a command from another node.
// The exported fields of a FireTower (UserId, Cookie) are not locked: set
// them before Run or in a callback, and change them later only if no read
// timeout or CloseTopic can run at the same time. Kick-outs by client or user
// id (DisconnectClient, DisconnectUser, RemoveUserFromTopic) see ClientId and
// UserId as of the last callback Run's goroutine finished. A panic in any
// callback is recovered, logged with its stack, counted, and closes only that
// connection (close code 1011).
package gateway
