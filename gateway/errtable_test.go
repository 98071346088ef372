package gateway_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
)

// One error, one answer, whoever reports it: the v2 code, the HTTP status
// and the gRPC code come from the same row. broker.ErrClosed used to be a
// websocket 500 and an HTTP 503.
func TestErrorTable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want gateway.ErrorClass
	}{
		{fmt.Errorf("gateway: send: %w", broker.ErrClosed), gateway.ClassUnavailable},
		{broker.ErrUnavailable, gateway.ClassUnavailable},
		{gateway.ErrPublishQueueFull, gateway.ClassUnavailable},
		{gateway.ErrDraining, gateway.ClassUnavailable},
		{fmt.Errorf("%w: %w", gateway.ErrUnknownOutcome, context.DeadlineExceeded), gateway.ClassUnknownOutcome},
		{protocol.ErrTopicInvalid, gateway.ClassInvalidTopic},
		{gateway.ErrMessageTooLarge, gateway.ClassTooLarge},
		{broker.ErrTooLarge, gateway.ClassTooLarge},
		{gateway.ErrTooManyTopics, gateway.ClassLimitExceeded},
		{gateway.ErrInvalidData, gateway.ClassBadRequest},
		{broker.ErrBadCommand, gateway.ClassBadRequest},
		{fmt.Errorf("something new"), gateway.ClassInternal},
	} {
		if got := gateway.ClassOf(tc.err); got != tc.want {
			t.Errorf("ClassOf(%v) = %+v, want %+v", tc.err, got, tc.want)
		}
	}
	if c := gateway.ClassOf(broker.ErrClosed); c.V2 != 503 || c.HTTP != 503 || c.GRPC != 14 {
		t.Errorf("broker.ErrClosed: %+v, want 503 everywhere and gRPC Unavailable", c)
	}
	for _, c := range []gateway.ErrorClass{gateway.ClassUnavailable, gateway.ClassUnknownOutcome, gateway.ClassBadRequest} {
		if got := gateway.ClassNamed(c.Name); got != c {
			t.Errorf("ClassNamed(%q) = %+v", c.Name, got)
		}
	}
	if got := gateway.ClassNamed("no such"); got != gateway.ClassInternal {
		t.Errorf("ClassNamed of an unknown name = %+v", got)
	}
}
