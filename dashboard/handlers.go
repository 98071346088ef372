package dashboard

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/internal/apikey"
)

// Limits of the JSON API.
const (
	maxBody          = 4 << 10 // login form and disconnect request
	defaultTopicHits = 50
	maxTopicHits     = 500
	maxTopicName     = 1 << 10
	connectionHits   = 100
)

// Register adds the dashboard's routes to mux:
//
//	GET  /dashboard                  the page (401 and the login form without access)
//	GET  /dashboard/static/{file}    its script and style (public: they hold no data)
//	GET  /dashboard/login            the login form
//	POST /dashboard/login            form field "key": sets the session cookie
//	POST /dashboard/logout           clears it
//	GET  /dashboard/events           Server-Sent Events: "hello", then "snapshot" every interval, "bye" on shutdown
//	GET  /dashboard/api/snapshot     the last snapshot (JSON)
//	GET  /dashboard/api/topics       ?q=SUBSTRING&limit=N: topic search
//	GET  /dashboard/api/topic        ?name=TOPIC: a topic per node
//	GET  /dashboard/api/connections  ?client=ID or ?user=ID: this node's connections (key required)
//	POST /dashboard/api/disconnect   {"clientId":ID} or {"userId":ID}: cluster-wide disconnect (key required)
func (d *Dashboard) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /dashboard", d.page)
	mux.HandleFunc("GET /dashboard/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/dashboard", http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET /dashboard/static/{file}", func(w http.ResponseWriter, r *http.Request) {
		serveAsset(w, r, r.PathValue("file"))
	})
	mux.HandleFunc("GET /dashboard/login", d.loginForm)
	mux.HandleFunc("POST /dashboard/login", d.login)
	mux.HandleFunc("POST /dashboard/logout", d.logout)
	mux.HandleFunc("GET /dashboard/events", d.needs(accessView, d.events))
	mux.HandleFunc("GET /dashboard/api/snapshot", d.needs(accessView, d.snapshotAPI))
	mux.HandleFunc("GET /dashboard/api/topics", d.needs(accessView, d.topicsAPI))
	mux.HandleFunc("GET /dashboard/api/topic", d.needs(accessView, d.topicAPI))
	mux.HandleFunc("GET /dashboard/api/connections", d.needs(accessFull, d.connectionsAPI))
	mux.HandleFunc("POST /dashboard/api/disconnect", d.needs(accessFull, d.disconnectAPI))
}

// page serves the dashboard, or the login form with 401.
func (d *Dashboard) page(w http.ResponseWriter, r *http.Request) {
	if d.access(r) == accessNone {
		serveLogin(w, http.StatusUnauthorized, false)
		return
	}
	serveAsset(w, r, "index.html")
}

func (d *Dashboard) loginForm(w http.ResponseWriter, r *http.Request) {
	if d.access(r) == accessFull {
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
		return
	}
	serveLogin(w, http.StatusOK, false)
}

// login checks the key of the form and sets the session cookie.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "403 cross-site request refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "400 bad form", http.StatusBadRequest)
		return
	}
	if d.cfg.Insecure {
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
		return
	}
	if !apikey.Equal(strings.TrimSpace(r.PostForm.Get("key")), d.cfg.APIKey) {
		d.log.Info("dashboard login refused: wrong key", "remote", r.RemoteAddr)
		serveLogin(w, http.StatusUnauthorized, true)
		return
	}
	d.setSession(w, r)
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "403 cross-site request refused", http.StatusForbidden)
		return
	}
	clearSession(w, r)
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

// needs wraps an API handler: 401 below the access level.
func (d *Dashboard) needs(level access, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if d.access(r) < level {
			w.Header().Set("WWW-Authenticate", `Bearer realm="firetower"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{"the API key is required"})
			return
		}
		h(w, r)
	}
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding failed"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Hello is the first event of a stream.
type Hello struct {
	Self string `json:"self"`
	// CanAct says whether this page may look up and disconnect
	// connections (it has the key, not only Config.Open).
	CanAct   bool      `json:"canAct"`
	Open     bool      `json:"open"`
	Interval int64     `json:"interval"` // milliseconds
	Keep     int       `json:"keep"`     // samples the charts keep (Config.History)
	History  []Sample  `json:"history"`
	Snapshot *Snapshot `json:"snapshot"`
}

// events is the Server-Sent Events stream.
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	switch {
	case d.closed:
		d.mu.Unlock()
		http.Error(w, "503 shutting down", http.StatusServiceUnavailable)
		return
	case d.streams >= d.cfg.MaxStreams:
		d.mu.Unlock()
		w.Header().Set("Retry-After", "5")
		http.Error(w, "503 too many dashboard streams", http.StatusServiceUnavailable)
		return
	}
	d.streams++
	d.wg.Add(1) // under mu, before closed is set: Close waits for this stream
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.streams--
		d.mu.Unlock()
		d.wg.Done()
	}()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events through at once
	h.Set("X-Content-Type-Options", "nosniff")
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeWait))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	hello := Hello{
		Self:     d.g.NodeID(),
		CanAct:   d.access(r) == accessFull,
		Open:     d.cfg.Open || d.cfg.Insecure,
		Interval: d.cfg.Interval.Milliseconds(),
		Keep:     d.cfg.History,
		History:  d.history(),
		Snapshot: d.lastSnapshot(),
	}
	// retry: how long the browser waits before it reconnects by itself.
	if !write(append([]byte("retry: 3000\n\n"), encodeEvent("hello", hello)...)) {
		return
	}
	for {
		d.mu.Lock()
		tick := d.tick
		d.mu.Unlock()
		select {
		case <-tick:
			d.mu.Lock()
			ev := d.snapshot
			d.mu.Unlock()
			if ev != nil && !write(ev) {
				return
			}
		case <-r.Context().Done():
			return
		case <-d.stop:
			write(encodeEvent("bye", errorBody{"the server is shutting down"}))
			return
		}
	}
}

// SnapshotResponse is the answer of /dashboard/api/snapshot.
type SnapshotResponse struct {
	*Snapshot
	CanAct bool `json:"canAct"`
}

func (d *Dashboard) snapshotAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, SnapshotResponse{Snapshot: d.lastSnapshot(), CanAct: d.access(r) == accessFull})
}

// TopicsResult is the answer of /dashboard/api/topics.
type TopicsResult struct {
	Node string `json:"node"`
	// Local are this node's matching topics (every one of them is
	// searched), LocalMatched how many matched in all.
	Local        []gateway.TopicStat `json:"local"`
	LocalMatched int                 `json:"localMatched"`
	// Cluster are the matching topics among the top topics every node
	// broadcasts (other topics of other nodes are not searchable).
	Cluster []TopicView `json:"cluster"`
}

func (d *Dashboard) topicsAPI(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("q")
	limit := defaultTopicHits
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, errorBody{"limit must be a positive number"})
			return
		}
		limit = min(n, maxTopicHits)
	}
	res := TopicsResult{Node: d.g.NodeID()}
	res.Local, res.LocalMatched = d.g.SearchTopics(q, limit)
	for _, t := range mergedTopics(d.g.Nodes()) {
		if strings.Contains(t.Topic, q) {
			res.Cluster = append(res.Cluster, t)
		}
	}
	res.Cluster = sortTopicViews(res.Cluster, limit)
	if res.Local == nil {
		res.Local = []gateway.TopicStat{}
	}
	writeJSON(w, http.StatusOK, res)
}

// sortTopicViews orders by subscribers, then name, and keeps limit.
func sortTopicViews(ts []TopicView, limit int) []TopicView {
	slices.SortFunc(ts, func(a, b TopicView) int {
		return cmp.Or(cmp.Compare(b.Subscribers, a.Subscribers), strings.Compare(a.Topic, b.Topic))
	})
	if len(ts) > limit {
		ts = ts[:limit]
	}
	if ts == nil {
		ts = []TopicView{}
	}
	return ts
}

// TopicDetail is the answer of /dashboard/api/topic.
type TopicDetail struct {
	Topic string `json:"topic"`
	// Total is the cluster-wide subscriber count the broker reports (this
	// node's count plus the others' last reports); TotalError says why it
	// could not be had (Total is then this node's count).
	Total      int64  `json:"total"`
	TotalError string `json:"totalError,omitempty"`
	// Nodes has one entry per node of the cluster view.
	Nodes []TopicNode `json:"nodes"`
	// Unlisted is Total minus the counts known per node: subscribers on
	// nodes that do not list the topic among their top topics.
	Unlisted int64 `json:"unlisted"`
}

// TopicNode is a topic on one node.
type TopicNode struct {
	Node        string  `json:"node"`
	Subscribers int64   `json:"subscribers"`
	Messages    int64   `json:"messages"`
	Rate        float64 `json:"rate"`
	// Exact is true for this node: counted now. Listed is true for another
	// node that lists the topic among its top topics, as of its last
	// broadcast (Age seconds ago). For other nodes the count is unknown.
	Exact  bool    `json:"exact"`
	Listed bool    `json:"listed"`
	Age    float64 `json:"age"`
}

func (d *Dashboard) topicAPI(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" || len(name) > maxTopicName {
		writeJSON(w, http.StatusBadRequest, errorBody{"name must be a topic"})
		return
	}
	now := time.Now()
	res := TopicDetail{Topic: name}
	var known int64
	for _, n := range d.g.Nodes() {
		tn := TopicNode{Node: n.ID}
		if n.Self {
			st := d.g.LocalTopic(name)
			tn.Subscribers, tn.Messages, tn.Rate, tn.Exact = st.Subscribers, st.Messages, st.Rate, true
		} else {
			tn.Age = max(0, now.Sub(n.UpdatedAt).Seconds())
			for _, st := range n.Topics {
				if st.Topic == name {
					tn.Subscribers, tn.Messages, tn.Rate, tn.Listed = st.Subscribers, st.Messages, st.Rate, true
				}
			}
		}
		known += tn.Subscribers
		res.Nodes = append(res.Nodes, tn)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	total, _, err := d.g.ClusterCount(ctx, name)
	res.Total = total
	if err != nil {
		res.TotalError = err.Error()
	}
	res.Unlisted = max(0, res.Total-known)
	writeJSON(w, http.StatusOK, res)
}

// ConnectionsResult is the answer of /dashboard/api/connections.
type ConnectionsResult struct {
	Node        string             `json:"node"`
	Matched     int                `json:"matched"`
	Connections []gateway.ConnInfo `json:"connections"`
}

func (d *Dashboard) connectionsAPI(w http.ResponseWriter, r *http.Request) {
	client, user := r.URL.Query().Get("client"), r.URL.Query().Get("user")
	if (client == "") == (user == "") {
		writeJSON(w, http.StatusBadRequest, errorBody{"give client or user, not both"})
		return
	}
	res := ConnectionsResult{Node: d.g.NodeID()}
	res.Connections, res.Matched = d.g.FindConnections(client, user, connectionHits)
	if res.Connections == nil {
		res.Connections = []gateway.ConnInfo{}
	}
	writeJSON(w, http.StatusOK, res)
}

// DisconnectRequest is the body of /dashboard/api/disconnect: one of the
// two ids.
type DisconnectRequest struct {
	ClientID string `json:"clientId"`
	UserID   string `json:"userId"`
}

// DisconnectResult says how many connections of this node were closed; the
// other nodes close theirs when the command reaches them (Error says if it
// could not be sent).
type DisconnectResult struct {
	Node  string `json:"node"`
	Local int    `json:"local"`
	Error string `json:"error,omitempty"`
}

func (d *Dashboard) disconnectAPI(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeJSON(w, http.StatusForbidden, errorBody{"cross-site request refused"})
		return
	}
	// A JSON body cannot be sent cross-site without a CORS preflight,
	// which this server never grants.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, errorBody{"send application/json"})
		return
	}
	var req DisconnectRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || (req.ClientID == "") == (req.UserID == "") {
		writeJSON(w, http.StatusBadRequest, errorBody{`want {"clientId":ID} or {"userId":ID}`})
		return
	}
	var (
		n   int
		err error
	)
	if req.ClientID != "" {
		n, err = d.g.DisconnectClient(r.Context(), req.ClientID)
	} else {
		n, err = d.g.DisconnectUser(r.Context(), req.UserID)
	}
	d.log.Info("dashboard: disconnect", "client", req.ClientID, "user", req.UserID, "local", n, "remote", r.RemoteAddr, "err", err)
	res := DisconnectResult{Node: d.g.NodeID(), Local: n}
	status := http.StatusOK
	switch {
	case errors.Is(err, gateway.ErrGatewayClosed):
		status = http.StatusServiceUnavailable
	case err != nil:
		// The local connections are closed; the other nodes were not told.
		status = http.StatusBadGateway
	}
	if err != nil {
		res.Error = err.Error()
	}
	writeJSON(w, status, res)
}
