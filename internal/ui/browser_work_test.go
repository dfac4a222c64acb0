package ui_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/dstackgo/dstack/internal/models"
)

// TestBrowserWork walks the pages users live in, as a project user: offers with a filter, runs, a
// run's page with its logs arriving live, stop, and fleets.
func TestBrowserWork(t *testing.T) {
	s := newSite(t)
	s.useCatalog()
	s.mustAPI("padmin", "/api/project/main/backends/create_yaml", map[string]any{"config_yaml": ociDefault})
	b := newTab(t, s)

	t.Run("runs, empty", func(t *testing.T) {
		b.t = t
		b.signIn(s.tokens["member"])
		b.do(follow(`a[href="/projects/main/runs"]`), chromedp.WaitVisible(chromedp.CSS("#no-runs")))
		if cur := b.text(`nav.tabs a[aria-current="page"]`); cur != "Runs" {
			t.Fatalf("current tab: %q", cur)
		}
		b.shot("16-runs-empty")
	})

	t.Run("offers with a filter, by price", func(t *testing.T) {
		b.t = t
		b.do(follow(`nav.tabs a[href="/projects/main/offers"]`), chromedp.WaitVisible(chromedp.CSS("#offers")))
		if n := eval[int](b, `document.querySelectorAll('#offers tbody tr').length`); n != 50 {
			t.Fatalf("unfiltered offers: %d", n)
		}
		// Keyboard only: type the filter and press Enter in a field.
		b.do(chromedp.Focus(chromedp.CSS("#f-gpu")), chromedp.KeyEvent("A10"),
			chromedp.SetValue(chromedp.CSS("#f-spot"), "on-demand"), chromedp.SetValue(chromedp.CSS("#f-limit"), "20"),
			chromedp.Focus(chromedp.CSS("#f-max-price")), chromedp.KeyEvent("10"),
			nav(chromedp.KeyEvent("\r")), chromedp.WaitVisible(chromedp.CSS("#offers")))
		if q := eval[string](b, `location.search`); !strings.Contains(q, "gpu=A10") || !strings.Contains(q, "max_price=10") {
			t.Fatalf("query: %s", q)
		}
		prices := eval[[]float64](b, `[...document.querySelectorAll('#offers tbody tr')].map(r => +r.dataset.price)`)
		gpus := eval[[]string](b, `[...document.querySelectorAll('#offers td[data-label="GPU"]')].map(td => td.textContent.trim())`)
		spots := eval[[]string](b, `[...document.querySelectorAll('#offers td[data-label="Spot"]')].map(td => td.textContent.trim())`)
		if len(prices) != 20 || !sortedAscending(prices) || prices[len(prices)-1] > 10 {
			t.Fatalf("prices: %v", prices)
		}
		for i, g := range gpus {
			if !strings.Contains(g, "A10") || spots[i] != "on-demand" {
				t.Fatalf("offer %d: %s %s", i, g, spots[i])
			}
		}
		if sum := b.text("#offers-summary"); !strings.Contains(sum, fmt.Sprintf("$%g", prices[0])) {
			t.Fatalf("summary: %q (cheapest %v)", sum, prices[0])
		}
		b.shot("17-offers-filtered")
		b.do(chromedp.SetValue(chromedp.CSS("#f-max-price"), "0.01"), follow(`#offer-filter button[type="submit"]`),
			chromedp.WaitVisible(chromedp.CSS("#no-offers")))
		if msg := b.text("#no-offers"); !strings.Contains(msg, "No offers match") || !strings.Contains(msg, "clear them") {
			t.Fatalf("no offers: %q", msg)
		}
		b.shot("18-offers-none")
	})

	var job *models.Job
	t.Run("a run's logs arrive", func(t *testing.T) {
		b.t = t
		s.submitTask("member", "train-a10", map[string]any{"gpu": "A10:1"}, "python train.py")
		job = s.startJob("train-a10")
		t0 := time.Now().Add(-time.Minute)
		for i := range 12 {
			s.writeLogs("train-a10", job.ID, out(t0.Add(time.Duration(i)*time.Second), fmt.Sprintf("step %3d  loss %.3f\n", i*10, 2.5/float64(i+1))))
		}
		s.writeLogs("train-a10", job.ID, errOut(t0.Add(13*time.Second), "warning: dataloader is slow\n"))
		b.open("/projects/main/runs", `tr[data-run="train-a10"]`)
		b.do(follow(`tr[data-run="train-a10"] a`), chromedp.WaitVisible(chromedp.CSS("#logs")))
		if txt := b.text("#logs"); !strings.Contains(txt, "step   0") || !strings.Contains(txt, "step 110") || !strings.Contains(txt, "dataloader is slow") {
			t.Fatalf("logs so far: %q", txt)
		}
		// New output while the page is open: the script fetches it.
		for i := range 3 {
			s.writeLogs("train-a10", job.ID, out(time.Now(), fmt.Sprintf("epoch %d done\n", i+1)))
			time.Sleep(300 * time.Millisecond)
		}
		b.do(chromedp.Poll[chromedp.Void](`document.getElementById('logs').textContent.includes('epoch 3 done')`,
			chromedp.WithPollingTimeout(15*time.Second)))
		txt := b.text("#logs")
		if strings.Count(txt, "epoch 1 done") != 1 || strings.Count(txt, "dataloader is slow") != 1 {
			t.Fatalf("events shown twice or lost:\n%s", txt)
		}
		if st := b.text("#logs-state"); st != "Live" {
			t.Fatalf("state: %q", st)
		}
		if n := eval[int](b, `document.querySelectorAll('#logs .log-stderr').length`); n != 1 {
			t.Fatalf("stderr chunks: %d", n)
		}
		b.shot("19-run-logs")
	})

	t.Run("stop, with the keyboard", func(t *testing.T) {
		b.t = t
		b.do(chromedp.Focus(chromedp.CSS("#stop summary")), chromedp.KeyEvent("\r"),
			chromedp.WaitVisible(chromedp.CSS("#stop-abort")), chromedp.KeyEvent("\t"))
		if id := eval[string](b, `document.activeElement.id`); id != "stop-abort" {
			t.Fatalf("focus in the confirmation: %q", id)
		}
		b.do(chromedp.KeyEvent(" "), chromedp.KeyEvent("\t"))
		b.shot("20-run-stop-confirm")
		b.do(nav(chromedp.KeyEvent("\r")), chromedp.WaitVisible(chromedp.CSS(".notice-ok")))
		if f := b.text(".notice-ok"); !strings.Contains(f, "Aborting run train-a10") {
			t.Fatalf("flash: %q", f)
		}
		if st := b.text("#run-status"); st != "terminating" {
			t.Fatalf("status: %q", st)
		}
		// The job ends; the page notices by itself.
		s.updateJob(job.ID, func(j *models.Job) {
			now := time.Now()
			j.Status, j.StatusMessage, j.FinishedAt = models.JobAborted, models.JobAborted, &now
			j.TerminationReason = models.JobAbortedByUser
		})
		s.updateRun("train-a10", func(r *models.Run) {
			r.Status, r.StatusMessage, r.TerminationReason = models.RunTerminated, models.RunTerminated, models.RunAbortedByUser
		})
		b.do(chromedp.Poll[chromedp.Void](`document.getElementById('logs-state').textContent === 'Finished'`, chromedp.WithPollingTimeout(15*time.Second)))
		if st := b.text("#run-status"); st != "terminated" {
			t.Fatalf("status after the end: %q", st)
		}
		b.do(follow("#logs-refresh"), chromedp.WaitVisible(chromedp.CSS("#history")))
		if h := b.text("#history"); !strings.Contains(h, "aborted by a user") {
			t.Fatalf("history: %q", h)
		}
		b.shot("21-run-stopped")
	})

	t.Run("a failed run", func(t *testing.T) {
		b.t = t
		s.submitTask("member", "broken", nil, "python crash.py")
		j := s.startJob("broken")
		now := time.Now()
		s.writeLogs("broken", j.ID, out(now, "loading model\n"), errOut(now.Add(time.Millisecond),
			"Traceback (most recent call last):\n  File \"crash.py\", line 3, in <module>\nRuntimeError: CUDA out of memory\n"))
		s.failJob("broken", 1)
		b.open("/projects/main/runs/broken", "#run-failure")
		if msg := b.text("#run-failure"); !strings.Contains(msg, "the container exited with an error") || !strings.Contains(msg, "exit status 1") {
			t.Fatalf("failure: %q", msg)
		}
		b.shot("22-run-failed")
		s.submitTask("member", "llama-serve", map[string]any{"gpu": "80GB..:8"}, "vllm serve")
		b.open("/projects/main/runs", `tr[data-run="broken"]`)
		if n := eval[int](b, `document.querySelectorAll('#runs tbody tr').length`); n != 3 {
			t.Fatalf("runs listed: %d", n)
		}
		if first := eval[string](b, `document.querySelector('#runs tbody tr').dataset.run`); first != "llama-serve" {
			t.Fatalf("newest first: %s", first)
		}
		b.shot("23-runs")
	})

	t.Run("fleets", func(t *testing.T) {
		b.t = t
		s.createFleet("gpu-pool", "idle", "idle")
		s.createFleet("busy-pool", "busy")
		b.do(follow(`nav.tabs a[href="/projects/main/fleets"]`), chromedp.WaitVisible(chromedp.CSS(`tr[data-fleet="gpu-pool"]`)))
		b.shot("24-fleets")
		b.do(chromedp.Click(chromedp.CSS(`tr[data-fleet="gpu-pool"] summary`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-fleet="gpu-pool"] .confirm-pop button`)))
		b.shot("25-fleet-confirm-delete")
		b.do(follow(`tr[data-fleet="gpu-pool"] .confirm-pop button`), chromedp.WaitVisible(chromedp.CSS(".notice-ok")))
		if st := b.text(`tr[data-fleet="gpu-pool"] .badge`); st != "terminating" {
			t.Fatalf("after delete: %q", st)
		}
		// The server refuses to delete a fleet in use; the page says so.
		b.do(chromedp.Click(chromedp.CSS(`tr[data-fleet="busy-pool"] summary`)),
			follow(`tr[data-fleet="busy-pool"] .confirm-pop button`), chromedp.WaitVisible(chromedp.CSS("#api-error")))
		if msg := b.text("#api-error"); !strings.Contains(msg, "Fleet is in use") {
			t.Fatalf("busy fleet: %q", msg)
		}
		b.do(follow(`nav.tabs a[href="/projects/main/instances"]`), chromedp.WaitVisible(chromedp.CSS("#instances")))
		b.shot("26-instances")
	})
}
