package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestMain lets the test binary stand in for the command when -background starts it again.
func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestBackground: -background prints the exports of a detached simulator that answers.
func TestBackground(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-background", "-duration", "20s", "-providers", "lambda"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		k, v, _ := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		env[k] = v
	}
	pid, err := strconv.Atoi(env["DSTACK_CLOUDSIM_PID"])
	if err != nil {
		t.Fatalf("no pid in:\n%s", stdout.String())
	}
	defer func() {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Signal(syscall.SIGTERM)
		}
	}()
	resp, err := http.Get(env["DSTACK_CLOUDSIM_URL"] + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || env["DSTACK_LAMBDA_API_URL"] == "" {
		t.Errorf("healthz %s, env %v", resp.Status, env)
	}
}

func TestRunPrintsExports(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-duration", "50ms", "-providers", "lambda,vultr,runpod",
		"-fault-rate", "0.1", "-faults", "throttle,5xx", "-catalog-dir", dir}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, re := range []string{
		`(?m)^export DSTACK_LAMBDA_API_URL=http://127\.0\.0\.1:\d+/api/v1$`,
		`(?m)^export DSTACK_VULTR_API_URL=http://127\.0\.0\.1:\d+$`,
		`(?m)^export DSTACK_RUNPOD_API_URL=http://127\.0\.0\.1:\d+/graphql$`,
		`(?m)^export DSTACK_CLOUDSIM_URL=http://127\.0\.0\.1:\d+$`,
		`(?m)^export DSTACK_CATALOG_URL=` + regexp.QuoteMeta(dir) + `$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks %s:\n%s", re, out)
		}
	}
	if strings.Contains(out, "DSTACK_CUDO") {
		t.Errorf("cudo was not asked for:\n%s", out)
	}
	for _, f := range []string{"lambdalabs.csv", "runpod.csv"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("catalog %s: %v", f, err)
		}
	}
	if !strings.Contains(stderr.String(), "0 machine(s) alive") {
		t.Errorf("stderr: %s", stderr.String())
	}
}

func TestRunRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-fault-rate", "2"}, {"-faults", "meteor"}, {"-providers", "nosuchcloud"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append(args, "-duration", "10ms"), &stdout, &stderr); code == 0 {
			t.Errorf("%v: exit 0", args)
		}
	}
}
