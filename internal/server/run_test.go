package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/models"
)

// started is a server run in the background.
type started struct {
	url, token string
	stop       func() error
}

func start(t *testing.T, dir, token string) (*started, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *started, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Dir: dir, Host: "127.0.0.1", Port: 0, AdminToken: token,
			Ready: func(url string, admin *models.User) { ready <- &started{url: url, token: admin.Token} }})
	}()
	select {
	case s := <-ready:
		s.stop = func() error { cancel(); return <-done }
		return s, nil
	case err := <-done:
		cancel()
		return nil, err
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("server did not start")
	}
	return nil, nil
}

func (s *started) post(t *testing.T, path string, body any) map[string]any {
	t.Helper()
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.url+path, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, raw)
	}
	var out map[string]any
	json.Unmarshal(raw, &out)
	return out
}

const secretKey = "AKIA-SECRET-4242-XYZ"

const testConfig = `projects:
  - name: main
    backends:
      - type: aws
        creds:
          type: access_key
          access_key: ${TEST_AWS_KEY}
          secret_key: s3cr3t-value-777
  - name: team
    backends:
      - type: oci
        creds:
          type: default
`

func TestRunAppliesConfigAndRestarts(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("TEST_AWS_KEY", secretKey)
	dir := t.TempDir()
	os.WriteFile(ConfigPath(dir), []byte(testConfig), 0o600)

	s, err := start(t, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	team := s.post(t, "/api/projects/team/get", nil)
	bs := team["backends"].([]any)
	if len(bs) != 1 || bs[0].(map[string]any)["name"] != "oci" {
		t.Fatalf("team backends: %v", bs)
	}
	info := s.post(t, "/api/project/main/backends/aws/config_info", nil)
	if info["creds"].(map[string]any)["access_key"] != secretKey {
		t.Fatalf("${TEST_AWS_KEY} not interpolated: %v", info)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	// Secrets are encrypted at rest: neither the credential nor the admin token is in the files.
	files, _ := filepath.Glob(filepath.Join(dir, "data", "sqlite.db*"))
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for _, secret := range []string{secretKey, "s3cr3t-value-777", s.token} {
			if bytes.Contains(data, []byte(secret)) {
				t.Fatalf("%s holds a secret in clear text", f)
			}
		}
	}

	// A restart keeps the admin token, users, projects and backends.
	s2, err := start(t, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if s2.token != s.token {
		t.Fatal("admin token changed across restarts")
	}
	if got := s2.post(t, "/api/project/main/backends/aws/config_info", nil); got["creds"].(map[string]any)["secret_key"] != "s3cr3t-value-777" {
		t.Fatalf("after restart: %v", got)
	}
	s2.stop()

	// config.yml owns the projects it lists: dropping a backend there deletes it on the next start.
	os.WriteFile(ConfigPath(dir), []byte("projects:\n  - name: team\n    backends: []\n"), 0o600)
	s3, err := start(t, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if bs := s3.post(t, "/api/projects/team/get", nil)["backends"].([]any); len(bs) != 0 {
		t.Fatalf("unlisted backend kept: %v", bs)
	}
	if bs := s3.post(t, "/api/projects/main/get", nil)["backends"].([]any); len(bs) != 1 {
		t.Fatalf("a project the file no longer lists must be left alone: %v", bs)
	}
	s3.stop()
}

func TestRunRefusesInvalidConfig(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	os.WriteFile(ConfigPath(dir), []byte("projects:\n  - name: fresh\n    backends:\n      - type: lambda\n        creds: {type: api_key}\n"), 0o600)
	_, err := start(t, dir, "")
	if err == nil || !strings.Contains(err.Error(), "config.yml:5:9: projects[0].backends[0].creds.api_key: required") {
		t.Fatalf("want a located error, got %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, "data", "sqlite.db")); statErr == nil {
		t.Fatal("the database was touched although config.yml is invalid")
	}
}
