package ui_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends/fake"
)

var (
	offerRowRe = regexp.MustCompile(`<tr data-offer data-price="([0-9.e+-]+)" data-backend="([a-z]+)">`)
	attrRe     = func(name string) *regexp.Regexp { return regexp.MustCompile(name + `="([^"]*)"`) }
)

// offerPrices are the prices of the offers a page lists, in its order.
func offerPrices(t *testing.T, body string) []float64 {
	t.Helper()
	var out []float64
	for _, m := range offerRowRe.FindAllStringSubmatch(body, -1) {
		p, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func sortedAscending(ps []float64) bool {
	for i := 1; i < len(ps); i++ {
		if ps[i] < ps[i-1] {
			return false
		}
	}
	return true
}

func TestOffersPage(t *testing.T) {
	s := newSite(t)
	b := s.browser("member")

	// No backends: the empty state says so in words, with the API's explanation.
	p := b.get("/projects/main/offers")
	body := html.UnescapeString(p.Body)
	if p.Status != http.StatusOK || !strings.Contains(body, "No offers match") || !strings.Contains(body, "the project has no backends") ||
		!strings.Contains(body, `href="/projects/main/settings"`) {
		t.Fatalf("no backends: %d\n%s", p.Status, body)
	}

	s.useCatalog()
	s.mustAPI("padmin", "/api/project/main/backends/create_yaml", map[string]any{"config_yaml": ociDefault})
	if fake.Has("lambda") {
		srv := fake.Use(t, "lambda")
		code, _ := s.api("padmin", "/api/project/main/backends/create_yaml", map[string]any{"config_yaml": "type: lambda\ncreds:\n  type: api_key\n  api_key: " + srv.Bad.String("creds", "api_key") + "\n"})
		if code == http.StatusOK {
			t.Fatal("lambda with bad creds was accepted")
		}
	}

	// No filter: the cheapest offers of every backend, by price.
	p = b.get("/projects/main/offers")
	prices := offerPrices(t, p.Body)
	if p.Status != http.StatusOK || len(prices) != 50 || !sortedAscending(prices) {
		t.Fatalf("all offers: %d, %d prices %v", p.Status, len(prices), prices)
	}
	if !strings.Contains(p.Body, `id="offers-summary"`) || !strings.Contains(p.Body, "The cheapest 50 are shown") {
		t.Fatalf("summary:\n%s", p.Body)
	}

	// A GPU filter: only A10s, on-demand, at most $5 an hour, in one region.
	q := url.Values{"gpu": {"A10"}, "count": {"1.."}, "gpu_memory": {"24GB"}, "spot": {"on-demand"}, "max_price": {"5"},
		"backend": {"oci"}, "region": {"eu-frankfurt-1"}, "limit": {"20"}}
	p = b.get("/projects/main/offers?" + q.Encode())
	prices = offerPrices(t, p.Body)
	if p.Status != http.StatusOK || len(prices) == 0 || !sortedAscending(prices) {
		t.Fatalf("A10 offers: %d %v\n%s", p.Status, prices, p.Body)
	}
	rows := regexp.MustCompile(`(?s)<tr data-offer.*?</tr>`).FindAllString(p.Body, -1)
	for _, r := range rows {
		if !strings.Contains(r, "A10 24GB") || !strings.Contains(r, "eu-frankfurt-1") || strings.Contains(r, ">spot<") {
			t.Fatalf("an offer outside the filter:\n%s", r)
		}
	}
	for _, pr := range prices {
		if pr > 5 {
			t.Fatalf("price %v over the max", pr)
		}
	}
	// The form keeps the filter.
	for _, want := range []string{`name="gpu" value="A10"`, `name="gpu_memory" value="24GB"`, `<option value="on-demand" selected>`,
		`<option selected>oci</option>`, `value="eu-frankfurt-1"`, `<option value="20" selected>`} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("the form lost %s", want)
		}
	}

	// A full spec in the GPU field works as in `dstack offer --gpu`.
	p = b.get("/projects/main/offers?gpu=A10:24GB:4&spot=any")
	if prices := offerPrices(t, p.Body); len(prices) == 0 || !strings.Contains(p.Body, "4 × A10 24GB") || strings.Contains(p.Body, ">A10 24GB<") {
		t.Fatalf("A10:24GB:4: %d %v", p.Status, prices)
	}

	// Nothing matches: the empty state carries the API's explanation.
	p = b.get("/projects/main/offers?gpu=H100&max_price=0.01")
	body = html.UnescapeString(p.Body)
	if p.Status != http.StatusOK || len(offerPrices(t, p.Body)) != 0 || !strings.Contains(body, "No offers match") ||
		!strings.Contains(body, `<p class="explain">`) || !strings.Contains(body, "clear them") {
		t.Fatalf("no match: %d\n%s", p.Status, body)
	}

	// A spec the API refuses is shown in words with its status.
	p = b.get("/projects/main/offers?gpu=A10:2&count=4")
	body = html.UnescapeString(p.Body)
	if p.Status < 400 || p.Status >= 500 || !strings.Contains(body, `id="api-error"`) || !strings.Contains(body, "two count tokens") {
		t.Fatalf("bad spec: %d\n%s", p.Status, body)
	}
	p = b.get("/projects/main/offers?max_price=cheap")
	if p.Status != http.StatusBadRequest || !strings.Contains(html.UnescapeString(p.Body), "Enter the most to pay per hour") {
		t.Fatalf("bad max price: %d", p.Status)
	}

	// Someone outside the project gets the API's refusal.
	p = s.browser("outsider").get("/projects/main/offers")
	if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "Access denied") {
		t.Fatalf("outsider: %d\n%s", p.Status, p.Body)
	}
}

func TestOffersPageNotes(t *testing.T) {
	if !fake.Has("lambda") {
		t.Skip("no fake Lambda provider in this build")
	}
	s := newSite(t)
	s.useCatalog()
	srv := fake.Use(t, "lambda")
	s.mustAPI("padmin", "/api/project/main/backends/create_yaml", map[string]any{"config_yaml": ociDefault})
	s.mustAPI("padmin", "/api/project/main/backends/create_yaml", map[string]any{"config_yaml": "type: lambda\ncreds:\n  type: api_key\n  api_key: " +
		srv.Good.String("creds", "api_key") + "\n"})
	s.srv.WaitChecks()
	p := s.browser("member").get("/projects/main/offers?backend=oci")
	body := html.UnescapeString(p.Body)
	if p.Status != http.StatusOK || !strings.Contains(body, `id="backend-notes"`) || !strings.Contains(body, "<strong>lambda</strong>: not in the backends filter") {
		t.Fatalf("notes: %d\n%s", p.Status, body)
	}
}

func TestRunsPages(t *testing.T) {
	s := newSite(t)
	b := s.browser("member")

	p := b.get("/projects/main")
	if p.Status != http.StatusSeeOther || p.Location != "/projects/main/runs" {
		t.Fatalf("project root: %d %s", p.Status, p.Location)
	}
	p = b.get("/projects/main/runs")
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `id="no-runs"`) || !strings.Contains(p.Body, "No runs yet") {
		t.Fatalf("no runs: %d\n%s", p.Status, p.Body)
	}
	for _, tab := range []string{"runs", "offers", "fleets", "instances", "settings", "members"} {
		if !strings.Contains(p.Body, `href="/projects/main/`+tab+`"`) {
			t.Errorf("no %s tab", tab)
		}
	}

	s.submitTask("member", "train-a10", map[string]any{"gpu": "A10:1"}, "python train.py")
	p = b.get("/projects/main/runs")
	row := regexp.MustCompile(`(?s)<tr data-run="train-a10">.*?</tr>`).FindString(p.Body)
	if !strings.Contains(row, `badge-info">submitted`) || !strings.Contains(row, "A10:1") || !strings.Contains(row, "member") {
		t.Fatalf("submitted run:\n%s", row)
	}

	job := s.startJob("train-a10")
	t0 := time.Now().Add(-time.Minute).UTC()
	s.writeLogs("train-a10", job.ID, out(t0, "epoch 1/3\n"), errOut(t0.Add(time.Second), "warning: \x1b[33mslow disk\x1b[0m\n"),
		out(t0.Add(2*time.Second), "epoch 2/3\n"))
	p = b.get("/projects/main/runs?active=1")
	row = regexp.MustCompile(`(?s)<tr data-run="train-a10">.*?</tr>`).FindString(p.Body)
	for _, want := range []string{`badge-ok">running`, ">oci<", "eu-frankfurt-1", "A10 24GB", "15 CPU · 240GB RAM · 100GB disk", "$2"} {
		if !strings.Contains(row, want) {
			t.Errorf("running run lacks %q:\n%s", want, row)
		}
	}

	// The run page: summary, jobs, history and the logs so far.
	p = b.get("/projects/main/runs/train-a10")
	body := html.UnescapeString(p.Body)
	if p.Status != http.StatusOK {
		t.Fatalf("run page: %d\n%s", p.Status, body)
	}
	for _, want := range []string{`id="run-status"`, ">running<", "VM.GPU.A10.1", `data-submission="` + job.ID + `"`,
		`<span class="log-stdout">epoch 1/3` + "\n", `<span class="log-stderr">warning: slow disk` + "\n",
		"Run submitted", "train-a10-0-0 submitted", "on oci (eu-frankfurt-1), VM.GPU.A10.1", `id="stop"`, `data-live="1"`} {
		if !strings.Contains(body, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	start := attrRe("data-start").FindStringSubmatch(p.Body)
	seen := attrRe("data-seen").FindStringSubmatch(p.Body)
	logsURL := html.UnescapeString(attrRe("data-logs-url").FindStringSubmatch(p.Body)[1])
	if start == nil || seen == nil || seen[1] != "1" || !strings.HasPrefix(start[1], t0.Add(2*time.Second).Format("2006-01-02T15:04:05")) {
		t.Fatalf("poll position: %v %v", start, seen)
	}

	// The page's script polls the UI's logs endpoint from the last event shown (inclusive).
	s.writeLogs("train-a10", job.ID, out(t0.Add(3*time.Second), "epoch 3/3\n"))
	var upd struct {
		Logs []struct {
			Timestamp, LogSource, Message string
		} `json:"logs"`
		JobStatus string `json:"job_status"`
		RunStatus string `json:"run_status"`
		Live      bool   `json:"live"`
	}
	p = b.get(logsURL + "&start_time=" + url.QueryEscape(start[1]))
	if p.Status != http.StatusOK || p.Header.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(p.Body), &upd) != nil {
		t.Fatalf("logs endpoint: %d %s", p.Status, p.Body)
	}
	var texts []string
	for _, l := range upd.Logs {
		m, _ := base64.StdEncoding.DecodeString(l.Message)
		texts = append(texts, string(m))
	}
	if fmt.Sprint(texts) != "[epoch 2/3\n epoch 3/3\n]" || upd.JobStatus != "running" || upd.RunStatus != "running" || !upd.Live {
		t.Fatalf("logs update: %q %+v", texts, upd)
	}

	// Stop needs the form's CSRF token; with it, the run stops (aborted).
	if r := b.post("/projects/main/runs/train-a10/stop", url.Values{"csrf": {"x"}}); r.Status != http.StatusForbidden {
		t.Fatalf("stop without csrf: %d", r.Status)
	}
	if r := s.browser("outsider").post("/projects/main/runs/train-a10/stop", nil); r.Status != http.StatusForbidden ||
		!strings.Contains(r.Body, "Access denied") {
		t.Fatalf("stop as outsider: %d", r.Status)
	}
	r := b.post("/projects/main/runs/train-a10/stop", url.Values{"abort": {"on"}})
	if r.Status != http.StatusSeeOther || r.Location != "/projects/main/runs/train-a10" {
		t.Fatalf("stop: %d %s\n%s", r.Status, r.Location, r.Body)
	}
	if st := s.mustAPI("admin", "/api/project/main/runs/get", map[string]any{"run_name": "train-a10"}).(map[string]any)["status"]; st != "terminating" {
		t.Fatalf("after stop: %v", st)
	}
	if p := b.get("/projects/main/runs/train-a10"); !strings.Contains(p.Body, "Aborting run train-a10") || !strings.Contains(p.Body, `id="run-status" aria-live="polite">terminating`) {
		t.Fatalf("after stop:\n%s", p.Body)
	}

	// A failed run says why in words.
	s.submitTask("member", "broken", nil, "exit 3")
	s.startJob("broken")
	s.failJob("broken", 3)
	p = b.get("/projects/main/runs/broken")
	body = html.UnescapeString(p.Body)
	if !strings.Contains(body, `id="run-failure"`) || !strings.Contains(body, "A job failed — the container exited with an error: command exited (exit status 3)") ||
		strings.Contains(body, `id="stop"`) || !strings.Contains(body, "This job wrote no output.") || strings.Contains(body, `data-live="1"`) {
		t.Fatalf("failed run:\n%s", body)
	}
	p = b.get("/projects/main/runs")
	if row := regexp.MustCompile(`(?s)<tr data-run="broken">.*?</tr>`).FindString(html.UnescapeString(p.Body)); !strings.Contains(row, `badge-error">failed`) ||
		!strings.Contains(row, "exit status 3") {
		t.Fatalf("failed run in the list:\n%s", row)
	}

	// Unknown runs and submissions, and other people's projects, in words.
	p = b.get("/projects/main/runs/nope")
	if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "Run not found") {
		t.Fatalf("unknown run: %d\n%s", p.Status, p.Body)
	}
	p = b.get("/projects/main/runs/broken?job=00000000-0000-4000-8000-000000000000")
	if !strings.Contains(p.Body, "This run has no job submission") {
		t.Fatalf("unknown submission:\n%s", p.Body)
	}
	o := s.browser("outsider")
	for _, path := range []string{"/projects/main/runs", "/projects/main/runs/broken"} {
		if p := o.get(path); p.Status != http.StatusForbidden || !strings.Contains(p.Body, "Access denied") {
			t.Errorf("%s as outsider: %d", path, p.Status)
		}
	}
	p = o.get(logsURL)
	if p.Status != http.StatusForbidden || !strings.Contains(p.Body, `"error":"The server refused this request (403 Forbidden): Access denied"`) {
		t.Fatalf("logs as outsider: %d %s", p.Status, p.Body)
	}
}

func TestFleetsPages(t *testing.T) {
	s := newSite(t)
	b := s.browser("member")
	if p := b.get("/projects/main/fleets"); p.Status != http.StatusOK || !strings.Contains(p.Body, "No fleets yet") {
		t.Fatalf("no fleets: %d\n%s", p.Status, p.Body)
	}
	if p := b.get("/projects/main/instances"); p.Status != http.StatusOK || !strings.Contains(p.Body, "No active instances") {
		t.Fatalf("no instances: %d\n%s", p.Status, p.Body)
	}

	s.createFleet("gpu", "idle", "idle")
	s.createFleet("busy", "busy")
	p := b.get("/projects/main/fleets")
	row := regexp.MustCompile(`(?s)<tr data-fleet="gpu">.*?</tr>`).FindString(html.UnescapeString(p.Body))
	for _, want := range []string{`badge-ok">active`, "2 active", ">oci<", "eu-frankfurt-1", "A10 24GB", "15 CPU · 240GB RAM · 100GB disk", "$4", "cloud fleet"} {
		if !strings.Contains(row, want) {
			t.Errorf("fleet row lacks %q:\n%s", want, row)
		}
	}
	p = b.get("/projects/main/instances?fleet=gpu")
	if n := strings.Count(p.Body, "<tr data-instance="); n != 2 || strings.Contains(p.Body, `data-instance="busy-0"`) {
		t.Fatalf("instances of gpu: %d\n%s", n, p.Body)
	}
	p = b.get("/projects/main/instances")
	if !strings.Contains(p.Body, `data-instance="busy-0"`) || !strings.Contains(p.Body, `badge-info">busy`) {
		t.Fatalf("all instances:\n%s", p.Body)
	}
	if p := b.get("/projects/main/instances?fleet=nope"); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "not found") {
		t.Fatalf("unknown fleet: %d\n%s", p.Status, p.Body)
	}

	// Deleting a fleet in use is refused by the server, in words; an idle one goes.
	r := b.post("/projects/main/fleets/busy/delete", nil)
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "Failed to delete fleet busy. Fleet is in use.") {
		t.Fatalf("delete busy fleet: %d\n%s", r.Status, r.Body)
	}
	if r := s.browser("outsider").post("/projects/main/fleets/gpu/delete", nil); r.Status != http.StatusForbidden {
		t.Fatalf("delete as outsider: %d", r.Status)
	}
	r = b.post("/projects/main/fleets/gpu/delete", nil)
	if r.Status != http.StatusSeeOther || r.Location != "/projects/main/fleets" {
		t.Fatalf("delete: %d\n%s", r.Status, r.Body)
	}
	p = b.get("/projects/main/fleets")
	row = regexp.MustCompile(`(?s)<tr data-fleet="gpu">.*?</tr>`).FindString(p.Body)
	if !strings.Contains(p.Body, "Fleet gpu is being deleted") || !strings.Contains(row, "terminating") || strings.Contains(row, "<details") {
		t.Fatalf("after delete:\n%s", p.Body)
	}
	if p := s.browser("outsider").get("/projects/main/fleets"); p.Status != http.StatusForbidden {
		t.Fatalf("fleets as outsider: %d", p.Status)
	}
}

func TestRunsPagination(t *testing.T) {
	s := newSite(t)
	for i := range 52 {
		s.submitTask("member", fmt.Sprintf("run-%02d", i), nil, "true")
	}
	b := s.browser("member")
	p := b.get("/projects/main/runs")
	names := regexp.MustCompile(`<tr data-run="([^"]+)">`).FindAllStringSubmatch(p.Body, -1)
	more := regexp.MustCompile(`href="(/projects/main/runs\?[^"]+)">Older runs`).FindStringSubmatch(p.Body)
	if len(names) != 50 || names[0][1] != "run-51" || more == nil {
		t.Fatalf("first page: %d runs, first %v, more %v", len(names), names[0], more)
	}
	p = b.get(html.UnescapeString(more[1]))
	names = regexp.MustCompile(`<tr data-run="([^"]+)">`).FindAllStringSubmatch(p.Body, -1)
	if len(names) != 2 || names[0][1] != "run-01" || names[1][1] != "run-00" || strings.Contains(p.Body, "Older runs") {
		t.Fatalf("second page: %v", names)
	}
}

// TestNewPagesKeepTheCSP: the pages have no inline script or style, which the CSP would block.
func TestNewPagesKeepTheCSP(t *testing.T) {
	s := newSite(t)
	s.submitTask("member", "csp", nil, "true")
	s.createFleet("pool", "idle")
	b := s.browser("member")
	for _, path := range []string{"/projects/main/runs", "/projects/main/runs/csp", "/projects/main/offers", "/projects/main/fleets",
		"/projects/main/instances"} {
		p := b.get(path)
		if p.Status != http.StatusOK {
			t.Fatalf("%s: %d", path, p.Status)
		}
		if !strings.Contains(p.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("%s: CSP %q", path, p.Header.Get("Content-Security-Policy"))
		}
		if regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`).MatchString(p.Body) || strings.Contains(p.Body, " style=") ||
			strings.Contains(p.Body, "<style") || regexp.MustCompile(`\son[a-z]+=`).MatchString(p.Body) {
			t.Errorf("%s has inline script or style", path)
		}
	}
}
