package server_test

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/server"
)

// fakeEnv returns a getenv that sees only vars; the tests never read the
// real environment, so a FIRETOWER_* variable of the developer cannot change
// their outcome.
func fakeEnv(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// emptyDir makes a fresh temporary directory the working directory, so that
// a fireTower.toml in the package directory cannot be picked up as the
// default config file.
func emptyDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	return dir
}

// writeConfig writes a TOML config file into dir and returns its path.
func writeConfig(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func parse(t *testing.T, args []string, env map[string]string) *server.Options {
	t.Helper()
	var stderr bytes.Buffer
	o, err := server.ParseServe(args, fakeEnv(env), &stderr)
	if err != nil {
		t.Fatalf("ParseServe(%q): %v\nstderr: %s", args, err, stderr.String())
	}
	return o
}

func TestParseServeDefaults(t *testing.T) {
	emptyDir(t)
	o := parse(t, nil, nil)
	s, gw := o.Server, o.Server.Gateway
	checks := []struct {
		name      string
		got, want any
	}{
		{"Addr", s.Addr, server.DefaultAddr},
		{"QuietCounts", s.QuietCounts, false},
		{"DrainWindow", s.DrainWindow, server.DefaultDrainWindow},
		{"ClusterID", gw.ClusterID, int64(0)}, // auto
		{"NodeID", gw.NodeID, ""},
		{"HeartbeatInterval", gw.HeartbeatInterval, gateway.DefaultHeartbeatInterval},
		{"PongTimeout", gw.PongTimeout, gateway.DefaultPongTimeout},
		{"WriteTimeout", gw.WriteTimeout, gateway.DefaultWriteTimeout},
		{"ReadLimit", gw.ReadLimit, int64(gateway.DefaultReadLimit)},
		{"MaxMessageSize", gw.MaxMessageSize, gateway.DefaultMaxMessageSize},
		{"MaxSubscriptions", gw.MaxSubscriptions, gateway.DefaultMaxSubscriptions},
		{"InboundQueue", gw.InboundQueue, gateway.DefaultInboundQueue},
		{"ReadTimeout", gw.ReadTimeout, gateway.DefaultReadTimeout},
		{"OutboundQueue", gw.OutboundQueue, gateway.DefaultOutboundQueue},
		{"SlowConsumer", gw.SlowConsumer, gateway.SlowConsumerDrop},
		{"AllowedOrigins", len(gw.AllowedOrigins), 0},
		{"LogLevel", o.LogLevel, slog.LevelInfo},
		{"LogFormat", o.LogFormat, "text"},
		{"Ignored", len(o.Ignored), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// originalStyleConfig uses the camelCase keys and whole-second durations of
// the original fireTower.toml, plus the original's keys that no longer
// apply to serve.
const originalStyleConfig = `
addr = "127.0.0.1:7000"
announceCounts = false
heartbeat = 15
chanLens = 10
drainWindow = 2
allowedOrigins = ["https://chat.example.com", "https://*.example.org"]
topicServiceAddr = "127.0.0.1:6666"

[bucket]
Num = 4
CentralChanCount = 100000
`

func checkOriginalStyle(t *testing.T, o *server.Options) {
	t.Helper()
	gw := o.Server.Gateway
	if o.Server.Addr != "127.0.0.1:7000" {
		t.Errorf("Addr = %q", o.Server.Addr)
	}
	if !o.Server.QuietCounts {
		t.Error("announceCounts = false did not set QuietCounts")
	}
	if gw.HeartbeatInterval != 15*time.Second {
		t.Errorf("heartbeat = 15 gave %v, want 15s", gw.HeartbeatInterval)
	}
	if o.Server.DrainWindow != 2*time.Second {
		t.Errorf("drainWindow = 2 gave %v, want 2s", o.Server.DrainWindow)
	}
	if gw.InboundQueue != 10 {
		t.Errorf("chanLens = 10 gave InboundQueue %d", gw.InboundQueue)
	}
	if want := []string{"https://chat.example.com", "https://*.example.org"}; !slices.Equal(gw.AllowedOrigins, want) {
		t.Errorf("AllowedOrigins = %q, want %q", gw.AllowedOrigins, want)
	}
	ignored := slices.Sorted(slices.Values(o.Ignored))
	if want := []string{"bucket", "topicServiceAddr"}; !slices.Equal(ignored, want) {
		t.Errorf("Ignored = %q, want %q", ignored, want)
	}
}

func TestParseServeConfigFile(t *testing.T) {
	t.Run("--config", func(t *testing.T) {
		dir := emptyDir(t)
		path := writeConfig(t, dir, "custom.toml", originalStyleConfig)
		checkOriginalStyle(t, parse(t, []string{"--config", path}, nil))
	})
	t.Run("--config=", func(t *testing.T) {
		dir := emptyDir(t)
		path := writeConfig(t, dir, "custom.toml", originalStyleConfig)
		checkOriginalStyle(t, parse(t, []string{"-config=" + path}, nil))
	})
	t.Run("FIRETOWER_CONFIG", func(t *testing.T) {
		dir := emptyDir(t)
		path := writeConfig(t, dir, "custom.toml", originalStyleConfig)
		checkOriginalStyle(t, parse(t, nil, map[string]string{"FIRETOWER_CONFIG": path}))
	})
	t.Run("default file in the working directory", func(t *testing.T) {
		dir := emptyDir(t)
		writeConfig(t, dir, server.DefaultConfigFile, originalStyleConfig)
		checkOriginalStyle(t, parse(t, nil, nil))
	})
	t.Run("--config wins over FIRETOWER_CONFIG", func(t *testing.T) {
		dir := emptyDir(t)
		path := writeConfig(t, dir, "custom.toml", originalStyleConfig)
		other := writeConfig(t, dir, "other.toml", `addr = "127.0.0.1:7999"`)
		checkOriginalStyle(t, parse(t, []string{"--config", path}, map[string]string{"FIRETOWER_CONFIG": other}))
	})
	t.Run("a flag value spelled config", func(t *testing.T) {
		emptyDir(t)
		o := parse(t, []string{"--node-id", "config", "--addr", "127.0.0.1:7003"}, nil)
		if o.Server.Gateway.NodeID != "config" || o.Server.Addr != "127.0.0.1:7003" {
			t.Errorf("NodeID %q, Addr %q", o.Server.Gateway.NodeID, o.Server.Addr)
		}
	})
	t.Run("kebab-case keys and duration strings", func(t *testing.T) {
		dir := emptyDir(t)
		path := writeConfig(t, dir, "kebab.toml", `
read-timeout = "250ms"
slow-consumer = "disconnect"
max-subscriptions = -1
log-level = "debug"
log-format = "json"
`)
		o := parse(t, []string{"--config", path}, nil)
		gw := o.Server.Gateway
		if gw.ReadTimeout != 250*time.Millisecond || gw.SlowConsumer != gateway.SlowConsumerDisconnect ||
			gw.MaxSubscriptions != -1 || o.LogLevel != slog.LevelDebug || o.LogFormat != "json" {
			t.Errorf("got ReadTimeout %v, SlowConsumer %q, MaxSubscriptions %d, LogLevel %v, LogFormat %q",
				gw.ReadTimeout, gw.SlowConsumer, gw.MaxSubscriptions, o.LogLevel, o.LogFormat)
		}
	})
}

func TestParseServeConfigFileErrors(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"unknown key", "addr = \"127.0.0.1:7000\"\nfrobnicate = 3\n", `"frobnicate"`},
		{"config key inside the file", `config = "other.toml"`, `unknown key "config"`},
		{"malformed TOML", "addr = \n", "custom.toml"},
		{"bad duration", `heartbeat = "soon"`, "heartbeat"},
		{"negative whole seconds", `heartbeat = -5`, "HeartbeatInterval must not be negative"},
		{"wrong type", `inboundQueue = "many"`, "inboundQueue"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := emptyDir(t)
			path := writeConfig(t, dir, "custom.toml", c.body)
			_, err := server.ParseServe([]string{"--config", path}, fakeEnv(nil), io.Discard)
			if err == nil {
				t.Fatalf("no error for %q", c.body)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
	t.Run("explicit file missing", func(t *testing.T) {
		dir := emptyDir(t)
		missing := filepath.Join(dir, "nope.toml")
		for _, how := range []struct {
			args []string
			env  map[string]string
		}{
			{[]string{"--config", missing}, nil},
			{nil, map[string]string{"FIRETOWER_CONFIG": missing}},
		} {
			_, err := server.ParseServe(how.args, fakeEnv(how.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), "nope.toml") {
				t.Errorf("args %q env %v: error %v, want one naming nope.toml", how.args, how.env, err)
			}
		}
	})
}

// --cluster-id is auto by default, or a node number where 0 is number 0
// (Config's 1024), from the flag, the environment or the config file.
func TestParseClusterID(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		file string
		want int64
	}{
		{nil, nil, "", 0},
		{[]string{"--cluster-id", "auto"}, nil, "", 0},
		{[]string{"--cluster-id=AUTO"}, nil, "", 0},
		{[]string{"--cluster-id", "7"}, nil, "", 7},
		{[]string{"--cluster-id", "0"}, nil, "", 1024},
		{[]string{"--cluster-id", "1024"}, nil, "", 1024},
		{[]string{"--cluster-id", "1023"}, nil, "", 1023},
		{nil, map[string]string{"FIRETOWER_CLUSTER_ID": "12"}, "", 12},
		{nil, map[string]string{"FIRETOWER_CLUSTER_ID": "auto"}, "cluster-id = 4", 0},
		{nil, nil, "cluster-id = 4", 4},
		{nil, nil, "cluster-id = 0", 1024},
		{nil, nil, `cluster-id = "auto"`, 0},
	} {
		dir := emptyDir(t)
		if c.file != "" {
			writeConfig(t, dir, server.DefaultConfigFile, c.file)
		}
		if got := parse(t, c.args, c.env).Server.Gateway.ClusterID; got != c.want {
			t.Errorf("args %q, env %v, file %q: ClusterID %d, want %d", c.args, c.env, c.file, got, c.want)
		}
	}
}

func TestParseServePrecedence(t *testing.T) {
	dir := emptyDir(t)
	writeConfig(t, dir, server.DefaultConfigFile, originalStyleConfig)

	env := map[string]string{
		"FIRETOWER_ADDR":            "127.0.0.1:7001",
		"FIRETOWER_HEARTBEAT":       "20s",
		"FIRETOWER_ANNOUNCE_COUNTS": "true",
		"FIRETOWER_INBOUND_QUEUE":   "11",
		"FIRETOWER_ALLOWED_ORIGINS": "https://env.example.com, https://env2.example.com",
		"FIRETOWER_LOG_LEVEL":       "warn",
	}
	o := parse(t, nil, env)
	gw := o.Server.Gateway
	if o.Server.Addr != "127.0.0.1:7001" || gw.HeartbeatInterval != 20*time.Second || o.Server.QuietCounts ||
		gw.InboundQueue != 11 || o.LogLevel != slog.LevelWarn {
		t.Errorf("env did not override the file: Addr %q, heartbeat %v, QuietCounts %v, InboundQueue %d, LogLevel %v",
			o.Server.Addr, gw.HeartbeatInterval, o.Server.QuietCounts, gw.InboundQueue, o.LogLevel)
	}
	if want := []string{"https://env.example.com", "https://env2.example.com"}; !slices.Equal(gw.AllowedOrigins, want) {
		t.Errorf("AllowedOrigins = %q, want %q (env replaces the file's list)", gw.AllowedOrigins, want)
	}
	// A setting only the file makes survives the env layer.
	if o.Server.DrainWindow != 2*time.Second {
		t.Errorf("DrainWindow = %v, want the file's 2s", o.Server.DrainWindow)
	}

	o = parse(t, []string{"--addr", "127.0.0.1:7002", "--heartbeat=45s", "--announce-counts=false", "--inbound-queue", "12"}, env)
	gw = o.Server.Gateway
	if o.Server.Addr != "127.0.0.1:7002" || gw.HeartbeatInterval != 45*time.Second || !o.Server.QuietCounts || gw.InboundQueue != 12 {
		t.Errorf("flags did not override env: Addr %q, heartbeat %v, QuietCounts %v, InboundQueue %d",
			o.Server.Addr, gw.HeartbeatInterval, o.Server.QuietCounts, gw.InboundQueue)
	}
	if o.LogLevel != slog.LevelWarn {
		t.Errorf("LogLevel = %v, want env's warn (no flag given)", o.LogLevel)
	}
}

func TestParseServeBadValues(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string // a part of the error message that tells the user what is wrong
	}{
		{"negative drain window", []string{"--drain-window=-1s"}, nil, "negative"},
		{"negative heartbeat", []string{"--heartbeat=-1s"}, nil, "HeartbeatInterval must not be negative"},
		{"negative read timeout", []string{"--read-timeout", "-5s"}, nil, "ReadTimeout must not be negative"},
		{"negative write timeout", []string{"--write-timeout=-1ms"}, nil, "WriteTimeout must not be negative"},
		{"heartbeat below 100ms", []string{"--heartbeat=1ms"}, nil, "below 100ms"},
		{"slow consumer policy", []string{"--slow-consumer=foo"}, nil, `SlowConsumer "foo"`},
		{"cluster id", []string{"--cluster-id=5000"}, nil, `"5000" is not auto or a node number 0..1023`},
		{"negative cluster id", []string{"--cluster-id=-1"}, nil, `"-1" is not auto or a node number`},
		{"cluster id garbage", []string{"--cluster-id=one"}, nil, `"one" is not auto`},
		{"bad env cluster id", nil, map[string]string{"FIRETOWER_CLUSTER_ID": "1025"}, "FIRETOWER_CLUSTER_ID"},
		{"log format", []string{"--log-format=xml"}, nil, `--log-format must be text or json, not "xml"`},
		{"log level", []string{"--log-level=loud"}, nil, "log-level"},
		{"addr without port", []string{"--addr=localhost"}, nil, `bad address "localhost"`},
		{"addr garbage", []string{"--addr", "::1::"}, nil, "bad address"},
		{"origin without scheme", []string{"--allowed-origins=chat.example.com"}, nil, `allowed origin "chat.example.com"`},
		{"not a duration", []string{"--drain-window=soon"}, nil, "drain-window"},
		{"unknown flag", []string{"--frobnicate"}, nil, "frobnicate"},
		{"positional argument", []string{"extra"}, nil, `unexpected argument "extra"`},
		{"bad env duration", nil, map[string]string{"FIRETOWER_HEARTBEAT": "soon"}, "FIRETOWER_HEARTBEAT"},
		{"bad env policy", nil, map[string]string{"FIRETOWER_SLOW_CONSUMER": "foo"}, `SlowConsumer "foo"`},
		{"bad env bool", nil, map[string]string{"FIRETOWER_ANNOUNCE_COUNTS": "maybe"}, "FIRETOWER_ANNOUNCE_COUNTS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			emptyDir(t)
			_, err := server.ParseServe(c.args, fakeEnv(c.env), io.Discard)
			if err == nil {
				t.Fatalf("args %q env %v: no error", c.args, c.env)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("args %q env %v: error %q does not say %q", c.args, c.env, err, c.want)
			}
		})
	}
}

func TestOptionsNewLogger(t *testing.T) {
	for _, c := range []struct {
		format, want string
	}{
		{"text", "level=WARN msg=hello"},
		{"json", `"level":"WARN","msg":"hello"`},
	} {
		var buf bytes.Buffer
		o := &server.Options{LogFormat: c.format, LogLevel: slog.LevelWarn}
		log := o.NewLogger(&buf)
		log.Info("hidden")
		log.Warn("hello")
		if got := buf.String(); !strings.Contains(got, c.want) || strings.Contains(got, "hidden") {
			t.Errorf("%s logger wrote %q, want %q and no info line", c.format, got, c.want)
		}
	}
}
