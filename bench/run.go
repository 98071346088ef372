package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"time"
)

const (
	// connsPerProc is how many connections one worker process holds by
	// default, well below the 20,000 open files a process may have.
	connsPerProc = 10000
	// windowStallTimeout ends a window run whose slowest subscriber has not
	// moved for this long.
	windowStallTimeout = 10 * time.Second
	// finalSlack is added to the drain time for the workers' final reports
	// (they close their connections first).
	finalSlack = 30 * time.Second
	// markLead is how far ahead the measured interval's start is set, ample
	// for the workers to learn it through their pipes.
	markLead = 300 * time.Millisecond
	// maxLineSize bounds one event line from a worker.
	maxLineSize = 4 << 20
)

// workerConn is the coordinator's side of one worker.
type workerConn struct {
	idx       int
	proc      WorkerProc
	inMu      sync.Mutex
	connected chan event
	marked    chan struct{}
	final     chan *workerStats
	done      chan struct{} // the worker's output has ended

	mu       sync.Mutex
	ok       int
	stats    *workerStats
	complete uint64
	synced   int64
}

type coordinator struct {
	o       Options
	workers []*workerConn
	notify  chan struct{} // a worker's completion or sync count moved
	errMu   sync.Mutex
	errs    []string
}

// Run performs one bench run and returns its figures. A non-nil error means
// the run could not be made; failures found by the run are in the Result.
func Run(ctx context.Context, o Options) (*Result, error) {
	pubGiven := o.PubURL != ""
	o = o.withDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	c := &coordinator{o: o, notify: make(chan struct{}, 1)}
	if o.Spawn != "" {
		srv, err := spawnServer(ctx, &c.o)
		if err != nil {
			return nil, err
		}
		defer srv.stop()
		c.o.URL = srv.url
		if !pubGiven {
			c.o.PubURL = srv.url
		}
		if c.o.PID == 0 {
			c.o.PID = srv.pid
		}
	}
	return c.run(ctx)
}

func (c *coordinator) addError(format string, args ...any) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

func (c *coordinator) run(ctx context.Context) (*Result, error) {
	o := &c.o
	res := newResult(o)
	if o.PID > 0 {
		res.RSSBeforeBytes, _, _ = procStatus(o.PID)
	}
	if err := c.startWorkers(); err != nil {
		c.stopWorkers()
		return nil, err
	}
	defer c.stopWorkers()

	// Connect and subscribe.
	t := time.NewTimer(o.ConnectTimeout + finalSlack)
	defer t.Stop()
	for _, w := range c.workers {
		select {
		case e := <-w.connected:
			res.Conns += e.OK
			res.ConnectFailures += e.Failed
			if e.Err != "" {
				c.addError("worker %d: %d connections failed, first: %s", w.idx, e.Failed, e.Err)
			}
		case <-w.done:
			return nil, fmt.Errorf("bench: worker %d ended before connecting", w.idx)
		case <-t.C:
			return nil, fmt.Errorf("bench: worker %d did not connect within %v", w.idx, o.ConnectTimeout+finalSlack)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if res.Conns == 0 {
		return nil, fmt.Errorf("bench: no connection could be made: %s", c.errorsText())
	}
	stopProgress := c.progress(time.Now())
	defer stopProgress()

	var finals []*workerStats
	var err error
	switch o.Scenario {
	case ScenarioChurn:
		finals, err = c.runChurn(ctx, res)
	default:
		finals, err = c.runPublish(ctx, res)
	}
	stopProgress()
	if err != nil {
		return nil, err
	}
	c.stopWorkers()
	c.finish(res, finals)
	return res, nil
}

func (c *coordinator) errorsText() string {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if len(c.errs) == 0 {
		return "no error reported"
	}
	return c.errs[0]
}

func (c *coordinator) startWorkers() error {
	o := &c.o
	n := o.clients()
	procs := o.Procs
	start := o.StartWorker
	separate := false
	switch {
	case o.InProcess:
		procs, start = 1, startWorkerInProcess
	case procs == 0:
		procs = (n + connsPerProc - 1) / connsPerProc
	}
	procs = max(1, min(procs, n))
	if start == nil {
		exe, err := executable(o)
		if err != nil {
			return err
		}
		start, separate = startWorkerProcess(exe, o.Progress), true
	}
	first := 0
	for i := range procs {
		count := n / procs
		if i < n%procs {
			count++
		}
		proc, err := start(i)
		if err != nil {
			return fmt.Errorf("bench: starting worker %d: %w", i, err)
		}
		w := &workerConn{idx: i, proc: proc, connected: make(chan event, 1), marked: make(chan struct{}, 1),
			final: make(chan *workerStats, 1), done: make(chan struct{})}
		c.workers = append(c.workers, w)
		go c.readEvents(w)
		cfg := workerConfig{
			Index: i, URL: o.URL, Scenario: o.Scenario, First: first, Count: count,
			Groups: o.Groups, LocalAddr: sourceAddr(o.URL, i), Size: o.Size,
			ConnectTimeout: o.ConnectTimeout, Protocol: o.Protocol, Window: o.Scenario == ScenarioFanout,
			Separate: separate,
		}
		if err := w.send(cfg); err != nil {
			return fmt.Errorf("bench: configuring worker %d: %w", i, err)
		}
		first += count
	}
	return nil
}

func (w *workerConn) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.inMu.Lock()
	defer w.inMu.Unlock()
	_, err = w.proc.In.Write(append(b, '\n'))
	return err
}

// readEvents reads one worker's events until its output ends.
func (c *coordinator) readEvents(w *workerConn) {
	defer close(w.done)
	sc := bufio.NewScanner(w.proc.Out)
	sc.Buffer(make([]byte, 64<<10), maxLineSize)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			c.addError("worker %d: bad event line: %v", w.idx, err)
			continue
		}
		w.mu.Lock()
		switch e.Ev {
		case "connected":
			w.ok = e.OK
			w.connected <- e
		case "marked":
			w.marked <- struct{}{}
		case "complete":
			w.complete = e.Complete
		case "synced":
			w.synced = e.Synced
		case "stat":
			w.stats = e.Stats
		case "final":
			w.stats = e.Stats
			w.final <- e.Stats
		}
		w.mu.Unlock()
		if e.Ev == "complete" || e.Ev == "synced" {
			select {
			case c.notify <- struct{}{}:
			default:
			}
		}
	}
	_, _ = io.Copy(io.Discard, w.proc.Out)
}

// stopWorkers closes the workers' inputs and waits for them to end. It may
// be called more than once.
func (c *coordinator) stopWorkers() {
	for _, w := range c.workers {
		w.inMu.Lock()
		_ = w.proc.In.Close()
		w.inMu.Unlock()
	}
	for _, w := range c.workers {
		select {
		case <-w.done:
		case <-time.After(workerStopTimeout):
			c.addError("worker %d did not stop within %v; killed", w.idx, workerStopTimeout)
			w.proc.Kill()
			<-w.done
		}
		if w.proc.Wait != nil {
			if err := w.proc.Wait(); err != nil {
				c.addError("worker %d: %v", w.idx, err)
			}
			w.proc.Wait = nil
		}
	}
}

func (c *coordinator) broadcast(cmd command) {
	for _, w := range c.workers {
		if err := w.send(cmd); err != nil {
			c.addError("worker %d: %v", w.idx, err)
		}
	}
}

// minComplete is the highest seq every subscriber has.
func (c *coordinator) minComplete() uint64 {
	m := uint64(math.MaxUint64)
	for _, w := range c.workers {
		w.mu.Lock()
		if w.ok > 0 {
			m = min(m, w.complete)
		}
		w.mu.Unlock()
	}
	return m
}

func (c *coordinator) synced() int64 {
	var n int64
	for _, w := range c.workers {
		w.mu.Lock()
		n += w.synced
		w.mu.Unlock()
	}
	return n
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// syncSubscribers publishes probes to topics until every connection has
// received one: then every subscription is in place.
func (c *coordinator) syncSubscribers(ctx context.Context, pub *publisher, topics []string, want int64) error {
	round := 250*time.Millisecond + time.Duration(len(topics))*50*time.Microsecond
	deadline := time.Now().Add(c.o.ConnectTimeout)
	for {
		for _, t := range topics {
			if err := pub.probe(t); err != nil {
				return err
			}
		}
		roundEnd := time.Now().Add(round)
		for c.synced() < want {
			d := time.Until(roundEnd)
			if d <= 0 {
				break
			}
			select {
			case <-c.notify:
			case <-time.After(d):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if c.synced() >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: only %d of %d connections received a probe within %v", c.synced(), want, c.o.ConnectTimeout)
		}
	}
}

// measure is the server's figures at one instant.
type measure struct {
	at  time.Time
	cpu float64
}

// mark starts the measured interval: from now on, the messages sent are
// counted by the publisher and by the receivers, and the server's CPU
// time counts.
//
// The interval starts markLead from now, so that every worker knows the
// start before the first message of the interval reaches it.
func (c *coordinator) mark(pub *publisher) measure {
	start := time.Now().Add(markLead)
	at := start.UnixNano()
	if pub != nil {
		pub.mark(at)
	}
	c.broadcast(command{Cmd: "mark", At: at})
	t := time.NewTimer(finalSlack)
	defer t.Stop()
	for _, w := range c.workers {
		select {
		case <-w.marked:
		case <-w.done:
		case <-t.C:
		}
	}
	if late := time.Since(start); late > 0 {
		c.addError("the workers acknowledged the start of the measured interval %v late: counts may be off", late)
	}
	time.Sleep(time.Until(start))
	return c.sample()
}

func (c *coordinator) sample() measure {
	m := measure{at: time.Now()}
	if c.o.PID > 0 {
		m.cpu, _ = procCPU(c.o.PID)
	}
	return m
}

// serverState records the server's RSS, threads and open files in res.
func (c *coordinator) serverState(res *Result) {
	if c.o.PID <= 0 {
		return
	}
	rss, threads, err := procStatus(c.o.PID)
	if err != nil {
		c.addError("reading the server's /proc: %v", err)
		return
	}
	res.ServerRSSBytes, res.ServerThreads = rss, threads
	res.ServerFDs, _ = procFDs(c.o.PID)
}

func (c *coordinator) runPublish(ctx context.Context, res *Result) ([]*workerStats, error) {
	o := &c.o
	pub, err := newPublisher(ctx, o)
	if err != nil {
		return nil, err
	}
	defer pub.close()
	var probeTopics []string
	switch o.Scenario {
	case ScenarioFanout, ScenarioRate:
		probeTopics = []string{fanoutTopic}
	default:
		for i := range o.Conns {
			probeTopics = append(probeTopics, connTopic(i))
		}
	}
	if err := c.syncSubscribers(ctx, pub, probeTopics, int64(res.Conns)); err != nil {
		return nil, err
	}

	if o.Scenario == ScenarioIdle {
		if err := sleep(ctx, o.Settle); err != nil {
			return nil, err
		}
		c.serverState(res)
		m0 := c.mark(pub)
		for _, t := range probeTopics { // one message per connection checks them all
			if err := pub.next(t); err != nil {
				c.addError("publish: %v", err)
				break
			}
		}
		res.Published = pub.measured()
		finals := c.drain(pub.lastSeqs())
		c.measured(res, m0, c.sample())
		return finals, nil
	}

	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	pubDone := make(chan error, 1)
	go func() { pubDone <- c.publishLoop(pubCtx, pub) }()
	var pubErr error
	wait := func(d time.Duration) {
		if pubErr != nil {
			return
		}
		select {
		case <-time.After(d):
		case pubErr = <-pubDone:
			pubDone <- pubErr
		case <-ctx.Done():
		}
	}
	wait(o.Warmup)
	m0 := c.mark(pub)
	wait(o.Duration)
	stopPub()
	if err := <-pubDone; err != nil {
		c.addError("publisher: %v", err)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	c.serverState(res)
	res.Published = pub.measured()
	finals := c.drain(pub.lastSeqs())
	c.measured(res, m0, c.sample())
	return finals, nil
}

// publishLoop publishes until ctx ends: within the window (fanout) or at
// the fixed rate (rate, topics).
func (c *coordinator) publishLoop(ctx context.Context, pub *publisher) error {
	o := &c.o
	if o.Scenario == ScenarioFanout && o.Burst {
		return c.publishBursts(ctx, pub)
	}
	if o.Scenario == ScenarioFanout {
		for seq := uint64(1); ctx.Err() == nil; seq++ {
			if seq > uint64(o.Window) {
				if err := c.awaitComplete(ctx, seq-uint64(o.Window)); err != nil || ctx.Err() != nil {
					return err
				}
			}
			if err := pub.next(fanoutTopic); err != nil {
				return err
			}
		}
		return nil
	}
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for n := 0; ; n++ {
		due := start.Add(time.Duration(float64(n) / o.Rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return nil
			}
		} else if ctx.Err() != nil {
			return nil
		}
		topic := fanoutTopic
		if o.Scenario == ScenarioTopics {
			topic = groupTopic(n % o.Groups)
		}
		if err := pub.next(topic); err != nil {
			return err
		}
	}
}

// publishBursts is the fanout scenario with --burst: the window's messages
// go out back to back (one write on a websocket), then the publisher waits
// until every subscriber has all of them.
func (c *coordinator) publishBursts(ctx context.Context, pub *publisher) error {
	w := uint64(c.o.Window)
	for last := uint64(0); ctx.Err() == nil; {
		pub.cork()
		for range w {
			if err := pub.next(fanoutTopic); err != nil {
				return err
			}
		}
		if err := pub.uncork(); err != nil {
			return err
		}
		last += w
		if err := c.awaitComplete(ctx, last); err != nil {
			return err
		}
	}
	return nil
}

// awaitComplete waits until every subscriber has message seq (or ctx
// ends: nil). A subscriber stuck for windowStallTimeout is an error.
func (c *coordinator) awaitComplete(ctx context.Context, seq uint64) error {
	lastMove, prev := time.Now(), c.minComplete()
	for ctx.Err() == nil && c.minComplete() < seq {
		if cur := c.minComplete(); cur != prev {
			prev, lastMove = cur, time.Now()
		}
		if time.Since(lastMove) > windowStallTimeout {
			return fmt.Errorf("the slowest subscriber has been stuck at message %d for %v", prev, windowStallTimeout)
		}
		select {
		case <-c.notify:
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
	return nil
}

// drain tells the workers what was published last and collects their
// final figures.
func (c *coordinator) drain(last map[string]uint64) []*workerStats {
	c.broadcast(command{Cmd: "drain", Last: last, Timeout: c.o.Drain})
	var finals []*workerStats
	t := time.NewTimer(c.o.Drain + finalSlack)
	defer t.Stop()
	for _, w := range c.workers {
		select {
		case s := <-w.final:
			finals = append(finals, s)
		case <-w.done:
			c.addError("worker %d ended without a final report", w.idx)
		case <-t.C:
			c.addError("worker %d sent no final report within %v", w.idx, c.o.Drain+finalSlack)
		}
	}
	return finals
}

func (c *coordinator) measured(res *Result, m0, m1 measure) {
	res.MeasuredSeconds = m1.at.Sub(m0.at).Seconds()
	res.serverCPU = m1.cpu - m0.cpu
}

func (c *coordinator) runChurn(ctx context.Context, res *Result) ([]*workerStats, error) {
	m0 := c.mark(nil)
	if err := sleep(ctx, c.o.Duration); err != nil {
		return nil, err
	}
	c.serverState(res)
	finals := c.drain(nil)
	c.measured(res, m0, c.sample())
	return finals, nil
}

// progress prints a line a second until the returned function is called.
func (c *coordinator) progress(start time.Time) func() {
	if c.o.Progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var prev int64
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			s := c.latest()
			rate := s.Total - prev
			prev = s.Total
			line := fmt.Sprintf("bench %5.0fs  deliveries/s %8d  lost %d  dup %d  wrong %d  p99 %s",
				time.Since(start).Seconds(), rate, s.Lost, s.Duplicates, s.Wrong, fmtLatency(s.Latency.Quantile(0.99)))
			if c.o.Scenario == ScenarioChurn {
				line += fmt.Sprintf("  connects %d  failed %d", s.Connects, s.ConnectFailures)
			}
			fmt.Fprintln(c.o.Progress, line)
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop); <-done }) }
}

// latest merges the workers' last reports.
func (c *coordinator) latest() workerStats {
	var m workerStats
	for _, w := range c.workers {
		w.mu.Lock()
		if s := w.stats; s != nil {
			m.add(s)
		}
		w.mu.Unlock()
	}
	return m
}

func (s *workerStats) add(o *workerStats) {
	s.Deliveries += o.Deliveries
	s.Total += o.Total
	s.Lost += o.Lost
	s.LostTail += o.LostTail
	s.Duplicates += o.Duplicates
	s.Wrong += o.Wrong
	s.Other += o.Other
	s.Dropped += o.Dropped
	s.Connects += o.Connects
	s.ConnectFailures += o.ConnectFailures
	s.CPUSeconds += o.CPUSeconds
	s.Latency.Merge(o.Latency)
	s.Errors = append(s.Errors, o.Errors...)
}

// finish fills res from the workers' final reports.
func (c *coordinator) finish(res *Result, finals []*workerStats) {
	var m workerStats
	for _, f := range finals {
		m.add(f)
	}
	res.Deliveries = m.Deliveries
	res.Lost, res.LostTail, res.Duplicates, res.Wrong = m.Lost, m.LostTail, m.Duplicates, m.Wrong
	res.OtherFrames, res.Dropped = m.Other, m.Dropped
	res.Connects, res.ChurnFailures = m.Connects, m.ConnectFailures
	if res.MeasuredSeconds > 0 {
		res.DeliveriesPerS = float64(m.Deliveries) / res.MeasuredSeconds
		res.ConnectsPerS = float64(m.Connects) / res.MeasuredSeconds
	}
	h := m.Latency
	res.LatencyUS = Latency{
		P50: us(h.Quantile(0.50)), P99: us(h.Quantile(0.99)),
		P999: us(h.Quantile(0.999)), Max: us(h.Max),
	}
	if c.o.PID > 0 {
		res.ServerCPUSeconds = res.serverCPU
		if m.Deliveries > 0 {
			res.ServerCPUUSPerDelivery = res.serverCPU * 1e6 / float64(m.Deliveries)
		}
		if res.Conns > 0 {
			res.RSSTotalPerConnBytes = float64(res.ServerRSSBytes) / float64(res.Conns)
			res.RSSPerConnBytes = float64(res.ServerRSSBytes-res.RSSBeforeBytes) / float64(res.Conns)
		}
	}
	res.ClientCPUSeconds = processCPU() + m.CPUSeconds
	seen := map[string]bool{}
	c.errMu.Lock()
	all := append(append([]string(nil), c.errs...), m.Errors...)
	c.errMu.Unlock()
	for _, e := range all {
		if !seen[e] {
			seen[e] = true
			res.Errors = append(res.Errors, e)
		}
	}
	if len(finals) < len(c.workers) {
		res.Errors = append(res.Errors, fmt.Sprintf("%d of %d workers sent no final report", len(c.workers)-len(finals), len(c.workers)))
		res.incomplete = true
	}
	sort.Strings(res.Errors)
}

func us(ns int64) float64 { return math.Round(float64(ns)/10) / 100 }
