package pushapi_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/pushapi"
)

// The push API's operations as Go methods, on a single-node gateway: what
// the HTTP and gRPC handlers and the dashboard call.
func Example() {
	gw, err := gateway.New(gateway.Config{NodeInfoInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer func() { _ = gw.Close() }()
	api := pushapi.New(gw, pushapi.Config{})
	ctx := context.Background()

	// A backend consumer of the topic (what gRPC Subscribe uses).
	l, _ := gw.Listen("/news", 0)
	defer l.Close()

	if _, err := api.Publish(ctx, "/news", []byte(`{"headline":"hello"}`)); err != nil {
		panic(err)
	}
	d, _ := l.Next(ctx)
	fmt.Println(string(d.Data))

	c, _ := api.Count(ctx, "/news")
	fmt.Println(c.Count, "subscriber")

	_, err = api.Publish(ctx, "bad,topic", []byte(`1`))
	e := pushapi.ErrorOf(err)
	fmt.Println(e.Code, e.Code.HTTPStatus())

	fmt.Println(string(pushapi.BinaryData([]byte{0, 1, 2, 0xff})))
	// Output:
	// {"headline":"hello"}
	// 1 subscriber
	// invalid_topic 422
	// "AAEC/w=="
}
