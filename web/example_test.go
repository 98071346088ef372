package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/firetower-go/firetower/web"
)

// Register mounts the chat room at / and the client library under /static/
// on an application's own mux, next to its /ws handler.
func ExampleRegister() {
	mux := http.NewServeMux()
	web.Register(mux)

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/static/firetower.js", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	// Output: 200 text/javascript; charset=utf-8
}
