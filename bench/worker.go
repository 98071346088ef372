package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A worker holds a slice of the client connections, in its own process
// ("firetower bench --worker") or in the coordinator's. It reads commands
// as JSON lines on its input (the first line is its workerConfig) and
// writes events as JSON lines on its output. The end of its input stops it.

// workerConfig is the first line a worker reads.
type workerConfig struct {
	Index          int           `json:"index"`
	URL            string        `json:"url"`
	Scenario       string        `json:"scenario"`
	First          int           `json:"first"` // global index of the first connection
	Count          int           `json:"count"`
	Groups         int           `json:"groups"`
	LocalAddr      string        `json:"local_addr,omitempty"`
	Size           int           `json:"size"`
	ConnectTimeout time.Duration `json:"connect_timeout"`
	Protocol       string        `json:"protocol"`
	Window         bool          `json:"window"`   // report completion of the shared topic
	Separate       bool          `json:"separate"` // own process: report own CPU
}

// command is what the coordinator sends after the config.
type command struct {
	Cmd     string            `json:"cmd"`            // "mark" or "drain"
	At      int64             `json:"at,omitempty"`   // mark: start of the measured interval, unix nanos
	Last    map[string]uint64 `json:"last,omitempty"` // drain: last seq published per topic
	Timeout time.Duration     `json:"timeout,omitempty"`
}

// event is what a worker writes.
type event struct {
	Ev       string       `json:"ev"` // connected, marked, complete, synced, stat, final
	OK       int          `json:"ok,omitempty"`
	Failed   int          `json:"failed,omitempty"`
	Err      string       `json:"err,omitempty"`
	Complete uint64       `json:"complete,omitempty"`
	Synced   int64        `json:"synced,omitempty"`
	Stats    *workerStats `json:"stats,omitempty"`
}

// workerStats are a worker's figures; Deliveries and Latency count the
// messages sent from the mark on, the other counters the whole run.
type workerStats struct {
	Deliveries      int64        `json:"deliveries"`
	Total           int64        `json:"total"` // deliveries since the start
	Lost            int64        `json:"lost"`
	LostTail        int64        `json:"lost_tail"`
	Duplicates      int64        `json:"duplicates"`
	Wrong           int64        `json:"wrong"`
	Other           int64        `json:"other"`
	Dropped         int64        `json:"dropped"` // connections the server closed
	Connects        int64        `json:"connects"`
	ConnectFailures int64        `json:"connect_failures"`
	CPUSeconds      float64      `json:"cpu_seconds"`
	Latency         HistSnapshot `json:"latency"`
	Errors          []string     `json:"errors,omitempty"`
}

const (
	// connectParallelism is how many handshakes a worker runs at once:
	// enough to keep the server's accept loop busy without overflowing
	// its listen backlog.
	connectParallelism = 64
	// statInterval is how often a worker reports its figures.
	statInterval = time.Second
	// windowRing bounds how far the fastest subscriber may run ahead of
	// the slowest one in window mode; the window must stay well below it.
	windowRing = 1 << 12
	// churnReadTimeout bounds the wait for the one message of a churn cycle.
	churnReadTimeout = 5 * time.Second
	// maxErrors is how many distinct error texts a worker keeps.
	maxErrors = 10
)

type worker struct {
	cfg   workerConfig
	ctx   context.Context
	c     Counters
	conns []*wsConn
	vs    []*verifier
	wg    sync.WaitGroup // the connections' readers and the churn loops

	closing  atomic.Bool
	dropped  atomic.Int64
	connects atomic.Int64
	connFail atomic.Int64

	// window mode: done[s%windowRing] counts the connections that have seq s.
	done     [windowRing]atomic.Int32
	complete atomic.Uint64
	live     atomic.Int32  // connections made
	notify   chan struct{} // wakes the event writer; capacity 1

	errMu  sync.Mutex
	errs   []string
	outMu  sync.Mutex // serialises event lines
	out    *bufio.Writer
	outErr error
}

// runWorker runs a worker reading in and writing out until in ends or the
// drain command completes.
func runWorker(in io.Reader, out io.Writer) error {
	br := bufio.NewReader(in)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("bench worker: reading config: %w", err)
	}
	var cfg workerConfig
	if err := json.Unmarshal(line, &cfg); err != nil {
		return fmt.Errorf("bench worker: config: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &worker{cfg: cfg, ctx: ctx, notify: make(chan struct{}, 1), out: bufio.NewWriter(out)}
	cmds := make(chan command)
	var bg sync.WaitGroup
	bg.Add(1)
	go func() { // reads commands; the end of the input stops the worker
		defer bg.Done()
		defer cancel()
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				return
			}
			var c command
			if json.Unmarshal(line, &c) == nil {
				select {
				case cmds <- c:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	bg.Add(1)
	go func() { defer bg.Done(); w.writeEvents(ctx) }()

	if cfg.Scenario == "churn" {
		w.emit(event{Ev: "connected", OK: cfg.Count})
		for i := range cfg.Count {
			w.wg.Add(1)
			go func() { defer w.wg.Done(); w.churnLoop(cfg.First + i) }()
		}
	} else {
		ok, failed, first := w.connectAll()
		w.live.Store(int32(ok))
		w.emit(event{Ev: "connected", OK: ok, Failed: failed, Err: first})
	}

	var final *workerStats
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case c := <-cmds:
			switch c.Cmd {
			case "mark":
				w.c.markAt.Store(c.At)
				w.emit(event{Ev: "marked"})
			case "drain":
				final = w.drain(c)
				break loop
			}
		}
	}
	w.shutdown()
	if final != nil {
		final.Dropped = w.dropped.Load()
		final.Connects, final.ConnectFailures = w.connects.Load(), w.connFail.Load()
		w.emit(event{Ev: "final", Stats: final})
	}
	cancel()
	bg.Wait()
	w.outMu.Lock()
	defer w.outMu.Unlock()
	if err := w.out.Flush(); err != nil {
		return err
	}
	return w.outErr
}

func (w *worker) addError(err error) {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	s := err.Error()
	for _, e := range w.errs {
		if e == s {
			return
		}
	}
	if len(w.errs) < maxErrors {
		w.errs = append(w.errs, s)
	}
}

func (w *worker) errors() []string {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return append([]string(nil), w.errs...)
}

func (w *worker) localAddr() *net.TCPAddr {
	if w.cfg.LocalAddr == "" {
		return nil
	}
	return &net.TCPAddr{IP: net.ParseIP(w.cfg.LocalAddr)}
}

// topicsOf returns the topics of global connection i, the one checked by
// the window first.
func topicsOf(scenario string, i, groups int) []string {
	switch scenario {
	case "fanout", "rate":
		return []string{fanoutTopic}
	case "topics":
		return []string{groupTopic(i % groups), connTopic(i)}
	case "churn":
		return []string{"/b/churn" + strconv.Itoa(i)}
	default:
		return []string{connTopic(i)}
	}
}

const fanoutTopic = "/b/fan"

func connTopic(i int) string  { return "/b/c" + strconv.Itoa(i) }
func groupTopic(g int) string { return "/b/g" + strconv.Itoa(g) }

func joinTopics(ts []string) string {
	s := ts[0]
	for _, t := range ts[1:] {
		s += "," + t
	}
	return s
}

// connectAll dials and subscribes the worker's connections and starts
// their readers.
func (w *worker) connectAll() (ok, failed int, firstErr string) {
	n := w.cfg.Count
	w.conns = make([]*wsConn, n)
	w.vs = make([]*verifier, n)
	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.ConnectTimeout)
	defer cancel()
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	local := w.localAddr()
	for range min(connectParallelism, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				err := w.connectOne(ctx, i, local)
				mu.Lock()
				if err != nil {
					failed++
					if firstErr == "" {
						firstErr = fmt.Sprintf("connection %d: %v", w.cfg.First+i, err)
					}
				} else {
					ok++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if missing := n - ok - failed; missing > 0 {
		failed += missing
		if firstErr == "" {
			firstErr = fmt.Sprintf("%d connections not made within %v", missing, w.cfg.ConnectTimeout)
		}
	}
	return ok, failed, firstErr
}

func (w *worker) connectOne(ctx context.Context, i int, local *net.TCPAddr) error {
	topics := topicsOf(w.cfg.Scenario, w.cfg.First+i, w.cfg.Groups)
	c, err := dialWS(ctx, w.cfg.URL, local)
	if err != nil {
		return err
	}
	sub := subscribeFrame(joinTopics(topics))
	if w.cfg.Protocol == ProtocolCentrifugo {
		sub = centrifugoSubscribe(topics)
	}
	if err := c.writeText(sub); err != nil {
		_ = c.c.Close()
		return err
	}
	v := &verifier{c: &w.c, topics: make([]topicSeq, len(topics))}
	for j, t := range topics {
		v.topics[j].name = t
	}
	if w.cfg.Window {
		v.onSeq = w.onSeq
	}
	w.conns[i], w.vs[i] = c, v
	w.wg.Add(1)
	go w.read(c, v)
	return nil
}

// read is the reader goroutine of one connection.
func (w *worker) read(c *wsConn, v *verifier) {
	defer w.wg.Done()
	wasSynced := false
	for {
		m, err := c.readMessage()
		if err != nil {
			if !w.closing.Load() {
				w.dropped.Add(1)
				w.addError(fmt.Errorf("connection closed by the server: %w", err))
			}
			return
		}
		now := nowNanos()
		if w.cfg.Protocol == ProtocolCentrifugo {
			err = centrifugoFrame(c, m, func(data []byte) { v.receive(data, now) })
		} else {
			v.receive(m, now)
		}
		if err != nil {
			if !w.closing.Load() {
				w.dropped.Add(1)
				w.addError(fmt.Errorf("answering a ping: %w", err))
			}
			return
		}
		if v.synced && !wasSynced {
			wasSynced = true
			w.wake()
		}
	}
}

func (w *worker) wake() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// onSeq counts the sequence numbers from..to as received by one more
// connection; the last connection to receive one completes it.
func (w *worker) onSeq(from, to uint64) {
	n := w.live.Load()
	for s := from; s <= to; s++ {
		slot := &w.done[s%windowRing]
		if slot.Add(1) != n {
			continue
		}
		slot.Store(0)
		for {
			cur := w.complete.Load()
			if s <= cur || w.complete.CompareAndSwap(cur, s) {
				break
			}
		}
		w.wake()
	}
}

// writeEvents reports progress: completion and sync counts as they change,
// the figures every statInterval.
func (w *worker) writeEvents(ctx context.Context) {
	t := time.NewTicker(statInterval)
	defer t.Stop()
	var lastComplete uint64
	var lastSynced int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.notify:
		case <-t.C:
			w.emit(event{Ev: "stat", Stats: w.stats()})
		}
		if c := w.complete.Load(); c != lastComplete {
			lastComplete = c
			w.emit(event{Ev: "complete", Complete: c})
		}
		if s := w.c.Synced.Load(); s != lastSynced {
			lastSynced = s
			w.emit(event{Ev: "synced", Synced: s})
		}
	}
}

func (w *worker) emit(e event) {
	b, err := json.Marshal(e)
	if err != nil {
		panic(err) // every field is marshalable
	}
	w.outMu.Lock()
	defer w.outMu.Unlock()
	if w.outErr != nil {
		return
	}
	_, _ = w.out.Write(append(b, '\n'))
	w.outErr = w.out.Flush()
}

func (w *worker) stats() *workerStats {
	s := &workerStats{
		Deliveries: w.c.Measured.Load(),
		Total:      w.c.Deliveries.Load(),
		Lost:       w.c.Lost.Load(),
		Duplicates: w.c.Duplicates.Load(),
		Wrong:      w.c.Wrong.Load(),
		Other:      w.c.Other.Load(),
		Dropped:    w.dropped.Load(),
		Connects:   w.connects.Load(),
		Latency:    w.c.Latency.Snapshot(),
		Errors:     w.errors(),
	}
	s.ConnectFailures = w.connFail.Load()
	if w.cfg.Separate {
		s.CPUSeconds = processCPU()
	}
	return s
}

// drain waits until every connection has the last message of each of its
// topics or c.Timeout passes, then counts what is missing as lost.
func (w *worker) drain(c command) *workerStats {
	w.closing.Store(true) // churn loops stop; server closes are no longer errors
	deadline := time.Now().Add(c.Timeout)
	var missing int64
	for {
		missing = 0
		for _, v := range w.vs {
			if v != nil {
				missing += v.missing(c.Last)
			}
		}
		if missing == 0 || !time.Now().Before(deadline) || w.ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-w.ctx.Done():
		}
	}
	s := w.stats()
	s.LostTail = missing
	s.Lost += missing
	return s
}

// shutdown closes every connection and waits for the readers and loops.
func (w *worker) shutdown() {
	w.closing.Store(true)
	for _, c := range w.conns {
		if c != nil {
			c.close()
		}
	}
	w.wg.Wait()
}

// churnLoop connects, subscribes, publishes one message to itself,
// receives it and disconnects, until the worker stops.
func (w *worker) churnLoop(i int) {
	topic := topicsOf("churn", i, 1)[0]
	sub := subscribeFrame(topic)
	local := w.localAddr()
	var buf []byte
	for seq := uint64(1); !w.closing.Load() && w.ctx.Err() == nil; seq++ {
		start := nowNanos()
		err := w.churnOnce(topic, sub, seq, local, &buf)
		if w.closing.Load() || w.ctx.Err() != nil {
			return // a cycle cut short by the end is not a failure
		}
		if err != nil {
			w.connFail.Add(1)
			w.addError(err)
			continue
		}
		if m := w.c.markAt.Load(); m != 0 && start >= m {
			w.connects.Add(1) // cycles begun in the measured interval
		}
	}
}

func (w *worker) churnOnce(topic string, sub []byte, seq uint64, local *net.TCPAddr, buf *[]byte) error {
	c, err := dialWS(w.ctx, w.cfg.URL, local)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.writeText(sub); err != nil {
		return err
	}
	*buf = appendPublish((*buf)[:0], topic, appendPayload(nil, topic, seq, nowNanos(), w.cfg.Size))
	if err := c.writeText(*buf); err != nil {
		return err
	}
	_ = c.c.SetReadDeadline(time.Now().Add(churnReadTimeout))
	v := &verifier{c: &w.c, topics: []topicSeq{{name: topic}}}
	v.topics[0].last.Store(seq - 1)
	for {
		m, err := c.readMessage()
		if err != nil {
			return fmt.Errorf("churn: waiting for the message: %w", err)
		}
		before := w.c.Deliveries.Load()
		v.receive(m, nowNanos())
		if v.topics[0].last.Load() == seq {
			return nil
		}
		if w.c.Deliveries.Load() != before {
			return errors.New("churn: unexpected message")
		}
	}
}

// processCPU is this process's user + system CPU time in seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
