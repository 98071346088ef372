// Package protocol holds the client wire codecs of firetower: the v1 protocol,
// byte-for-byte the original firetower's JSON frames, and the v2 protocol,
// negotiated with the websocket subprotocol "firetower.v2", whose frames carry
// topics, message ids, acknowledgements and error codes. It also parses and
// validates topic names and encodes server-to-client websocket frames once, so
// the same immutable bytes can be handed to many connections.
//
// The package does no I/O. docs/protocol.md describes both protocols.
package protocol
