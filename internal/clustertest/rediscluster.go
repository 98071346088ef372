package clustertest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartRedisClusterNode starts a private redis-server in cluster mode that
// holds every hash slot: a Redis Cluster of one shard. Cluster rules apply
// (a multi-key command or script must stay in one slot, SSUBSCRIBE
// channels must share a slot), with no redirections to follow.
func StartRedisClusterNode(t testing.TB) *Server {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "nodes.conf")
	s := startServer(t, "redis-server", func(port int) []string {
		return []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", conf}
	})
	if _, err := s.RedisDo("CLUSTER", "ADDSLOTSRANGE", "0", "16383"); err != nil {
		t.Fatal(err)
	}
	CheckFor(t, 10*time.Second, func() error {
		info, err := s.RedisDo("CLUSTER", "INFO")
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("cluster not ready: %s", info)
		}
		return nil
	})
	return s
}

// RedisDo sends one command to a private redis-server and returns its
// reply (a status, an integer or a bulk string as text).
func (s *Server) RedisDo(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var req strings.Builder
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, req.String()); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "-"):
		return "", fmt.Errorf("redis: %s", line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	}
	return line[1:], nil
}
