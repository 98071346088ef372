package bench

import (
	"bytes"
	"strconv"
)

// Protocols of --protocol: what the load speaks to the server.
const (
	ProtocolFiretower  = "firetower"  // firetower v1 (and the baselines)
	ProtocolCentrifugo = "centrifugo" // the Centrifuge client protocol, JSON
)

// The Centrifuge client protocol (v2, JSON), as a Centrifugo server in
// insecure client mode speaks it, enough for the scenarios that publish over
// a websocket. A connection sends its connect command and one subscribe
// command per topic in one frame, commands separated by newlines. A publish
// is a publish command carrying the bench message as its data. A server
// frame holds replies and pushes separated by newlines; a publication
// arrives as
//
//	{"push":{"channel":"<topic>","pub":{"data":<bench message>,"info":{...}}}}
//
// and an empty reply, {}, is a ping that the client answers with {}.
// Command ids only pair replies with commands, which the load ignores: every
// publish uses id 1.

var (
	centrifugoPing    = []byte("{}")
	centrifugoPubData = []byte(`"pub":{"data":`)
)

// centrifugoSubscribe returns the frame that connects and subscribes to
// topics (bench topics need no JSON escaping).
func centrifugoSubscribe(topics []string) []byte {
	b := []byte(`{"id":1,"connect":{}}`)
	for i, t := range topics {
		b = append(b, `
{"id":`...)
		b = strconv.AppendInt(b, int64(i+2), 10)
		b = append(b, `,"subscribe":{"channel":"`...)
		b = append(b, t...)
		b = append(b, `"}}`...)
	}
	return b
}

// appendCentrifugoPublish appends the publish command of data to topic.
func appendCentrifugoPublish(b []byte, topic string, data []byte) []byte {
	b = append(b, `{"id":1,"publish":{"channel":"`...)
	b = append(b, topic...)
	b = append(b, `","data":`...)
	b = append(b, data...)
	return append(b, '}', '}')
}

// centrifugoFrame handles one server frame: deliver (if not nil) gets the
// data of every publication in it, from the bench message on (what follows
// it is ignored by parsePayload), and pings are answered on c.
func centrifugoFrame(c *wsConn, m []byte, deliver func(data []byte)) error {
	for len(m) > 0 {
		var line []byte
		line, m, _ = bytes.Cut(m, []byte{'\n'})
		if bytes.Equal(line, centrifugoPing) {
			if err := c.writeText(centrifugoPing); err != nil {
				return err
			}
			continue
		}
		if _, data, ok := bytes.Cut(line, centrifugoPubData); ok && deliver != nil {
			deliver(data)
		}
	}
	return nil
}
