// Package clustertest holds what the tests of the external brokers share:
// access to the Redis and NATS servers the test command starts
// (scripts/test.sh), private server processes a test may kill and restart,
// and end-to-end scenarios with real gateways and websocket clients. Only
// tests import it.
package clustertest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The shared servers the broker tests use; scripts/test.sh starts them
// when nothing listens there.
const (
	RedisAddr = "127.0.0.1:6379"
	NATSAddr  = "127.0.0.1:4222"
)

// RequireEnv, when set (scripts/test.sh sets it), turns a missing server
// or server binary into a test failure instead of a skip, so that CI never
// passes by skipping.
const RequireEnv = "FIRETOWER_REQUIRE_SERVICES"

// missing skips the test, or fails it under RequireEnv.
func missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s (%s is set, so this is a failure, not a skip)", what, RequireEnv)
	}
	t.Skipf("%s: run scripts/test.sh, which installs and starts what the tests need; set %s=1 to make this a failure", what, RequireEnv)
}

// Require skips the test (or fails it under RequireEnv) unless something
// accepts connections on addr.
func Require(t testing.TB, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		missing(t, fmt.Sprintf("%s is not listening on %s", name, addr))
		return
	}
	_ = c.Close()
}

// UniquePrefix returns a name prefix no other test or run uses, so that
// tests sharing a server do not see each other's channels and keys.
func UniquePrefix(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "fttest-" + hex.EncodeToString(b[:])
}

// Server is a private redis-server or nats-server child process on a free
// loopback port, for a test that kills and restarts it. The shared servers
// on the standard ports are never touched.
type Server struct {
	t    testing.TB
	name string
	bin  string
	args func(port int) []string
	Port int
	Addr string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartRedis starts a private redis-server without persistence: a restart
// comes back empty, as after a crash of a cache.
func StartRedis(t testing.TB) *Server {
	t.Helper()
	return startServer(t, "redis-server", func(port int) []string {
		return []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no", "--enable-debug-command", "local"}
	})
}

// StartNATS starts a private nats-server; config, if not empty, is the
// text of its configuration file (for example "max_payload: 2MB").
func StartNATS(t testing.TB, config string) *Server {
	t.Helper()
	conf := ""
	if config != "" {
		conf = filepath.Join(t.TempDir(), "nats.conf")
		if err := os.WriteFile(conf, []byte(config+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return startServer(t, "nats-server", func(port int) []string {
		args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}
		if conf != "" {
			args = append(args, "-c", conf)
		}
		return args
	})
}

func startServer(t testing.TB, name string, args func(int) []string) *Server {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		missing(t, name+" is not installed")
	}
	s := &Server{t: t, name: name, bin: bin, args: args, Port: freePort(t), log: filepath.Join(t.TempDir(), name+".log")}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts the server (again, after Kill) on its port and waits until
// it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatalf("%s on %s is already running", s.name, s.Addr)
	}
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, s.args(s.Port)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives the test binary
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		select {
		case <-done:
			log, _ := os.ReadFile(s.log)
			s.t.Fatalf("%s exited at start:\n%s", s.name, log)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s does not accept connections on %s", s.name, s.Addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Pause stops the server with SIGSTOP: it keeps its connections and
// answers nothing, as a paused process or VM, or a network black hole,
// looks. It returns once the process is stopped (the signal takes effect
// asynchronously, a few milliseconds later on a loaded machine). Resume
// continues it.
func (s *Server) Pause() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP)
	s.mu.Lock()
	pid := s.cmd.Process.Pid
	s.mu.Unlock()
	CheckFor(s.t, 5*time.Second, func() error {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return err
		}
		// pid (comm) state ...: comm may hold spaces, the state follows
		// its closing parenthesis.
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'T' {
			return nil
		}
		return fmt.Errorf("%s is not stopped yet", s.name)
	})
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("%s on %s is not running", s.name, s.Addr)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("%v to %s: %v", sig, s.name, err)
	}
}

// Kill kills the server with SIGKILL, as a crash, and waits for it to exit.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}
