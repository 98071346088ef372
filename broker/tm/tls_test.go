package tm_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firetower-go/firetower/broker/tm"
	"github.com/firetower-go/firetower/internal/tlstest"
)

func TestParseURLTLS(t *testing.T) {
	cfg, err := tm.ParseURL("tms://127.0.0.1:6666,tm-2@10.0.0.2:6666")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLS == nil || cfg.TLS.RootCAs != nil || len(cfg.Managers) != 2 {
		t.Errorf("tms:// without ca: TLS %+v, managers %+v; want TLS with the system roots", cfg.TLS, cfg.Managers)
	}
	if cfg, err := tm.ParseURL("tm://127.0.0.1:6666"); err != nil || cfg.TLS != nil {
		t.Errorf("tm://: TLS %+v, %v; want plain", cfg.TLS, err)
	}

	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, tlstest.NewCA(t).PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = tm.ParseURL("tms://127.0.0.1:6666?ca=" + caFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLS == nil || cfg.TLS.RootCAs == nil || cfg.Managers[0].Addr != "127.0.0.1:6666" {
		t.Errorf("tms:// with ca: TLS %+v, managers %+v", cfg.TLS, cfg.Managers)
	}

	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for bad, want := range map[string]string{
		"tms://127.0.0.1:6666?ca=" + caFile + ".missing": "CA file",
		"tms://127.0.0.1:6666?ca=" + notPEM:              "no PEM certificate",
		"tms://127.0.0.1:6666?prefix=x":                  "unknown broker URL option",
		"tm://127.0.0.1:6666?ca=" + caFile:               "takes no option but settle",
		"tmx://127.0.0.1:6666":                           "does not start with",
	} {
		if _, err := tm.ParseURL(bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseURL(%q) = %v, want an error with %q", bad, err, want)
		}
	}
}
