package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// serverStartTimeout bounds the wait for a spawned server's websocket.
	serverStartTimeout = 20 * time.Second
	// serverStopTimeout is how long a spawned server gets after SIGTERM
	// before SIGKILL; its clients are gone by then, so draining is quick.
	serverStopTimeout = 10 * time.Second
	// workerStopTimeout is how long a worker process gets to exit after its
	// input is closed.
	workerStopTimeout = 10 * time.Second
)

// spawned is a server process spawned by the bench.
type spawned struct {
	cmd    *exec.Cmd
	url    string
	pid    int
	exited chan struct{}
	err    error // Wait's result, set before exited is closed
}

func executable(o *Options) (string, error) {
	if o.Executable != "" {
		return o.Executable, nil
	}
	return os.Executable()
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// spawnServer starts the server o.Spawn names and waits until its
// websocket endpoint answers. For "serve" it sets o.APIKey if empty.
func spawnServer(ctx context.Context, o *Options) (*spawned, error) {
	exe, err := executable(o)
	if err != nil {
		return nil, err
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	var args []string
	env := os.Environ()
	if o.Spawn == "serve" {
		args = []string{"serve", "--addr", addr, "--announce-counts=false"}
		if o.APIKey == "" {
			var k [16]byte
			_, _ = rand.Read(k[:])
			o.APIKey = hex.EncodeToString(k[:])
		}
		// Through the environment, as flags show in ps; no gRPC listener on
		// its fixed default port unless --server-args asks for one.
		env = append(env, "FIRETOWER_API_KEY="+o.APIKey, "FIRETOWER_GRPC_ADDR=off")
	} else {
		args = []string{"bench-baseline", "--kind", o.Spawn, "--addr", addr}
	}
	args = append(args, o.ServerArgs...)
	cmd := exec.Command(exe, args...)
	cmd.Env = env
	// Should the bench die without stopping it, the server goes too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Stdout = io.Discard
	cmd.Stderr = io.Discard
	if o.ServerLog && o.ServerOutput != nil {
		cmd.Stdout, cmd.Stderr = o.ServerOutput, o.ServerOutput
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: starting the server: %w", err)
	}
	raiseFDLimit(cmd.Process.Pid, o.clients()+1024, o.ServerOutput)
	s := &spawned{cmd: cmd, url: "ws://" + addr + "/ws", pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(serverStartTimeout)
	for {
		c, err := dialWS(ctx, s.url, nil)
		if err == nil {
			c.close()
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("bench: the server exited before serving (%v); run with --server-log to see why", s.err)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("bench: the server did not answer on %s within %v: %w", s.url, serverStartTimeout, err)
		}
	}
}

// stop ends the server: SIGTERM, then SIGKILL after serverStopTimeout.
func (s *spawned) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(serverStopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// startWorkerProcess runs "<exe> bench --worker" with its stderr passed
// through.
func startWorkerProcess(exe string, stderr io.Writer) func(int) (WorkerProc, error) {
	return func(int) (WorkerProc, error) {
		cmd := exec.Command(exe, "bench", "--worker")
		cmd.Stderr = stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return WorkerProc{}, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return WorkerProc{}, err
		}
		if err := cmd.Start(); err != nil {
			return WorkerProc{}, err
		}
		return WorkerProc{In: in, Out: out, Wait: cmd.Wait, Kill: func() { _ = cmd.Process.Kill() }}, nil
	}
}

// startWorkerInProcess runs a worker on goroutines of this process,
// talking through pipes exactly as a worker process does.
func startWorkerInProcess(int) (WorkerProc, error) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := runWorker(inR, outW)
		_ = outW.CloseWithError(err)
		_ = inR.Close()
		done <- err
	}()
	var result error
	waited := false
	return WorkerProc{
		In:  inW,
		Out: outR,
		Wait: func() error {
			if !waited {
				result, waited = <-done, true
			}
			return result
		},
		Kill: func() { _ = inW.Close() },
	}, nil
}

// raiseFDLimit lifts the open-file limit of process pid to at least need,
// so a spawned server can hold more connections than the limit it
// inherited (20,000 on these machines). Raising the hard limit needs
// root (CAP_SYS_RESOURCE); without it the run goes on and the connections
// past the limit fail, which the report shows.
func raiseFDLimit(pid, need int, warn io.Writer) {
	var cur unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &cur); err != nil || cur.Cur >= uint64(need) {
		return
	}
	want := unix.Rlimit{Cur: uint64(need), Max: max(cur.Max, uint64(need))}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &want, nil); err != nil && warn != nil {
		fmt.Fprintf(warn, "bench: cannot raise the server's open-file limit from %d to %d: %v\n", cur.Cur, need, err)
	}
}
