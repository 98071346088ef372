// Command websocket_service is the Go example of the original firetower
// README, ported to this module: a gateway program that upgrades /ws with its
// own gorilla Upgrader, builds a tower per connection with BuildTower and
// hooks the chat room's logic into the callbacks (publish what clients send,
// announce the online count of a topic when someone joins or leaves it).
//
// The only changes from the original are the import path, the client id
// taken from the gateway's snowflake generator instead of the external
// snowFlakeByGo module, and error handling where the original ignored errors.
//
//	go run ./examples/websocket_service -addr 127.0.0.1:9999
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/gorilla/websocket"
)

// upgrader is the original example's. Its CheckOrigin accepts every origin,
// which is INSECURE: any web page can then open a websocket with the
// visitor's cookies (cross-site websocket hijacking). Real programs should
// upgrade with gateway.Gateway.Upgrade instead, which checks the Origin
// header against Config.AllowedOrigins, or write a CheckOrigin that does.
var upgrader = websocket.Upgrader{
	CheckOrigin: func(r *http.Request) bool {
		return true
	},
}

func main() {
	addr := flag.String("addr", "0.0.0.0:9999", "listen address HOST:PORT")
	flag.Parse()

	// In a cluster every node must have its own id, 0..1023 (the original
	// documented 1..1024; 1024 is taken as 0). Set it before the first
	// BuildTower.
	gateway.ClusterId = 1
	fmt.Println("websocket service start:", *addr)
	srv := &http.Server{Addr: *addr, Handler: newMux(), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// newMux returns the example's routes.
func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", Websocket)
	return mux
}

// Websocket is the /ws handler of the original example.
func Websocket(w http.ResponseWriter, r *http.Request) {
	// Authenticate the user here, and upgrade only if that succeeds.

	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has already answered the request
	}
	// A cluster-unique client id; in a real application the client would
	// normally send its own.
	id := gateway.Default().NewID()
	tower := gateway.BuildTower(ws, strconv.FormatUint(id, 10))

	tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
		// fire.Message.Data is what the client sent and fire.Message.Topic
		// where it goes. Check here that the sender may publish there, then
		// Publish sends it to every connection subscribed to the topic.
		_ = tower.Publish(fire)
		return true
	})

	// The client sends faster than the handlers consume: the message is
	// dropped.
	tower.SetReadTimeoutHandler(func(fire *gateway.FireInfo) {
		fmt.Println("read timeout:", fire.Message.Type, fire.Message.Topic, string(fire.Message.Data))
	})

	// Called before the subscription is made: decide here whether the user
	// may subscribe to these topics.
	tower.SetBeforeSubscribeHandler(func(context *gateway.FireLife, topic []string) bool {
		return true
	})

	// Called once the topics are subscribed: the chat room tells everyone
	// in it that the online count went up.
	tower.SetSubscribeHandler(func(context *gateway.FireLife, topic []string) bool {
		for _, v := range topic {
			num := tower.GetConnectNum(v)
			// The announcement inherits the subscription's context.
			pushmsg := gateway.NewFireInfo(tower, context)
			pushmsg.Message.Topic = v
			pushmsg.Message.Data = []byte(fmt.Sprintf("{\"type\":\"onSubscribe\",\"data\":%d}", num))
			_ = tower.Publish(pushmsg)
		}
		return true
	})

	// Called after topics were unsubscribed, including every remaining
	// topic when the client disconnects.
	tower.SetUnSubscribeHandler(func(context *gateway.FireLife, topic []string) bool {
		for _, v := range topic {
			num := tower.GetConnectNum(v)
			pushmsg := gateway.NewFireInfo(tower, context)
			pushmsg.Message.Topic = v
			pushmsg.Message.Data = []byte(fmt.Sprintf("{\"type\":\"onUnsubscribe\",\"data\":%d}", num))
			_ = tower.Publish(pushmsg)
		}
		return true
	})

	tower.Run()
}
