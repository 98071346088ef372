package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/firetower-go/firetower/protocol"
)

// Websocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

const (
	// handshakeTimeout bounds the dial and the HTTP upgrade of one client.
	handshakeTimeout = 10 * time.Second
	// writeTimeout bounds one client write; the server reads promptly.
	writeTimeout = 10 * time.Second
	// readBufferSize is each client's read buffer: large enough to take a
	// writer's batch of small frames in one read system call, small enough
	// for tens of thousands of idle clients.
	readBufferSize = 2048
	// maxFrameSize bounds a received message; the bench sends small ones.
	maxFrameSize = 1 << 20
)

var errFrameTooLarge = errors.New("bench: frame too large")

// wsConn is a minimal RFC 6455 client connection: text frames out (masked),
// frames in through a small buffered reader. Reads happen on one goroutine
// (the owner of the connection); writes are serialised by mu, because the
// reader answers pings while the owner may publish.
type wsConn struct {
	c   net.Conn
	br  *bufio.Reader
	buf []byte // payload of the last frame read, reused

	mu     sync.Mutex // guards wbuf, corked and writes to c
	wbuf   []byte
	corked bool // frames accumulate in wbuf until uncork
}

// cork holds the data frames written from now on; uncork sends them all
// with one write (a burst the server reads at once).
func (w *wsConn) cork() {
	w.mu.Lock()
	w.corked, w.wbuf = true, w.wbuf[:0]
	w.mu.Unlock()
}

func (w *wsConn) uncork() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.corked = false
	if len(w.wbuf) == 0 {
		return nil
	}
	_ = w.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := w.c.Write(w.wbuf)
	w.wbuf = w.wbuf[:0]
	return err
}

// dialWS opens a websocket to rawURL (ws://host:port/path) with no
// subprotocol (firetower v1). A non-nil local sets the source address.
func dialWS(ctx context.Context, rawURL string, local *net.TCPAddr) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("bench: only ws:// URLs are supported, not %q", rawURL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	d := net.Dialer{Timeout: handshakeTimeout}
	if local != nil {
		d.LocalAddr = local
	}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	ws, err := handshake(c, u)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return ws, nil
}

func handshake(c net.Conn, u *url.URL) (*wsConn, error) {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	path := u.RequestURI()
	req := "GET " + path + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(c, readBufferSize)
	status, err := br.ReadSlice('\n')
	if err != nil {
		return nil, fmt.Errorf("bench: handshake: %w", err)
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 101")) {
		return nil, fmt.Errorf("bench: handshake: %s", strings.TrimSpace(string(status)))
	}
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	want := base64.StdEncoding.EncodeToString(h[:])
	accepted := false
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, fmt.Errorf("bench: handshake headers: %w", err)
		}
		s := strings.TrimSpace(string(line))
		if s == "" {
			break
		}
		if name, val, ok := strings.Cut(s, ":"); ok && strings.EqualFold(name, "Sec-WebSocket-Accept") {
			accepted = strings.TrimSpace(val) == want
		}
	}
	if !accepted {
		return nil, errors.New("bench: handshake: missing or wrong Sec-WebSocket-Accept")
	}
	_ = c.SetDeadline(time.Time{})
	return &wsConn{c: c, br: br}, nil
}

// writeFrame sends one masked frame with a FIN bit.
func (w *wsConn) writeFrame(op byte, payload []byte) error {
	return w.writeFrameTimeout(op, payload, writeTimeout)
}

func (w *wsConn) writeFrameTimeout(op byte, payload []byte, timeout time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	corked := w.corked && op == opText
	b := w.wbuf[:0]
	if corked {
		b = w.wbuf
	}
	b = append(b, 0x80|op)
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	mask := mrand.Uint32()
	b = binary.BigEndian.AppendUint32(b, mask)
	start := len(b)
	b = append(b, payload...)
	var key [4]byte
	binary.BigEndian.PutUint32(key[:], mask)
	protocol.MaskBytes(key, b[start:])
	if corked {
		w.wbuf = b
		return nil
	}
	if cap(b) <= 4096 {
		w.wbuf = b
	}
	_ = w.c.SetWriteDeadline(time.Now().Add(timeout))
	_, err := w.c.Write(b)
	return err
}

func (w *wsConn) writeText(p []byte) error { return w.writeFrame(opText, p) }

// readMessage returns the next data message (text or binary, fragments
// assembled). Pings are answered and pongs skipped; a close frame returns
// io.EOF. The returned slice is valid until the next call.
func (w *wsConn) readMessage() ([]byte, error) {
	w.buf = w.buf[:0]
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(w.br, hdr[:]); err != nil {
			return nil, err
		}
		fin, op := hdr[0]&0x80 != 0, hdr[0]&0x0F
		if hdr[1]&0x80 != 0 {
			return nil, errors.New("bench: masked server frame")
		}
		n := uint64(hdr[1] & 0x7F)
		switch n {
		case 126:
			var ext [2]byte
			if _, err := io.ReadFull(w.br, ext[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(ext[:]))
		case 127:
			var ext [8]byte
			if _, err := io.ReadFull(w.br, ext[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(ext[:])
		}
		if n > maxFrameSize || uint64(len(w.buf))+n > maxFrameSize {
			return nil, errFrameTooLarge
		}
		if op >= opClose { // control frame: never fragmented, at most 125 bytes
			var ctl [125]byte
			if n > 125 {
				return nil, errors.New("bench: control frame too long")
			}
			p := ctl[:n]
			if _, err := io.ReadFull(w.br, p); err != nil {
				return nil, err
			}
			switch op {
			case opPing:
				if err := w.writeFrame(opPong, p); err != nil {
					return nil, err
				}
			case opClose:
				_ = w.writeFrame(opClose, p[:min(len(p), 2)])
				return nil, io.EOF
			}
			continue
		}
		start := len(w.buf)
		w.buf = grow(w.buf, int(n))
		if _, err := io.ReadFull(w.br, w.buf[start:]); err != nil {
			return nil, err
		}
		if fin && (op == opText || op == opBinary || op == opContinuation) {
			return w.buf, nil
		}
	}
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 1<<bits.Len(uint(len(b)+n)))
	copy(nb, b)
	return nb
}

// close sends a close frame (best effort) and closes the socket.
func (w *wsConn) close() {
	_ = w.writeFrameTimeout(opClose, []byte{0x03, 0xE8}, time.Second) // 1000
	_ = w.c.Close()
}
