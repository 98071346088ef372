package gateway

import (
	"bytes"
	"testing"

	"github.com/firetower-go/firetower/internal/hub"
)

// decodeDelivery reads back every frame the hub encodes, and refuses
// anything else without panicking.
func FuzzDecodeDelivery(f *testing.F) {
	f.Add("/chat/world", uint64(1), []byte(`{"a":1}`), []byte(nil))
	f.Add("t \"q\" \u00fc\u2028", uint64(18446744073709551615), bytes.Repeat([]byte("x"), 70000), []byte("\x81\x05hello"))
	f.Add("", uint64(0), []byte(`""`), []byte("\x81\x7e\x00"))
	f.Fuzz(func(t *testing.T, topic string, id uint64, data, garbage []byte) {
		frame := hub.EncodeV2(hub.Message{Topic: topic, ID: id, Data: data})
		d, ok := decodeDelivery(frame, deliveryPrefix(topic))
		if !ok || d.ID != id || !bytes.Equal(d.Data, data) {
			t.Fatalf("decodeDelivery(EncodeV2(%q, %d, %q)) = %+v, %v", topic, id, data, d, ok)
		}
		_, _ = decodeDelivery(garbage, deliveryPrefix(topic)) // must not panic
		if _, ok := decodeDelivery(frame, deliveryPrefix(topic+"x")); ok {
			t.Fatalf("a frame of topic %q decoded for another topic", topic)
		}
	})
}
