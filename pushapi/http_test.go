package pushapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/internal/apitest"
	"github.com/firetower-go/firetower/protocol"
	"github.com/firetower-go/firetower/pushapi"
	"github.com/firetower-go/firetower/server"
	"github.com/gorilla/websocket"
)

// post calls the API of s with its key.
func post(t *testing.T, s *apitest.Server, path, body string) (int, string) {
	t.Helper()
	return apitest.Request(t, http.MethodPost, s.Base+path, s.Key, body)
}

func get(t *testing.T, s *apitest.Server, pathAndQuery string) (int, string) {
	t.Helper()
	return apitest.Request(t, http.MethodGet, s.Base+pathAndQuery, s.Key, "")
}

// decode unmarshals a 200 answer, failing on another status.
func decode[T any](t *testing.T, status int, body string) T {
	t.Helper()
	var v T
	if status != http.StatusOK {
		t.Fatalf("status %d, body %s", status, body)
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("bad body %q: %v", body, err)
	}
	return v
}

func postOK[T any](t *testing.T, s *apitest.Server, path, body string) T {
	t.Helper()
	status, b := post(t, s, path, body)
	return decode[T](t, status, b)
}

func getOK[T any](t *testing.T, s *apitest.Server, pathAndQuery string) T {
	t.Helper()
	status, b := get(t, s, pathAndQuery)
	return decode[T](t, status, b)
}

// wantError checks an error answer: its status and code, and the shape
// {"error":{"code","message"}} with nothing else.
func wantError(t *testing.T, status int, body string, wantStatus int, wantCode pushapi.Code) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d, want %d; body %s", status, wantStatus, body)
	}
	var eb map[string]map[string]string
	if err := json.Unmarshal([]byte(body), &eb); err != nil || len(eb) != 1 || len(eb["error"]) != 2 {
		t.Fatalf("error body %q is not {\"error\":{\"code\",\"message\"}}", body)
	}
	if got := eb["error"]["code"]; got != string(wantCode) || eb["error"]["message"] == "" {
		t.Fatalf("error %v, want code %s and a message", eb["error"], wantCode)
	}
	if wantCode.HTTPStatus() != wantStatus {
		t.Fatalf("code %s maps to %d, the server sent %d", wantCode, wantCode.HTTPStatus(), wantStatus)
	}
}

func TestPublish(t *testing.T) {
	s := apitest.Start(t, server.Config{QuietCounts: true})
	const topic = "/t/publish"
	v1 := apitest.Dial(t, s.WS, false)
	v2 := apitest.Dial(t, s.WS, true)
	apitest.Subscribe(t, s, v1, false, topic, 1)
	apitest.Subscribe(t, s, v2, true, topic, 2)

	p := postOK[pushapi.Published](t, s, "/api/publish", `{"topic":"/t/publish","data":{"n":1,"big":12345678901234567890}}`)
	if p.Topic != topic || p.ID == "" {
		t.Fatalf("answer %+v", p)
	}
	// v1 gets the data exactly as sent (a big number is not rounded), v2
	// the envelope with the id of the answer.
	if got := apitest.Next(t, v1); got != `{"n":1,"big":12345678901234567890}` {
		t.Errorf("v1 got %s", got)
	}
	want := `{"type":"message","topic":"/t/publish","id":"` + p.ID + `","data":{"n":1,"big":12345678901234567890}}`
	if got := apitest.Next(t, v2); got != want {
		t.Errorf("v2 got %s, want %s", got, want)
	}

	// X-API-Key works as well as the Bearer token.
	req, _ := http.NewRequest(http.MethodPost, s.Base+"/api/publish", strings.NewReader(`{"topic":"/t/publish","data":"x"}`))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-API-Key", s.Key)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("X-API-Key: status %d", resp.StatusCode)
	}
	if got := apitest.Next(t, v1); got != `"x"` {
		t.Errorf("v1 got %s", got)
	}

	// A topic nobody holds is not an error: at-most-once pub/sub.
	postOK[pushapi.Published](t, s, "/api/publish", `{"topic":"/t/nobody","data":null}`)
	// Data null is a JSON value too.
	postOK[pushapi.Published](t, s, "/api/publish", `{"topic":"/t/publish","data":null}`)
	if got := apitest.Next(t, v1); got != `null` {
		t.Errorf("v1 got %s", got)
	}
}

func TestBroadcast(t *testing.T) {
	s := apitest.Start(t, server.Config{QuietCounts: true})
	a := apitest.Dial(t, s.WS, false)
	b := apitest.Dial(t, s.WS, true)
	apitest.Subscribe(t, s, a, false, "/t/a", 1)
	apitest.Subscribe(t, s, b, true, "/t/b", 1)
	res := postOK[pushapi.BroadcastResponse](t, s, "/api/broadcast", `{"topics":["/t/a"," /t/b","/t/a","/t/c"],"data":[1,2]}`)
	if len(res.Messages) != 3 || res.Messages[0].Topic != "/t/a" || res.Messages[1].Topic != "/t/b" || res.Messages[2].Topic != "/t/c" {
		t.Fatalf("answer %+v, want /t/a, /t/b, /t/c once each", res)
	}
	if got := apitest.Next(t, a); got != `[1,2]` {
		t.Errorf("a got %s", got)
	}
	want := `{"type":"message","topic":"/t/b","id":"` + res.Messages[1].ID + `","data":[1,2]}`
	if got := apitest.Next(t, b); got != want {
		t.Errorf("b got %s, want %s", got, want)
	}
	// One invalid topic refuses the whole call: nothing is sent.
	status, body := post(t, s, "/api/broadcast", `{"topics":["/t/a","bad,topic"],"data":1}`)
	wantError(t, status, body, http.StatusUnprocessableEntity, pushapi.CodeInvalidTopic)
	postOK[pushapi.Published](t, s, "/api/publish", `{"topic":"/t/a","data":"marker"}`)
	if got := apitest.Next(t, a); got != `"marker"` {
		t.Errorf("a got %s after a refused broadcast, want the marker", got)
	}
}

// expectQuiet checks that c gets nothing before a marker published on
// topic (to which c must be subscribed).
func expectQuiet(t *testing.T, s *apitest.Server, c *websocket.Conn, topic string) {
	t.Helper()
	postOK[pushapi.Published](t, s, "/api/publish", `{"topic":"`+topic+`","data":"marker"}`)
	if got := apitest.Next(t, c); !strings.Contains(got, `"marker"`) {
		t.Errorf("got %s, want nothing before the marker", got)
	}
}

func TestPush(t *testing.T) {
	s := apitest.Start(t, server.Config{QuietCounts: true})
	const topic = "/t/push"
	c1 := apitest.Dial(t, s.WS+"?client=c1&user=u1", false)
	c2 := apitest.Dial(t, s.WS+"?client=c2&user=u1", true)
	c3 := apitest.Dial(t, s.WS+"?client=c3&user=u2", false)
	for i, c := range []*websocket.Conn{c1, c2, c3} {
		apitest.Subscribe(t, s, c, i == 1, topic, int64(i+1))
	}

	a := postOK[pushapi.Affected](t, s, "/api/push/client", `{"clientId":"c1","data":{"hello":"c1"}}`)
	if a.Local != 1 {
		t.Errorf("push to c1 reached %d, want 1", a.Local)
	}
	if got := apitest.Next(t, c1); got != `{"hello":"c1"}` {
		t.Errorf("c1 got %s", got)
	}
	a = postOK[pushapi.Affected](t, s, "/api/push/user", `{"userId":"u1","data":"hi u1"}`)
	if a.Local != 2 {
		t.Errorf("push to u1 reached %d, want 2", a.Local)
	}
	if got := apitest.Next(t, c1); got != `"hi u1"` {
		t.Errorf("c1 got %s", got)
	}
	// v2 gets what ToSelf sends: a direct frame.
	if got := apitest.Next(t, c2); got != `{"type":"direct","data":"hi u1"}` {
		t.Errorf("c2 got %s", got)
	}
	expectQuiet(t, s, c3, topic)

	// An unknown id is not an error: nobody here had it (other nodes may).
	a = postOK[pushapi.Affected](t, s, "/api/push/client", `{"clientId":"nobody","data":1}`)
	if a.Local != 0 {
		t.Errorf("push to an unknown client reached %d", a.Local)
	}
	a = postOK[pushapi.Affected](t, s, "/api/push/user", `{"userId":"nobody","data":1}`)
	if a.Local != 0 {
		t.Errorf("push to an unknown user reached %d", a.Local)
	}
}

func TestDisconnect(t *testing.T) {
	s := apitest.Start(t, server.Config{QuietCounts: true})
	c1 := apitest.Dial(t, s.WS+"?client=c1&user=u1", false)
	c2 := apitest.Dial(t, s.WS+"?client=c2&user=u2", true)
	c3 := apitest.Dial(t, s.WS+"?client=c3&user=u2", false)
	keep := apitest.Dial(t, s.WS+"?client=c4&user=u3", false)
	for i, c := range []*websocket.Conn{c1, c2, c3, keep} {
		apitest.Subscribe(t, s, c, i == 1, "/t/d", int64(i+1))
	}
	if a := postOK[pushapi.Affected](t, s, "/api/disconnect/client", `{"clientId":"c1"}`); a.Local != 1 {
		t.Errorf("disconnect c1: %d", a.Local)
	}
	wantClosed(t, c1, protocol.CloseKicked)
	if a := postOK[pushapi.Affected](t, s, "/api/disconnect/user", `{"userId":"u2"}`); a.Local != 2 {
		t.Errorf("disconnect u2: %d", a.Local)
	}
	wantClosed(t, c2, protocol.CloseKicked)
	wantClosed(t, c3, protocol.CloseKicked)
	expectQuiet(t, s, keep, "/t/d")
	if a := postOK[pushapi.Affected](t, s, "/api/disconnect/client", `{"clientId":"c1"}`); a.Local != 0 {
		t.Errorf("disconnect c1 again: %d", a.Local)
	}
}

func wantClosed(t *testing.T, c *websocket.Conn, code int) {
	t.Helper()
	_, err := apitest.NextErr(c, 5*time.Second)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code {
		t.Fatalf("read: %v, want close %d", err, code)
	}
}

func TestRemoveUserAndCloseTopic(t *testing.T) {
	s := apitest.Start(t, server.Config{QuietCounts: true})
	u1 := apitest.Dial(t, s.WS+"?client=c1&user=u1", false)
	u2 := apitest.Dial(t, s.WS+"?client=c2&user=u2", false)
	apitest.Subscribe(t, s, u1, false, "/t/r", 1)
	apitest.Subscribe(t, s, u2, false, "/t/r", 2)
	apitest.Subscribe(t, s, u1, false, "/t/other", 1)
	if a := postOK[pushapi.Affected](t, s, "/api/remove-user", `{"userId":"u1","topic":"/t/r"}`); a.Local != 1 {
		t.Errorf("remove u1: %d", a.Local)
	}
	if c := getOK[pushapi.TopicCount](t, s, "/api/count?topic=/t/r"); c.Count != 1 {
		t.Errorf("count after remove-user: %+v", c)
	}
	expectQuiet(t, s, u1, "/t/other") // still connected, nothing from /t/r
	if a := postOK[pushapi.Affected](t, s, "/api/close-topic", `{"topic":"/t/r"}`); a.Local != 1 {
		t.Errorf("close-topic: %d", a.Local)
	}
	if c := getOK[pushapi.TopicCount](t, s, "/api/count?topic=%2Ft%2Fr"); c.Count != 0 || c.Local != 0 {
		t.Errorf("count after close-topic: %+v", c)
	}
}

func TestCountAndTopics(t *testing.T) {
	s := apitest.Start(t, server.Config{QuietCounts: true})
	topics := []string{"/t/c", "/t/a", "/t/b", "/t/d", "/t/e"}
	conns := make([]*websocket.Conn, 2)
	for i := range conns {
		conns[i] = apitest.Dial(t, s.WS, false)
	}
	for i, topic := range topics {
		apitest.Subscribe(t, s, conns[0], false, topic, 1)
		if i%2 == 0 {
			apitest.Subscribe(t, s, conns[1], false, topic, 2)
		}
	}
	if c := getOK[pushapi.TopicCount](t, s, "/api/count?topic=/t/a"); c != (pushapi.TopicCount{Topic: "/t/a", Count: 1, Local: 1}) {
		t.Errorf("count /t/a: %+v", c)
	}
	if c := getOK[pushapi.TopicCount](t, s, "/api/count?topic=/t/c"); c.Count != 2 {
		t.Errorf("count /t/c: %+v", c)
	}
	if c := getOK[pushapi.TopicCount](t, s, "/api/count?topic=/t/unknown"); c.Count != 0 {
		t.Errorf("count of an unknown topic: %+v", c)
	}

	var all []pushapi.TopicCount
	cursor, pages := "", 0
	for {
		page := getOK[pushapi.TopicPage](t, s, "/api/topics?limit=2&cursor="+cursor)
		pages++
		if len(page.Topics) > 2 || page.Partial {
			t.Fatalf("page %+v", page)
		}
		all = append(all, page.Topics...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	want := []pushapi.TopicCount{{"/t/a", 1, 1}, {"/t/b", 2, 2}, {"/t/c", 2, 2}, {"/t/d", 1, 1}, {"/t/e", 2, 2}}
	if fmt.Sprint(all) != fmt.Sprint(want) || pages != 3 {
		t.Errorf("%d pages: %v, want 3 pages: %v", pages, all, want)
	}
	if page := getOK[pushapi.TopicPage](t, s, "/api/topics"); len(page.Topics) != 5 || page.NextCursor != "" {
		t.Errorf("default page: %+v", page)
	}
}

func TestInfoAndNodes(t *testing.T) {
	s := apitest.Start(t, server.Config{QuietCounts: true, Gateway: gateway.Config{NodeID: "node-x", Version: "v9"}})
	info := getOK[gateway.NodeInfo](t, s, "/api/info")
	if info.ID != "node-x" || info.Version != "v9" || !info.Self || info.Broker == "" {
		t.Errorf("info %+v", info)
	}
	nodes := getOK[pushapi.Cluster](t, s, "/api/nodes")
	if len(nodes.Nodes) != 1 || nodes.Nodes[0].ID != "node-x" {
		t.Errorf("nodes %+v", nodes)
	}
}

func TestHTTPErrors(t *testing.T) {
	s := apitest.Start(t, server.Config{QuietCounts: true, Gateway: gateway.Config{MaxMessageSize: 1000}})
	body := s.Srv.API().Config().MaxBodyBytes
	if body != 1000+pushapi.DefaultBodySlack {
		t.Fatalf("body limit %d", body)
	}
	big := strings.Repeat("x", 2000)
	huge := strings.Repeat("x", int(body))
	manyTopics := `"` + strings.Repeat(`t",`+`"`, pushapi.DefaultMaxBroadcastTopics) + `t"`
	cases := []struct {
		name, method, path, key, ctype, body string
		status                               int
		code                                 pushapi.Code
	}{
		{"no key", "POST", "/api/publish", "-", "", `{"topic":"a","data":1}`, 401, pushapi.CodeUnauthenticated},
		{"wrong key", "POST", "/api/publish", "guess", "", `{"topic":"a","data":1}`, 401, pushapi.CodeUnauthenticated},
		{"no key, unknown path", "GET", "/api/nope", "-", "", "", 401, pushapi.CodeUnauthenticated},
		{"bad JSON", "POST", "/api/publish", "", "", `{"topic":"a","data":}`, 400, pushapi.CodeBadRequest},
		{"not an object", "POST", "/api/publish", "", "", `[1]`, 400, pushapi.CodeBadRequest},
		{"unknown field", "POST", "/api/publish", "", "", `{"topic":"a","data":1,"topics":["b"]}`, 400, pushapi.CodeBadRequest},
		{"two values", "POST", "/api/publish", "", "", `{"topic":"a","data":1}{}`, 400, pushapi.CodeBadRequest},
		{"empty body", "POST", "/api/publish", "", "", ``, 400, pushapi.CodeBadRequest},
		{"no data", "POST", "/api/publish", "", "", `{"topic":"a"}`, 400, pushapi.CodeBadRequest},
		{"data not UTF-8", "POST", "/api/publish", "", "", "{\"topic\":\"a\",\"data\":\"\xff\"}", 400, pushapi.CodeBadRequest},
		{"empty topic", "POST", "/api/publish", "", "", `{"topic":"","data":1}`, 422, pushapi.CodeInvalidTopic},
		{"topic with a comma", "POST", "/api/publish", "", "", `{"topic":"a,b","data":1}`, 422, pushapi.CodeInvalidTopic},
		{"topic with a control character", "POST", "/api/publish", "", "", `{"topic":"a\nb","data":1}`, 422, pushapi.CodeInvalidTopic},
		{"topic too long", "POST", "/api/publish", "", "", `{"topic":"` + strings.Repeat("t", 256) + `","data":1}`, 422, pushapi.CodeInvalidTopic},
		{"data over the message limit", "POST", "/api/publish", "", "", `{"topic":"a","data":"` + big + `"}`, 413, pushapi.CodeTooLarge},
		{"body over the body limit", "POST", "/api/publish", "", "", `{"topic":"a","data":"` + huge + `"}`, 413, pushapi.CodeTooLarge},
		{"not JSON", "POST", "/api/publish", "", "text/plain", `{"topic":"a","data":1}`, 415, pushapi.CodeUnsupportedMediaType},
		{"wrong method", "GET", "/api/publish", "", "", "", 405, pushapi.CodeMethodNotAllowed},
		{"unknown path", "GET", "/api/nope", "", "", "", 404, pushapi.CodeNotFound},
		{"broadcast without topics", "POST", "/api/broadcast", "", "", `{"data":1}`, 400, pushapi.CodeBadRequest},
		{"broadcast to too many topics", "POST", "/api/broadcast", "", "", `{"topics":[` + manyTopics + `],"data":1}`, 400, pushapi.CodeBadRequest},
		{"broadcast of bad data", "POST", "/api/broadcast", "", "", "{\"topics\":[\"a\"],\"data\":\"\xff\"}", 400, pushapi.CodeBadRequest},
		{"push without a client id", "POST", "/api/push/client", "", "", `{"data":1}`, 400, pushapi.CodeBadRequest},
		{"push without data", "POST", "/api/push/client", "", "", `{"clientId":"c"}`, 400, pushapi.CodeBadRequest},
		{"push too large", "POST", "/api/push/user", "", "", `{"userId":"u","data":"` + big + `"}`, 413, pushapi.CodeTooLarge},
		{"push without a user id", "POST", "/api/push/user", "", "", `{"data":1}`, 400, pushapi.CodeBadRequest},
		{"disconnect without a client id", "POST", "/api/disconnect/client", "", "", `{}`, 400, pushapi.CodeBadRequest},
		{"disconnect without a user id", "POST", "/api/disconnect/user", "", "", `{"userId":""}`, 400, pushapi.CodeBadRequest},
		{"disconnect with data", "POST", "/api/disconnect/user", "", "", `{"userId":"u","data":1}`, 400, pushapi.CodeBadRequest},
		{"remove-user without a topic", "POST", "/api/remove-user", "", "", `{"userId":"u"}`, 422, pushapi.CodeInvalidTopic},
		{"remove-user without a user", "POST", "/api/remove-user", "", "", `{"topic":"t"}`, 400, pushapi.CodeBadRequest},
		{"close-topic, bad topic", "POST", "/api/close-topic", "", "", `{"topic":"a,b"}`, 422, pushapi.CodeInvalidTopic},
		{"count without a topic", "GET", "/api/count", "", "", "", 422, pushapi.CodeInvalidTopic},
		{"topics, bad limit", "GET", "/api/topics?limit=x", "", "", "", 400, pushapi.CodeBadRequest},
		{"topics, limit 0", "GET", "/api/topics?limit=0", "", "", "", 400, pushapi.CodeBadRequest},
		{"topics, limit too high", "GET", "/api/topics?limit=1001", "", "", "", 400, pushapi.CodeBadRequest},
		{"topics, bad cursor", "GET", "/api/topics?cursor=%25%25", "", "", "", 400, pushapi.CodeBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, s.Base+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Close = true
			switch c.key {
			case "":
				req.Header.Set("Authorization", "Bearer "+s.Key)
			case "-":
			default:
				req.Header.Set("Authorization", "Bearer "+c.key)
			}
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			} else if c.method == "POST" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			wantError(t, resp.StatusCode, readAll(t, resp), c.status, c.code)
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			switch c.status {
			case 401:
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			case 405:
				if resp.Header.Get("Allow") != "POST" {
					t.Errorf("405 with Allow %q", resp.Header.Get("Allow"))
				}
			}
		})
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// failingBroker is a broker that cannot reach the other nodes: what a
// gateway sees while its topic manager or Redis is down.
type failingBroker struct{}

func (failingBroker) Start(context.Context, string, broker.Handler) error { return nil }
func (failingBroker) Publish(context.Context, *broker.Message) error {
	return fmt.Errorf("%w: test outage", broker.ErrUnavailable)
}
func (failingBroker) SetInterest(string, int64) {}
func (failingBroker) Count(context.Context, string) (int64, error) {
	return 0, fmt.Errorf("%w: test outage", broker.ErrUnavailable)
}
func (failingBroker) Close() error { return nil }

// During a broker outage the API says so (503) at once, and the local
// subscribers still get what was published.
func TestBrokerOutage(t *testing.T) {
	s := apitest.Start(t, server.Config{QuietCounts: true, Gateway: gateway.Config{Broker: failingBroker{}, NodeInfoInterval: -1}})
	c := apitest.Dial(t, s.WS+"?client=c1&user=u1", false)
	apitest.Subscribe(t, s, c, false, "/t/o", 1)
	start := time.Now()
	status, body := post(t, s, "/api/publish", `{"topic":"/t/o","data":1}`)
	wantError(t, status, body, 503, pushapi.CodeUnavailable)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the error took %v", d)
	}
	if got := apitest.Next(t, c); got != `1` {
		t.Errorf("local subscriber got %s", got)
	}
	status, body = post(t, s, "/api/broadcast", `{"topics":["/t/o","/t/p"],"data":2}`)
	wantError(t, status, body, 503, pushapi.CodeUnavailable)
	if !strings.Contains(body, "2 of 2 topics") {
		t.Errorf("broadcast error %s does not say how many failed", body)
	}
	if got := apitest.Next(t, c); got != `2` {
		t.Errorf("local subscriber got %s", got)
	}
	status, body = post(t, s, "/api/push/user", `{"userId":"u1","data":3}`)
	wantError(t, status, body, 503, pushapi.CodeUnavailable)
	if got := apitest.Next(t, c); got != `3` {
		t.Errorf("local pushed-to user got %s", got)
	}
	status, body = get(t, s, "/api/count?topic=/t/o")
	wantError(t, status, body, 503, pushapi.CodeUnavailable)
	page := getOK[pushapi.TopicPage](t, s, "/api/topics")
	if !page.Partial || len(page.Topics) != 1 || page.Topics[0].Count != 1 {
		t.Errorf("topics during the outage: %+v, want partial local counts", page)
	}
}

// A publish the broker did not confirm is neither "not sent" (503) nor a
// bug: 504 with its own code, which says the outcome is unknown.
func TestUnknownOutcomeError(t *testing.T) {
	e := pushapi.ErrorOf(fmt.Errorf("gateway: publish to other nodes: %w", broker.ErrUnknownOutcome))
	if e.Code != pushapi.CodeUnknownOutcome || e.Code.HTTPStatus() != http.StatusGatewayTimeout {
		t.Errorf("ErrorOf(unknown outcome) = %v, status %d; want %s, 504", e, e.Code.HTTPStatus(), pushapi.CodeUnknownOutcome)
	}
	if !errors.Is(e, broker.ErrUnknownOutcome) {
		t.Errorf("%v does not wrap its cause", e)
	}
}
