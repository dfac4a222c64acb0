package ui_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/ui"
)

// Browser tests drive the real server (API and UI) in headless Chromium. They need Debian's chromium
// (scripts/chromium.sh installs it) or CHROME_BIN, and skip without one. Screenshots of each step, at
// laptop (1366x768) and phone (390x844) sizes, go to artifacts/ui/ at the repository root.

func chromeBin(t *testing.T) string {
	if b := os.Getenv("CHROME_BIN"); b != "" {
		if _, err := os.Stat(b); err == nil {
			return b
		}
		t.Skipf("CHROME_BIN=%s does not exist", b)
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium found: run scripts/chromium.sh (Debian's chromium) or set CHROME_BIN; browser tests skipped")
	return ""
}

func artifactsDir(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	out := filepath.Join(dir, "artifacts", "ui")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}

// tab is one browser tab on the site.
type tab struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
}

func newTab(t *testing.T, s *site) *tab {
	bin := chromeBin(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1366, 768),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	tb := &tab{t: t, ctx: ctx, base: s.ts.URL, shots: artifactsDir(t)}
	tb.do(chromedp.EmulateViewport(1366, 768))
	return tb
}

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		body, _ := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("body")))
		b.t.Fatalf("%v\nat %s:\n%s", err, loc, body)
	}
}

// nav runs a step that leaves the page (a link, a form's submit button, Enter in a form) and waits for
// the next page to load.
func nav(step chromedp.Action[chromedp.Void]) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.WaitEvent(cdpage.LoadEventFired, nil, step)(ctx, t)
		return err
	})
}

// follow clicks what sel finds and waits for the page it leads to.
func follow(sel string) chromedp.Action[chromedp.Void] { return nav(chromedp.Click(chromedp.CSS(sel))) }

func (b *tab) open(path string, waitFor string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS(waitFor)))
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (b *tab) value(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("value of %s: %v", sel, err)
	}
	return s
}

func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

// shot saves the page at laptop and phone sizes.
func (b *tab) shot(name string) {
	b.t.Helper()
	for _, vp := range []struct {
		suffix string
		step   chromedp.Action[chromedp.Void]
	}{
		{"laptop", chromedp.EmulateViewport(1366, 768)},
		{"phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)},
	} {
		b.do(vp.step, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`), chromedp.Sleep(150*time.Millisecond))
		png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			b.t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(b.shots, name+"-"+vp.suffix+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.do(chromedp.EmulateViewport(1366, 768))
}

func (b *tab) signIn(token string) {
	b.t.Helper()
	b.open("/projects", "#token")
	// Keyboard only: the token field has focus; type and press Enter.
	if id := eval[string](b, `document.activeElement.id`); id != "token" {
		b.t.Fatalf("the sign-in page focuses %q, not the token field", id)
	}
	b.do(chromedp.KeyEvent(token), nav(chromedp.KeyEvent("\r")), chromedp.WaitVisible(chromedp.CSS(".sidebar")))
}

const ociBad = "type: oci\nregions: [eu-frankfurt-1]\ncreds:\n  type: default\nfoo: bar\n"
const ociGood = "type: oci\nregions: [eu-frankfurt-1]\ncreds:\n  type: default\n"

// TestBrowser walks the console as a global admin, then as a project user.
func TestBrowser(t *testing.T) {
	s := newSite(t)
	b := newTab(t, s)

	t.Run("sign in", func(t *testing.T) {
		b.t = t
		b.open("/projects", "#token")
		b.shot("01-sign-in")
		b.do(chromedp.SendKeys(chromedp.CSS("#token"), "wrong-token"), nav(chromedp.KeyEvent("\r")), chromedp.WaitVisible(chromedp.CSS("#api-error")))
		if msg := b.text("#api-error"); !strings.Contains(msg, "does not accept this token") {
			t.Fatalf("bad token: %q", msg)
		}
		b.signIn(adminToken)
		if loc := eval[string](b, `location.pathname`); loc != "/projects" {
			t.Fatalf("after sign-in: %s", loc)
		}
		// The first Tab reaches the skip link, the next ones the navigation.
		b.do(chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`), chromedp.KeyEvent("\t"))
		if c := eval[string](b, `document.activeElement.className`); c != "skip-link" {
			t.Fatalf("first Tab focuses %q", c)
		}
	})

	t.Run("projects", func(t *testing.T) {
		b.t = t
		b.do(chromedp.SendKeys(chromedp.CSS("#project_name"), "research"), follow("#new-project button"),
			chromedp.WaitVisible(chromedp.CSS(".notice-ok")))
		if !strings.Contains(b.text(".notice-ok"), "Project research created") {
			t.Fatalf("flash: %q", b.text(".notice-ok"))
		}
		b.open("/projects", "table")
		b.shot("02-projects")
	})

	t.Run("backend by YAML with an error, then fixed", func(t *testing.T) {
		b.t = t
		b.open("/projects/main/settings", ".empty")
		b.shot("03-settings-empty")
		b.do(follow(`main a[href="/projects/main/backends/new"]`), chromedp.WaitVisible(chromedp.CSS(".type-grid")))
		b.shot("04-backend-types")
		b.do(follow(`a[href$="type=oci"]`), chromedp.WaitVisible(chromedp.CSS("#config_yaml")))
		if v := b.value("#config_yaml"); !strings.HasPrefix(v, "type: oci\n") {
			t.Fatalf("template: %q", v)
		}
		b.do(chromedp.SetValue(chromedp.CSS("#config_yaml"), ociBad), follow("main form .btn-primary"),
			chromedp.WaitVisible(chromedp.CSS("#yaml-errors")))
		errs := b.text("#yaml-errors")
		if !strings.Contains(errs, "Line 5, column 1") || !strings.Contains(errs, "foo") || !strings.Contains(errs, `unknown key "foo"`) {
			t.Fatalf("errors: %q", errs)
		}
		if lines := eval[[]int](b, `[...document.querySelectorAll('.editor-gutter span.err')].map(e => +e.dataset.line)`); fmt.Sprint(lines) != "[5]" {
			t.Fatalf("marked lines: %v", lines)
		}
		if hl := eval[int](b, `document.querySelectorAll('.editor-hl div.err').length`); hl != 1 {
			t.Fatalf("highlighted rows: %d", hl)
		}
		// The editor has focus with line 5 selected, ready to fix.
		if sel := eval[string](b, `(() => { const t = document.activeElement; return t.id + ":" + t.value.slice(t.selectionStart, t.selectionEnd) })()`); sel != "config_yaml:foo: bar" {
			t.Fatalf("selection: %q", sel)
		}
		b.shot("05-yaml-error")
		b.do(chromedp.SetValue(chromedp.CSS("#config_yaml"), ociGood), follow("main form .btn-primary"),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-backend="oci"]`)))
		if st := b.text(`tr[data-backend="oci"] .badge`); st != "valid" {
			t.Fatalf("state: %q", st)
		}
		if f := b.text(".notice-ok"); !strings.Contains(f, "Backend oci added") {
			t.Fatalf("flash: %q", f)
		}
	})

	t.Run("edit", func(t *testing.T) {
		b.t = t
		b.do(follow(`tr[data-backend="oci"] a.btn-secondary`), chromedp.WaitVisible(chromedp.CSS("#config_yaml")))
		v := b.value("#config_yaml")
		if !strings.Contains(v, "type: oci") || !strings.Contains(v, "eu-frankfurt-1") {
			t.Fatalf("get_yaml: %q", v)
		}
		b.do(chromedp.SetValue(chromedp.CSS("#config_yaml"), v+"compartment_id: ocid1.compartment.oc1..ui\n"),
			follow("main form .btn-primary"), chromedp.WaitVisible(chromedp.CSS(`tr[data-backend="oci"]`)))
		if got := b.text(`tr[data-backend="oci"]`); !strings.Contains(got, "compartment_id=ocid1.compartment.oc1..ui") {
			t.Fatalf("after edit: %q", got)
		}
	})

	t.Run("backend by form, credentials masked", func(t *testing.T) {
		b.t = t
		b.open("/projects/main/backends/new?type=aws&mode=form", "#f-creds-access_key-access_key")
		b.do(chromedp.SendKeys(chromedp.CSS("#f-regions"), "us-east-1, us-west-2"),
			chromedp.SendKeys(chromedp.CSS("#f-creds-access_key-access_key"), "AKIABROWSER"),
			follow(".backend-form .btn-primary"), chromedp.WaitVisible(chromedp.CSS("#f-creds-access_key-secret_key-error")))
		if msg := b.text("#f-creds-access_key-secret_key-error"); msg == "" {
			t.Fatal("no message at the secret key")
		}
		if id := eval[string](b, `document.activeElement.id`); id != "f-creds-access_key-secret_key" {
			t.Fatalf("focus after the error: %q", id)
		}
		b.shot("06-form-error")
		b.do(chromedp.KeyEvent("browser-secret-key"), follow(".backend-form .btn-primary"),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-backend="aws"]`)))
		if got := b.text(`tr[data-backend="aws"]`); !strings.Contains(got, "us-east-1, us-west-2") || strings.Contains(got, "browser-secret-key") {
			t.Fatalf("aws row: %q", got)
		}
		b.open("/projects/main/backends/aws", "#show-creds")
		v := b.value("#config_yaml")
		if strings.Contains(v, "browser-secret-key") || strings.Contains(v, "AKIABROWSER") || !strings.Contains(v, ui.Mask) {
			t.Fatalf("masked: %q", v)
		}
		b.shot("07-edit-masked")
		b.do(follow("#show-creds"), chromedp.WaitVisible(chromedp.CSS("#hide-creds")))
		if v := b.value("#config_yaml"); !strings.Contains(v, "browser-secret-key") {
			t.Fatalf("revealed: %q", v)
		}
		// Saving the masked text keeps the stored secret.
		b.open("/projects/main/backends/aws", "#show-creds")
		v = strings.Replace(b.value("#config_yaml"), "us-west-2", "eu-west-1", 1)
		b.do(chromedp.SetValue(chromedp.CSS("#config_yaml"), v), follow("main form .btn-primary"),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-backend="aws"]`)))
		info := s.mustAPI("admin", "/api/project/main/backends/aws/config_info", nil).(map[string]any)
		if info["creds"].(map[string]any)["secret_key"] != "browser-secret-key" || fmt.Sprint(info["regions"]) != "[us-east-1 eu-west-1]" {
			t.Fatalf("stored: %v", info)
		}
	})

	t.Run("credentials checked against the provider", func(t *testing.T) {
		b.t = t
		if !fake.Has("lambda") {
			t.Skip("no fake Lambda provider in this build")
		}
		srv := fake.Use(t, "lambda")
		b.open("/projects/main/backends/new?type=lambda", "#config_yaml")
		bad := ui.DumpYAML(srv.Bad.Values)
		b.do(chromedp.SetValue(chromedp.CSS("#config_yaml"), bad), follow("main form .btn-primary"),
			chromedp.WaitVisible(chromedp.CSS("#yaml-errors")))
		if msg := b.text("#api-error") + b.text("#yaml-errors"); !strings.Contains(msg, "The provider refused the credentials") || !strings.Contains(msg, "Invalid credentials") {
			t.Fatalf("invalid credentials: %q", msg)
		}
		want := 0
		for i, l := range strings.Split(bad, "\n") {
			if strings.Contains(l, "api_key:") {
				want = i + 1
			}
		}
		if lines := eval[[]int](b, `[...document.querySelectorAll('.editor-gutter span.err')].map(e => +e.dataset.line)`); fmt.Sprint(lines) != fmt.Sprintf("[%d]", want) {
			t.Fatalf("marked lines %v, want the api_key line %d:\n%s", lines, want, bad)
		}
		b.shot("08-invalid-credentials")
		b.do(chromedp.SetValue(chromedp.CSS("#config_yaml"), ui.DumpYAML(srv.Good.Values)), follow("main form .btn-primary"),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-backend="lambda"]`)))
		if st := b.text(`tr[data-backend="lambda"] .badge`); st != "valid" {
			t.Fatalf("lambda: %q", st)
		}
	})

	t.Run("delete", func(t *testing.T) {
		b.t = t
		b.open("/projects/main/settings", `tr[data-backend="oci"]`)
		b.do(chromedp.Click(chromedp.CSS(`tr[data-backend="oci"] summary`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-backend="oci"] .confirm-pop button`)))
		b.shot("09-settings-confirm-delete")
		b.do(follow(`tr[data-backend="oci"] .confirm-pop button`),
			chromedp.WaitNotPresent(chromedp.CSS(`tr[data-backend="oci"]`)))
		if f := b.text(".notice-ok"); !strings.Contains(f, "Backend oci deleted") {
			t.Fatalf("flash: %q", f)
		}
		b.shot("10-settings-backends")
	})

	t.Run("members", func(t *testing.T) {
		b.t = t
		b.open("/projects/main/members", "#members")
		b.do(chromedp.SetValue(chromedp.CSS(`select[name="role:member"]`), "manager"), follow("#save-roles"),
			chromedp.WaitVisible(chromedp.CSS(".notice-ok")))
		if v := b.value(`select[name="role:member"]`); v != "manager" {
			t.Fatalf("role after save: %q", v)
		}
		b.do(chromedp.SendKeys(chromedp.CSS("#add-username"), "outsider"),
			follow(`form[action$="/members/add"] button`),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-member="outsider"]`)))
		b.shot("11-members")
		b.do(follow(`tr[data-member="outsider"] button`), chromedp.WaitNotPresent(chromedp.CSS(`tr[data-member="outsider"]`)))
		// Set member back to a project user for the access checks below.
		b.do(chromedp.SetValue(chromedp.CSS(`select[name="role:member"]`), "user"), follow("#save-roles"),
			chromedp.WaitVisible(chromedp.CSS(".notice-ok")))
	})

	t.Run("users", func(t *testing.T) {
		b.t = t
		b.open("/users", "#users")
		b.do(chromedp.SendKeys(chromedp.CSS("#new-username"), "dana"), chromedp.SendKeys(chromedp.CSS("#new-email"), "dana@example.com"),
			follow(`form[action="/users"] button`), chromedp.WaitVisible(chromedp.CSS("#new-token")))
		tok := b.text("#token-value")
		if len(tok) < 30 {
			t.Fatalf("token: %q", tok)
		}
		b.shot("12-users-new-token")
		b.do(chromedp.SetValue(chromedp.CSS(`tr[data-user="dana"] select`), "admin"),
			follow(`tr[data-user="dana"] form[action$="/role"] button`), chromedp.WaitVisible(chromedp.CSS(".notice-ok")))
		if v := b.value(`tr[data-user="dana"] select`); v != "admin" {
			t.Fatalf("dana's role: %q", v)
		}
		b.do(follow(`tr[data-user="dana"] form[action$="/token"] button`), chromedp.WaitVisible(chromedp.CSS("#new-token")))
		if b.text("#token-value") == tok {
			t.Fatal("the token did not change")
		}
		b.open("/account", "#token-title")
		b.shot("13-account")
	})

	t.Run("a project user is refused by the server", func(t *testing.T) {
		b.t = t
		b.do(follow(".signout button"), chromedp.WaitVisible(chromedp.CSS("#token")))
		b.signIn(s.tokens["member"])
		b.open("/projects/main/settings", `tr[data-backend="aws"]`)
		if n := eval[int](b, `document.querySelectorAll('tr[data-backend] a, tr[data-backend] button, a[href$="/backends/new"]').length`); n != 0 {
			t.Fatalf("a project user is offered %d backend actions", n)
		}
		b.shot("14-settings-as-project-user")
		// The UI's own request for the credentials: the page shows the API's refusal in words.
		b.open("/projects/main/backends/aws?show=creds", "#api-error")
		msg := b.text("#api-error")
		if !strings.Contains(msg, "403") || !strings.Contains(msg, "Access denied") || strings.Contains(b.text("body"), "browser-secret-key") {
			t.Fatalf("creds as a project user: %q", msg)
		}
		b.shot("15-access-denied")
		// The UI's own form posts, sent from the page with a valid session and CSRF token.
		before := fmt.Sprint(s.mustAPI("admin", "/api/projects/main/get", nil).(map[string]any)["backends"])
		b.open("/account", "#token-title")
		for _, c := range []struct{ path, body string }{
			{"/projects/main/backends/aws/delete", ""},
			{"/projects/main/backends/new", "mode=yaml&type=oci&config_yaml=" + strings.ReplaceAll(ociGood, "\n", "%0A")},
			{"/projects/main/backends/aws", "config_yaml=type%3A%20aws%0Acreds%3A%0A%20%20type%3A%20default%0A"},
		} {
			js := fmt.Sprintf(`fetch(%q, {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"},
				body: "csrf=" + document.querySelector("input[name=csrf]").value + "&" + %q})
				.then(async r => r.status + " " + (await r.text()).includes("Access denied"))`, c.path, c.body)
			if got := eval[string](b, js); got != "403 true" {
				t.Errorf("POST %s as a project user: %s", c.path, got)
			}
		}
		if after := fmt.Sprint(s.mustAPI("admin", "/api/projects/main/get", nil).(map[string]any)["backends"]); after != before {
			t.Fatalf("backends changed:\n%s\n%s", before, after)
		}
	})
}
