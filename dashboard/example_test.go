package dashboard_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/firetower-go/firetower/dashboard"
	"github.com/firetower-go/firetower/gateway"
)

// Mount the dashboard of a gateway on a mux; a script reads it with the key.
func Example() {
	gw, err := gateway.New(gateway.Config{NodeID: "gw-1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer gw.Close()
	dash, err := dashboard.New(dashboard.Config{Gateway: gw, APIKey: "secret", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	dash.Register(mux)
	dash.Start()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer dash.Close() // ends the event streams before the server closes

	for _, key := range []string{"", "secret"} {
		req, _ := http.NewRequest("GET", srv.URL+"/dashboard/api/snapshot", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		var snap dashboard.SnapshotResponse
		_ = json.NewDecoder(resp.Body).Decode(&snap)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			fmt.Println(resp.StatusCode)
			continue
		}
		fmt.Println(resp.StatusCode, snap.Self, len(snap.Nodes), snap.Nodes[0].State, snap.CanAct)
	}
	// Output:
	// 401
	// 200 gw-1 1 ready true
}
