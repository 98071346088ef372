package gateway_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/firetower-go/firetower/gateway"
	"github.com/gorilla/websocket"
)

// A gateway program in the shape of the original firetower example: the
// /ws handler upgrades the request, builds a tower, hooks the business
// logic into its callbacks and runs it. Here the read handler republishes
// what clients send, and every subscription announces the topic's online
// count to the topic. A client then joins a room and chats.
func Example() {
	gw, err := gateway.New(gateway.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer gw.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		// Authenticate r here. Upgrade checks the Origin and answers the
		// request itself on failure.
		ws, err := gw.Upgrade(w, r)
		if err != nil {
			return
		}
		tower := gw.BuildTower(ws, fmt.Sprint(gw.NewID()))
		tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
			_ = tower.Publish(fire) // {"type":"publish","topic":T,"data":D}
			return true
		})
		tower.SetSubscribeHandler(func(life *gateway.FireLife, topics []string) bool {
			for _, topic := range topics {
				fire := gateway.NewFireInfo(tower, life)
				fire.Message.Topic = topic
				fire.Message.Data = fmt.Appendf(nil, `{"type":"onSubscribe","data":%d}`, tower.GetConnectNum(topic))
				_ = tower.Publish(fire)
			}
			return true
		})
		tower.Run() // blocks until the client goes away
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// A client speaking the original protocol, as the JS client does.
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","topic":"/chat/world","data":""}`))
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"publish","topic":"/chat/world","data":{"from":"1234567","data":"hello","type":"publish"}}`))
	for range 2 {
		_, msg, err := c.ReadMessage()
		if err != nil {
			panic(err)
		}
		fmt.Println(string(msg))
	}
	// Output:
	// {"type":"onSubscribe","data":1}
	// {"from":"1234567","data":"hello","type":"publish"}
}
