package pushapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Route is one endpoint of the HTTP API; docs/openapi.yaml describes each.
type Route struct {
	Method string
	Path   string
}

// route is an endpoint and the function that serves it: it returns the
// response body (encoded as JSON with status 200) or an error.
type route struct {
	Route
	serve func(s *Service, w http.ResponseWriter, r *http.Request) (any, error)
}

// PublishRequest is the body of POST /api/publish.
type PublishRequest struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// BroadcastRequest is the body of POST /api/broadcast.
type BroadcastRequest struct {
	Topics []string        `json:"topics"`
	Data   json.RawMessage `json:"data"`
}

// BroadcastResponse is the answer to POST /api/broadcast.
type BroadcastResponse struct {
	Messages []Published `json:"messages"`
}

// PushClientRequest is the body of POST /api/push/client.
type PushClientRequest struct {
	ClientID string          `json:"clientId"`
	Data     json.RawMessage `json:"data"`
}

// PushUserRequest is the body of POST /api/push/user.
type PushUserRequest struct {
	UserID string          `json:"userId"`
	Data   json.RawMessage `json:"data"`
}

// ClientRequest is the body of POST /api/disconnect/client.
type ClientRequest struct {
	ClientID string `json:"clientId"`
}

// UserRequest is the body of POST /api/disconnect/user.
type UserRequest struct {
	UserID string `json:"userId"`
}

// RemoveUserRequest is the body of POST /api/remove-user.
type RemoveUserRequest struct {
	UserID string `json:"userId"`
	Topic  string `json:"topic"`
}

// TopicRequest is the body of POST /api/close-topic.
type TopicRequest struct {
	Topic string `json:"topic"`
}

// DrainRequest is the optional body of POST /api/drain.
type DrainRequest struct {
	// Window is a Go duration ("2s", "500ms"); empty for the default.
	Window string `json:"window"`
}

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error *Error `json:"error"`
}

var routes = []route{
	{Route{http.MethodPost, "/api/publish"}, func(s *Service, w http.ResponseWriter, r *http.Request) (any, error) {
		var req PublishRequest
		if err := s.decode(w, r, &req); err != nil {
			return nil, err
		}
		return s.Publish(r.Context(), req.Topic, req.Data)
	}},
	{Route{http.MethodPost, "/api/broadcast"}, func(s *Service, w http.ResponseWriter, r *http.Request) (any, error) {
		var req BroadcastRequest
		if err := s.decode(w, r, &req); err != nil {
			return nil, err
		}
		if len(req.Topics) == 0 {
			return nil, errorf(CodeBadRequest, "topics is required")
		}
		msgs, err := s.Broadcast(r.Context(), req.Topics, req.Data)
		return BroadcastResponse{Messages: msgs}, err
	}},
	{Route{http.MethodPost, "/api/push/client"}, func(s *Service, w http.ResponseWriter, r *http.Request) (any, error) {
		var req PushClientRequest
		if err := s.decode(w, r, &req); err != nil {
			return nil, err
		}
		return s.PushClient(r.Context(), req.ClientID, req.Data)
	}},
	{Route{http.MethodPost, "/api/push/user"}, func(s *Service, w http.ResponseWriter, r *http.Request) (any, error) {
		var req PushUserRequest
		if err := s.decode(w, r, &req); err != nil {
			return nil, err
		}
		return s.PushUser(r.Context(), req.UserID, req.Data)
	}},
	{Route{http.MethodPost, "/api/disconnect/client"}, func(s *Service, w http.ResponseWriter, r *http.Request) (any, error) {
		var req ClientRequest
		if err := s.decode(w, r, &req); err != nil {
			return nil, err
		}
		return s.DisconnectClient(r.Context(), req.ClientID)
	}},
	{Route{http.MethodPost, "/api/disconnect/user"}, func(s *Service, w http.ResponseWriter, r *http.Request) (any, error) {
		var req UserRequest
		if err := s.decode(w, r, &req); err != nil {
			return nil, err
		}
		return s.DisconnectUser(r.Context(), req.UserID)
	}},
	{Route{http.MethodPost, "/api/remove-user"}, func(s *Service, w http.ResponseWriter, r *http.Request) (any, error) {
		var req RemoveUserRequest
		if err := s.decode(w, r, &req); err != nil {
			return nil, err
		}
		return s.RemoveUserFromTopic(r.Context(), req.UserID, req.Topic)
	}},
	{Route{http.MethodPost, "/api/close-topic"}, func(s *Service, w http.ResponseWriter, r *http.Request) (any, error) {
		var req TopicRequest
		if err := s.decode(w, r, &req); err != nil {
			return nil, err
		}
		return s.CloseTopic(r.Context(), req.Topic)
	}},
	{Route{http.MethodGet, "/api/count"}, func(s *Service, _ http.ResponseWriter, r *http.Request) (any, error) {
		return s.Count(r.Context(), r.URL.Query().Get("topic"))
	}},
	{Route{http.MethodGet, "/api/topics"}, func(s *Service, _ http.ResponseWriter, r *http.Request) (any, error) {
		q := r.URL.Query()
		limit := 0
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, errorf(CodeBadRequest, "limit %q is not a number", v)
			}
			if n == 0 {
				return nil, errorf(CodeBadRequest, "limit 0 out of range 1..%d", MaxPageSize)
			}
			limit = n
		}
		return s.Topics(r.Context(), q.Get("cursor"), limit)
	}},
	{Route{http.MethodGet, "/api/info"}, func(s *Service, _ http.ResponseWriter, _ *http.Request) (any, error) {
		return s.Info(), nil
	}},
	{Route{http.MethodPost, "/api/drain"}, func(s *Service, w http.ResponseWriter, r *http.Request) (any, error) {
		var req DrainRequest
		if r.ContentLength != 0 { // the body is optional
			if err := s.decode(w, r, &req); err != nil {
				return nil, err
			}
		}
		var window time.Duration
		if req.Window != "" {
			var err error
			if window, err = time.ParseDuration(req.Window); err != nil {
				return nil, errorf(CodeBadRequest, "window %q is not a duration such as \"2s\"", req.Window)
			}
			// "0s" names a window, so it is refused rather than taken
			// for the default.
			if err := CheckDrainWindow(window); err != nil {
				return nil, err
			}
		}
		return s.Drain(r.Context(), window)
	}},
	{Route{http.MethodGet, "/api/nodes"}, func(s *Service, _ http.ResponseWriter, _ *http.Request) (any, error) {
		return s.Nodes(), nil
	}},
}

// Routes lists the endpoints of the HTTP API.
func Routes() []Route {
	out := make([]Route, len(routes))
	for i, rt := range routes {
		out[i] = rt.Route
	}
	return out
}

// Handler returns the HTTP API, behind auth. Its paths begin with /api/:
// mount it on a mux with mux.Handle("/api/", h). Every response is JSON;
// errors are {"error":{"code":CODE,"message":TEXT}} with the status of the
// code.
func (s *Service) Handler(auth Auth) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.HandleFunc(rt.Path, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != rt.Method && (rt.Method != http.MethodGet || r.Method != http.MethodHead) {
				w.Header().Set("Allow", rt.Method)
				writeError(w, errorf(CodeMethodNotAllowed, "%s needs %s, not %s", rt.Path, rt.Method, r.Method))
				return
			}
			res, err := rt.serve(s, w, r)
			if err != nil {
				e := ErrorOf(err)
				if e.Code == CodeInternal {
					s.cfg.Logger.Error("push API error", "path", rt.Path, "err", err)
				}
				writeError(w, e)
				return
			}
			writeJSON(w, http.StatusOK, res)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(CodeNotFound, "no API endpoint %s", r.URL.Path))
	})
	return auth.Wrap(mux)
}

// decode reads a JSON request body into v: application/json, at most
// MaxBodyBytes, one object without unknown fields.
func (s *Service) decode(w http.ResponseWriter, r *http.Request, v any) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return errorf(CodeUnsupportedMediaType, "send the body as Content-Type: application/json")
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// One value only: what follows it must be white space.
		var extra json.RawMessage
		if err = dec.Decode(&extra); err == io.EOF {
			return nil
		} else if err == nil {
			err = errors.New("more than one JSON value in the body")
		}
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errorf(CodeTooLarge, "request body over %d bytes", tooBig.Limit)
	}
	if err == io.EOF {
		return errorf(CodeBadRequest, "empty body: a JSON object is expected")
	}
	return &Error{Code: CodeBadRequest, Message: "bad JSON body: " + strings.TrimPrefix(err.Error(), "json: "), err: err}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorBody{Error: errorf(CodeInternal, "encoding the response: %v", err)})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Code.HTTPStatus(), ErrorBody{Error: e})
}
