// Package client is a Go client of the HTTP push API (package pushapi) and
// the command line behind `firetower publish`, `firetower count` and the
// other API commands (Run).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/pushapi"
)

// DefaultTimeout bounds one call when the Client has no HTTP client of its
// own.
const DefaultTimeout = 30 * time.Second

// maxResponse bounds the body of a response the client reads.
const maxResponse = 16 << 20

// Client calls the HTTP push API of one firetower node.
type Client struct {
	// Server is the node's base URL, "http://127.0.0.1:9999" (the API's
	// paths begin with /api/).
	Server string
	// APIKey is sent as "Authorization: Bearer KEY" when not empty.
	APIKey string
	// HTTP is the HTTP client (default: one with DefaultTimeout).
	HTTP *http.Client
}

// Error is an error response of the API.
type Error struct {
	Status  int          // HTTP status
	Code    pushapi.Code // "invalid_topic", ...
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// Publish sends data (one JSON value) to topic.
func (c *Client) Publish(ctx context.Context, topic string, data json.RawMessage) (pushapi.Published, error) {
	var out pushapi.Published
	err := c.do(ctx, http.MethodPost, "/api/publish", nil, pushapi.PublishRequest{Topic: topic, Data: data}, &out)
	return out, err
}

// Broadcast sends data to each of topics.
func (c *Client) Broadcast(ctx context.Context, topics []string, data json.RawMessage) ([]pushapi.Published, error) {
	var out pushapi.BroadcastResponse
	err := c.do(ctx, http.MethodPost, "/api/broadcast", nil, pushapi.BroadcastRequest{Topics: topics, Data: data}, &out)
	return out.Messages, err
}

// PushClient sends data to the connections with client id clientID.
func (c *Client) PushClient(ctx context.Context, clientID string, data json.RawMessage) (pushapi.Affected, error) {
	var out pushapi.Affected
	err := c.do(ctx, http.MethodPost, "/api/push/client", nil, pushapi.PushClientRequest{ClientID: clientID, Data: data}, &out)
	return out, err
}

// PushUser sends data to the connections of user userID.
func (c *Client) PushUser(ctx context.Context, userID string, data json.RawMessage) (pushapi.Affected, error) {
	var out pushapi.Affected
	err := c.do(ctx, http.MethodPost, "/api/push/user", nil, pushapi.PushUserRequest{UserID: userID, Data: data}, &out)
	return out, err
}

// DisconnectClient closes the connections with client id clientID.
func (c *Client) DisconnectClient(ctx context.Context, clientID string) (pushapi.Affected, error) {
	var out pushapi.Affected
	err := c.do(ctx, http.MethodPost, "/api/disconnect/client", nil, pushapi.ClientRequest{ClientID: clientID}, &out)
	return out, err
}

// DisconnectUser closes the connections of user userID.
func (c *Client) DisconnectUser(ctx context.Context, userID string) (pushapi.Affected, error) {
	var out pushapi.Affected
	err := c.do(ctx, http.MethodPost, "/api/disconnect/user", nil, pushapi.UserRequest{UserID: userID}, &out)
	return out, err
}

// RemoveUserFromTopic unsubscribes the connections of user userID from
// topic.
func (c *Client) RemoveUserFromTopic(ctx context.Context, userID, topic string) (pushapi.Affected, error) {
	var out pushapi.Affected
	err := c.do(ctx, http.MethodPost, "/api/remove-user", nil, pushapi.RemoveUserRequest{UserID: userID, Topic: topic}, &out)
	return out, err
}

// CloseTopic unsubscribes every subscriber of topic.
func (c *Client) CloseTopic(ctx context.Context, topic string) (pushapi.Affected, error) {
	var out pushapi.Affected
	err := c.do(ctx, http.MethodPost, "/api/close-topic", nil, pushapi.TopicRequest{Topic: topic}, &out)
	return out, err
}

// Count returns the number of subscribers of topic.
func (c *Client) Count(ctx context.Context, topic string) (pushapi.TopicCount, error) {
	var out pushapi.TopicCount
	err := c.do(ctx, http.MethodGet, "/api/count", url.Values{"topic": {topic}}, nil, &out)
	return out, err
}

// Topics returns one page of the node's topics (limit 0: the server's
// default).
func (c *Client) Topics(ctx context.Context, cursor string, limit int) (pushapi.TopicPage, error) {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out pushapi.TopicPage
	err := c.do(ctx, http.MethodGet, "/api/topics", q, nil, &out)
	return out, err
}

// Info describes the node.
func (c *Client) Info(ctx context.Context) (gateway.NodeInfo, error) {
	var out gateway.NodeInfo
	err := c.do(ctx, http.MethodGet, "/api/info", nil, nil, &out)
	return out, err
}

// Nodes describes the cluster.
func (c *Client) Nodes(ctx context.Context) (pushapi.Cluster, error) {
	var out pushapi.Cluster
	err := c.do(ctx, http.MethodGet, "/api/nodes", nil, nil, &out)
	return out, err
}

// Drain puts the node in drain (POST /api/drain): new websocket upgrades
// get 503, its clients are closed with 1001 spread over window (0: the
// server's --drain-window) and reconnect to other nodes. It cannot be
// undone. It returns the node, "draining": true.
func (c *Client) Drain(ctx context.Context, window time.Duration) (gateway.NodeInfo, error) {
	var out gateway.NodeInfo
	var body any
	if window != 0 {
		body = pushapi.DrainRequest{Window: window.String()}
	}
	err := c.do(ctx, http.MethodPost, "/api/drain", nil, body, &out)
	return out, err
}

// do sends one request and decodes the answer into out, or returns an
// *Error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	u := strings.TrimRight(c.Server, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var eb struct {
			Error struct {
				Code    pushapi.Code `json:"code"`
				Message string       `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(b, &eb) != nil || eb.Error.Code == "" {
			return &Error{Status: resp.StatusCode, Code: "http", Message: strings.TrimSpace(string(b))}
		}
		return &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("client: bad response from %s: %w", path, err)
	}
	return nil
}

// IsCode reports whether err is an API error with code.
func IsCode(err error, code pushapi.Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
