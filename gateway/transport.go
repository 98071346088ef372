package gateway

import "time"

// transport moves one connection's bytes: the seam between the two ways a
// gateway serves connections. Everything above it (the outbound queue,
// the inbox, the protocol, the callbacks) is the same for both.
//
//   - goroutine transport (transport_goroutine.go): gorilla's connection,
//     a reader and a writer goroutine per connection, the callbacks on
//     Run's goroutine, as the original;
//   - netpoll transport (netpoll_linux.go): the socket taken from gorilla
//     and served by the gateway's epoll pollers, the callbacks on the
//     gateway's worker pool; nothing per idle connection.
//
// A transport reads and decodes client frames into the tower's inbox,
// writes the tower's outbound queue, and runs the heartbeats, the idle
// timeout and the close handshake.
type transport interface {
	// serve starts moving bytes; the tower has joined the gateway and
	// OnConnect has run. With wait it returns when the connection has
	// ended (Run), else at once (Start).
	serve(wait bool)
	// refuse writes frame (a close frame) to a connection the gateway does
	// not take, and closes it.
	refuse(frame []byte)
	// wake tells the writer that the outbound queue has frames or a close.
	wake()
	// cutWrite bounds the write in progress to the close grace: the tower
	// was closed as a slow consumer, and a client that does not read would
	// hold the writer for the whole WriteTimeout.
	cutWrite(grace time.Duration)
	// abort drops the connection at once, writing nothing more.
	abort()
	// resumeReading is called when the inbox, found full by the reader,
	// has room again.
	resumeReading()
	// finished is called after the tower's finish task, its last, ran.
	finished()
	// executor runs the tower's inbox.
	executor() executor
}
