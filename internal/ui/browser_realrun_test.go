package ui_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/dstackgo/dstack/internal/server"
	"github.com/dstackgo/dstack/internal/testhost"
	"github.com/dstackgo/dstack/internal/testhost/sshserver"
)

// TestBrowserRealRun runs a real task on a real host (a local container with the real shim and
// runner, see internal/testhost) through the server's own background work, and watches its page: the
// status moves on and the output arrives while the page is open. It needs Docker and Chromium and
// skips without either.
func TestBrowserRealRun(t *testing.T) {
	chromeBin(t)
	testhost.Docker(t)
	_, jobImage := testhost.Images(t)
	agents := testhost.AgentsDir(t)
	s := newSite(t)
	s.srv.ConfigureWork(server.WorkOptions{Dir: s.dir, AgentsDir: agents, Poll: 200 * time.Millisecond, LeaseTTL: 10 * time.Second,
		HealthInterval: time.Second, DefaultImage: jobImage})
	ctx, cancel := context.WithCancel(context.Background())
	wait := s.srv.StartWork(ctx)
	t.Cleanup(func() { cancel(); wait() })

	key, err := sshserver.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	host := testhost.Start(t, key)
	spec := map[string]any{
		"configuration": map[string]any{"type": "fleet", "name": "on-prem", "ssh_config": map[string]any{
			"user": "root", "identity_file": "key", "ssh_key": map[string]any{"public": key.Public, "private": key.PrivatePEM},
			"hosts": []any{host.IP}}},
		"profile": map[string]any{"name": "default"},
	}
	s.mustAPI("member", "/api/project/main/fleets/apply", map[string]any{"plan": map[string]any{"spec": spec}, "force": false})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		f := s.mustAPI("member", "/api/project/main/fleets/get", map[string]any{"name": "on-prem"}).(map[string]any)
		insts, _ := f["instances"].([]any)
		if len(insts) == 1 && insts[0].(map[string]any)["status"] == "idle" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fleet's host is not idle: %v", f["instances"])
		}
		time.Sleep(200 * time.Millisecond)
	}

	b := newTab(t, s)
	b.signIn(s.tokens["member"])
	b.open("/projects/main/fleets", `tr[data-fleet="on-prem"]`)
	if got := b.text(`tr[data-fleet="on-prem"]`); !strings.Contains(got, "SSH fleet") || !strings.Contains(got, "1 active") || !strings.Contains(got, "ssh") {
		t.Fatalf("fleet row: %q", got)
	}

	s.apply("member", "real-task", map[string]any{"image": jobImage,
		"resources": map[string]any{"cpu": "1..", "memory": "0.1GB..", "disk": "0.1GB.."},
		"commands":  []string{`for i in 1 2 3 4 5 6 7 8; do echo "step $i of 8"; sleep 1; done; echo "finished" >&2`}})
	b.open("/projects/main/runs/real-task", "#logs")
	if st := b.text("#logs-state"); st != "Live" {
		t.Fatalf("a new run's logs are %q:\n%s", st, b.text("main"))
	}
	// The output arrives while the page is open and the job still runs.
	b.do(chromedp.Poll[chromedp.Void](`document.getElementById('logs').textContent.includes('step 3 of 8')`,
		chromedp.WithPollingTimeout(90*time.Second)))
	if st, run := b.text("#logs-state"), b.text("#run-status"); st != "Live" || run != "running" {
		t.Fatalf("mid-run: logs %q, run %q", st, run)
	}
	b.shot("27-real-run-live")
	b.do(chromedp.Poll[chromedp.Void](`document.getElementById('logs-state').textContent === 'Finished'`,
		chromedp.WithPollingTimeout(60*time.Second)))
	txt := b.text("#logs")
	for i := 1; i <= 8; i++ {
		if strings.Count(txt, "step "+string(rune('0'+i))+" of 8") != 1 {
			t.Fatalf("step %d is not shown once:\n%s", i, txt)
		}
	}
	if !strings.Contains(txt, "finished") || eval[int](b, `document.querySelectorAll('#logs .log-stderr').length`) == 0 {
		t.Fatalf("stderr:\n%s", txt)
	}
	if st := b.text("#run-status"); st != "done" {
		t.Fatalf("run after the end: %q", st)
	}
	b.do(follow("#logs-refresh"), chromedp.WaitVisible(chromedp.CSS("#history")))
	if h := b.text("#history"); !strings.Contains(h, "Run done") || !strings.Contains(h, "all jobs done") {
		t.Fatalf("history: %q", h)
	}
	b.shot("28-real-run-done")
}
