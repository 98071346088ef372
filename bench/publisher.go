package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// publisher sends bench messages to topics and numbers them per topic. It
// is used by one goroutine at a time.
type publisher struct {
	size   int
	last   map[string]uint64 // last real seq published per topic
	n      atomic.Int64      // real messages published
	markAt atomic.Int64      // unix nanos; 0: not measuring
	nMark  atomic.Int64      // real messages sent at or after markAt
	buf    []byte
	data   []byte

	ws         *wsConn // Publish "ws"
	centrifugo bool    // ws speaks the Centrifuge protocol
	readWG     sync.WaitGroup

	api    *http.Client // Publish "api"
	apiURL string
	apiKey string
}

// apiTimeout bounds one push-API publish.
const apiTimeout = 10 * time.Second

func newPublisher(ctx context.Context, o *Options) (*publisher, error) {
	p := &publisher{size: o.Size, last: map[string]uint64{}}
	if o.Publish == "api" {
		u, err := url.Parse(o.PubURL)
		if err != nil {
			return nil, err
		}
		u.Scheme, u.Path, u.RawQuery = "http", "/api/publish", ""
		p.apiURL, p.apiKey = u.String(), o.APIKey
		p.api = &http.Client{Timeout: apiTimeout}
		return p, nil
	}
	c, err := dialWS(ctx, o.PubURL, nil)
	if err != nil {
		return nil, fmt.Errorf("bench: publisher: %w", err)
	}
	p.ws, p.centrifugo = c, o.Protocol == ProtocolCentrifugo
	if p.centrifugo {
		if err := c.writeText(centrifugoSubscribe(nil)); err != nil { // connect
			c.close()
			return nil, fmt.Errorf("bench: publisher: %w", err)
		}
	}
	p.readWG.Add(1)
	go func() { // answers pings; nothing else is needed
		defer p.readWG.Done()
		for {
			m, err := c.readMessage()
			if err != nil {
				return
			}
			if p.centrifugo && centrifugoFrame(c, m, nil) != nil {
				return
			}
		}
	}()
	return p, nil
}

// probe publishes the seq-0 probe to topic.
func (p *publisher) probe(topic string) error { return p.send(topic, 0, nowNanos()) }

// next publishes the next real message of topic.
func (p *publisher) next(topic string) error {
	seq := p.last[topic] + 1
	sent := nowNanos()
	if err := p.send(topic, seq, sent); err != nil {
		return err
	}
	p.last[topic] = seq
	p.n.Add(1)
	if m := p.markAt.Load(); m != 0 && sent >= m {
		p.nMark.Add(1)
	}
	return nil
}

func (p *publisher) send(topic string, seq uint64, sent int64) error {
	p.data = appendPayload(p.data[:0], topic, seq, sent, p.size)
	if p.ws != nil {
		if p.centrifugo {
			p.buf = appendCentrifugoPublish(p.buf[:0], topic, p.data)
		} else {
			p.buf = appendPublish(p.buf[:0], topic, p.data)
		}
		return p.ws.writeText(p.buf)
	}
	p.buf = append(append(append(p.buf[:0], `{"topic":"`...), topic...), `","data":`...)
	p.buf = append(append(p.buf, p.data...), '}')
	req, err := http.NewRequest(http.MethodPost, p.apiURL, bytes.NewReader(p.buf))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if p.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+p.apiKey)
	}
	resp, err := p.api.Do(req)
	if err != nil {
		return fmt.Errorf("bench: push API: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: push API: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

// cork and uncork bracket a burst: on a websocket its frames go out with
// one write; the push API has no batch, so there they go one by one.
func (p *publisher) cork() {
	if p.ws != nil {
		p.ws.cork()
	}
}

func (p *publisher) uncork() error {
	if p.ws != nil {
		return p.ws.uncork()
	}
	return nil
}

// mark starts the measured interval at at (unix nanos).
func (p *publisher) mark(at int64) { p.markAt.Store(at) }

// measured is the number of real messages sent in the measured interval.
func (p *publisher) measured() int64 { return p.nMark.Load() }

// lastSeqs returns a copy of the last seq per topic.
func (p *publisher) lastSeqs() map[string]uint64 {
	m := make(map[string]uint64, len(p.last))
	for k, v := range p.last {
		m[k] = v
	}
	return m
}

func (p *publisher) close() {
	if p.ws != nil {
		p.ws.close()
		p.readWG.Wait()
	}
	if p.api != nil {
		p.api.CloseIdleConnections()
	}
}
