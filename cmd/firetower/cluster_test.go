package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/firetower-go/firetower/internal/wait"
	"github.com/gorilla/websocket"
)

// syncBuffer collects a child's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// child is a running firetower process.
type child struct {
	name   string
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan error
}

// spawn starts the binary; it is killed at the end of the test if still
// running.
func spawn(t *testing.T, bin, name string, env []string, args ...string) *child {
	t.Helper()
	c := &child{name: name, cmd: command(t, bin, env, args...), logs: &syncBuffer{}, exited: make(chan error, 1)}
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.exited <- c.cmd.Wait() }()
	t.Cleanup(func() { c.kill(t) })
	return c
}

// kill sends SIGKILL and waits for the process to end.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not exit after SIGKILL", c.name)
	}
}

// waitLog waits until the child has logged s, failing early if it exits.
func (c *child) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(c.logs.String(), s) {
		select {
		case err := <-c.exited:
			c.exited <- err
			t.Fatalf("%s exited (%v) before logging %q:\n%s", c.name, err, s, c.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within 15s:\n%s", c.name, s, c.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitHealthy polls a gateway's /healthz.
func waitHealthy(t *testing.T, c *child, addr string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-c.exited:
			c.exited <- err
			t.Fatalf("%s exited (%v):\n%s", c.name, err, c.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /healthz did not answer within 15s:\n%s", c.name, c.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wsReader is a websocket client whose messages are read in the background.
type wsReader struct {
	c    *websocket.Conn
	in   chan string
	done chan error
}

func connect(t *testing.T, url string, v2 bool) *wsReader {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if v2 {
		d.Subprotocols = []string{"firetower.v2"}
	}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	resp.Body.Close()
	r := &wsReader{c: c, in: make(chan string, 100000), done: make(chan error, 1)}
	go func() {
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				r.done <- err
				return
			}
			if s := string(b); s != "heartbeat" && s != `{"type":"ping"}` {
				r.in <- s
			}
		}
	}()
	t.Cleanup(func() { _ = c.Close(); <-r.done })
	return r
}

func (r *wsReader) send(t *testing.T, frame string) {
	t.Helper()
	if err := r.c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// await reads until a message for which ok returns true, within d.
func (r *wsReader) await(t *testing.T, d time.Duration, what string, ok func(string) bool) string {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case s := <-r.in:
			if ok(s) {
				return s
			}
		case err := <-r.done:
			r.done <- err
			t.Fatalf("connection ended while waiting for %s: %v", what, err)
		case <-timeout:
			t.Fatalf("no %s within %v", what, d)
		}
	}
}

// onSubscribe returns a matcher of the count announcement, and the count.
func onSubscribe(n *int) func(string) bool {
	return func(s string) bool {
		_, err := fmt.Sscanf(s, `{"type":"onSubscribe","data":%d}`, n)
		return err == nil
	}
}

// TestClusterProcesses runs the real binary: a topic manager and two
// gateways as child processes. The manager is killed with SIGKILL under a
// steady publish stream and restarted on the same port: publishes fail fast
// meanwhile, delivery resumes within a few seconds with the same client
// connections, and counts are right. Then a gateway is killed with SIGKILL:
// its subscribers leave the counts when its lease ends.
func TestClusterProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := build(t)
	tmAddr, gw1Addr, gw2Addr := freeAddr(t), freeAddr(t), freeAddr(t)
	const lease = 2 * time.Second
	startManager := func() *child {
		m := spawn(t, bin, "topicmanager", []string{"FIRETOWER_LEASE=" + lease.String()},
			"topicmanager", "--addr", tmAddr, "--node-id", "tm-1", "--heartbeat", "1s")
		m.waitLog(t, "topic manager serving")
		return m
	}
	m := startManager()
	const apiKey = "cluster-test-key"
	env := []string{"FIRETOWER_BROKER=tm://" + tmAddr, "FIRETOWER_DRAIN_WINDOW=100ms", "FIRETOWER_API_KEY=" + apiKey}
	gw1 := spawn(t, bin, "gateway 1", env, "gateway", "--addr", gw1Addr, "--node-id", "gw-1", "--cluster-id", "1")
	gw2 := spawn(t, bin, "gateway 2", env, "gateway", "--addr", gw2Addr, "--node-id", "gw-2", "--cluster-id", "2")
	waitHealthy(t, gw1, gw1Addr)
	waitHealthy(t, gw2, gw2Addr)

	const topic = "/chat/world"
	subscribe := `{"type":"subscribe","topic":"` + topic + `","data":""}`
	c1 := connect(t, "ws://"+gw1Addr+"/ws", false)
	c2 := connect(t, "ws://"+gw2Addr+"/ws", false)
	var n int
	c1.send(t, subscribe)
	c1.await(t, 5*time.Second, "c1's count", onSubscribe(&n))
	// Gateway 1 registers c1's interest with the manager in the background:
	// wait until gateway 2 counts it, or c2's announcement may say 1.
	wait.For(t, 5*time.Second, 20*time.Millisecond, func() error {
		return wantCount(gw2Addr, apiKey, topic, 1)
	})
	c2.send(t, subscribe)
	c2.await(t, 5*time.Second, "c2's count", onSubscribe(&n))
	if n != 2 {
		t.Fatalf("c2 subscribed and the cluster counts %d, want 2", n)
	}

	// A v2 publisher on gateway 1 streams sequence numbers.
	pub := connect(t, "ws://"+gw1Addr+"/ws", true)
	var mu sync.Mutex
	sentAt := make(map[int]time.Time)
	var seq int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			mu.Lock()
			seq++
			s := seq
			sentAt[s] = time.Now()
			mu.Unlock()
			frame := fmt.Sprintf(`{"id":%d,"type":"publish","topic":%q,"data":%d}`, s, topic, s)
			if err := pub.c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
				return
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()
	isSeq := func(min int) func(string) bool {
		return func(s string) bool {
			v, err := strconv.Atoi(s)
			return err == nil && v > min
		}
	}
	c2.await(t, 5*time.Second, "the stream on gateway 2", isSeq(0))

	m.kill(t)
	// Publishes on gateway 1 are refused (503) quickly while the manager
	// is down.
	errFrame := pub.await(t, 5*time.Second, "a 503 publish error", func(s string) bool {
		return strings.HasPrefix(s, `{"type":"error"`) && strings.Contains(s, `"code":503`)
	})
	var failedID int
	if _, err := fmt.Sscanf(errFrame, `{"type":"error","id":%d`, &failedID); err != nil {
		t.Fatalf("error frame %s: %v", errFrame, err)
	}
	mu.Lock()
	took := time.Since(sentAt[failedID])
	mu.Unlock()
	if took > time.Second {
		t.Errorf("a publish during the outage failed after %v; want fast", took)
	}

	m = startManager()
	mu.Lock()
	restartedAt, seqAtRestart := time.Now(), seq
	mu.Unlock()
	c2.await(t, 10*time.Second, "the stream on gateway 2 after the restart", isSeq(seqAtRestart))
	t.Logf("delivery resumed %v after the manager restarted", time.Since(restartedAt).Round(time.Millisecond))
	c3 := connect(t, "ws://"+gw2Addr+"/ws", false)
	c3.send(t, subscribe)
	c3.await(t, 5*time.Second, "c3's count", onSubscribe(&n))
	if n != 3 {
		t.Errorf("after the restart the cluster counts %d subscribers, want 3", n)
	}
	// The original clients still receive, on their first connection.
	c1.await(t, 5*time.Second, "the stream on gateway 1", isSeq(seqAtRestart))
	c2.await(t, 5*time.Second, "the stream on gateway 2", isSeq(seqAtRestart))

	gw2.kill(t)
	killedAt := time.Now()
	c4 := connect(t, "ws://"+gw1Addr+"/ws", false)
	c4.send(t, subscribe)
	c4.await(t, 5*time.Second, "c4's count", onSubscribe(&n))
	if n != 4 && time.Since(killedAt) < lease/2 {
		t.Errorf("right after gateway 2 died the cluster counts %d, want 4 until its lease ends", n)
	}
	deadline := time.Now().Add(lease + 5*time.Second)
	for n != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the cluster still counts %d subscribers %v after gateway 2 died; want 2", n, time.Since(killedAt))
		}
		time.Sleep(100 * time.Millisecond)
		c4.send(t, `{"type":"unSubscribe","topic":"`+topic+`","data":""}`)
		c4.send(t, subscribe)
		c4.await(t, 5*time.Second, "c4's count", onSubscribe(&n))
	}
	if gone := time.Since(killedAt); gone < lease/2 {
		t.Errorf("gateway 2's subscribers left the counts %v after it died, before its %v lease", gone, lease)
	}
}

// wantCount asks a gateway's push API for the cluster-wide count of topic.
func wantCount(addr, key, topic string, want int64) error {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/api/count?topic="+url.QueryEscape(topic), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Count int64 `json:"count"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("count: HTTP %d: %w", resp.StatusCode, err)
	}
	if body.Count != want {
		return fmt.Errorf("gateway %s counts %d subscribers of %q, want %d", addr, body.Count, topic, want)
	}
	return nil
}
