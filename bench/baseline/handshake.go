package baseline

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// maxHandshakeBytes bounds the upgrade request (request line and headers).
const maxHandshakeBytes = 16 << 10

// websocketGUID is RFC 6455's constant for Sec-WebSocket-Accept.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

var errHandshake = errors.New("baseline: bad websocket handshake")

// handshake reads the upgrade request from nc and answers it with 101 (or
// an HTTP error). It returns the bytes the client sent after the request,
// which are already websocket frames.
func handshake(nc net.Conn) ([]byte, error) {
	nc.SetDeadline(time.Now().Add(handshakeWait))
	br := bufio.NewReaderSize(io.LimitReader(nc, maxHandshakeBytes), 4096)
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	status := http.StatusBadRequest
	key := req.Header.Get("Sec-WebSocket-Key")
	switch {
	case req.URL.Path != "/ws":
		status = http.StatusNotFound
	case req.Method != http.MethodGet:
		status = http.StatusMethodNotAllowed
	case !headerHasToken(req.Header, "Connection", "upgrade"),
		!headerHasToken(req.Header, "Upgrade", "websocket"),
		req.Header.Get("Sec-WebSocket-Version") != "13",
		!validKey(key):
	default:
		status = http.StatusSwitchingProtocols
	}
	if status != http.StatusSwitchingProtocols {
		io.WriteString(nc, "HTTP/1.1 "+statusLine(status)+"\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		return nil, errHandshake
	}
	h := sha1.Sum([]byte(key + websocketGUID))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(h[:]) + "\r\n\r\n"
	if _, err := io.WriteString(nc, resp); err != nil {
		return nil, err
	}
	rest, _ := br.Peek(br.Buffered())
	nc.SetDeadline(time.Time{})
	return append([]byte(nil), rest...), nil
}

func statusLine(status int) string {
	switch status {
	case http.StatusNotFound:
		return "404 Not Found"
	case http.StatusMethodNotAllowed:
		return "405 Method Not Allowed"
	}
	return "400 Bad Request"
}

// validKey reports whether k is a Sec-WebSocket-Key: 16 bytes in base64.
func validKey(k string) bool {
	b, err := base64.StdEncoding.DecodeString(k)
	return err == nil && len(b) == 16
}

// headerHasToken reports whether the comma-separated header name holds token
// (case-insensitive).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h[http.CanonicalHeaderKey(name)] {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
