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
// Concurrency: exactly one goroutine (the connection's writer) writes to a
// websocket; everything else, including ToSelf and the fan-out, only appends
// immutable frames to the connection's bounded queue. Callbacks run on the
// goroutine that called Run, except the read-timeout callback, which runs on
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
