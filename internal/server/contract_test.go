package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dstackgo/dstack/internal/testutil"
)

// exchange is one recorded request of the original CLI to the original server.
type exchange struct {
	Seq            int               `json:"seq"`
	Method         string            `json:"method"`
	Path           string            `json:"path"`
	RequestHeaders map[string]string `json:"request_headers"`
	RequestBody    any               `json:"request_body"`
	Status         int               `json:"status"`
	ResponseBody   any               `json:"response_body"`
}

// contractFiles are the recordings whose endpoints this server implements, in recording order (the
// server's state carries over from one to the next); requests to endpoints that other issues bring
// are skipped by implemented().
var contractFiles = []string{"00-project-add", "02-fleet-list", "05-ps-a", "06-apply-ssh-fleet",
	"07-fleet-list-with-ssh-fleet", "08-fleet-delete", "09-apply-task-detached", "10-ps-a-after-task",
	"11-ps-a-verbose-json", "12-stop-run", "13-logs-run", "14-metrics-run", "15-apply-task-retry-detached",
	"16-ps-active", "17-stop-active-run", "18-ps-a-after-stop", "19-gateway-list", "23-fleet-list-after-delete",
	"24-backends-list-types", "26-backends-create-yaml-unknown-field",
	"27-users-list", "28-users-get-my-user", "29-projects-list", "30-projects-get", "31-server-get-info",
	"32-wrong-token", "33-no-token", "34-api-version-mismatch", "35-runs-get-plan", "36-runs-list-get-delete",
	"37-instances-list", "38-logs-poll", "39-misc-errors",
	"44-fleet-get-missing-json", "45-apply-ssh-fleet-detached", "46-reapply-ssh-fleet-detached",
	"47-fleet-get-json", "48-fleet-delete-instance", "49-fleet-delete-again"}

// implemented tells the endpoints of other issues (volumes, secrets, events), which their own tests
// replay.
func implemented(path string) bool {
	for _, p := range []string{"/volumes/", "/secrets/", "/events/"} {
		if strings.Contains(path, p) {
			return false
		}
	}
	return true
}

// TestRecordedExchanges replays the original CLI's recorded requests against this server and checks
// that each answer has the recorded status and the same JSON shape: the same keys at every level, the
// same types, and the same text for error messages (values such as ids and times differ by nature).
func TestRecordedExchanges(t *testing.T) {
	dir := filepath.Join(testutil.SharedDir(t), "reference", "api-exchanges")
	e := newEnv(t)
	e.startWork()
	ids := map[string]string{} // recorded id -> ours, learnt from responses
	checked := 0
	for _, name := range contractFiles {
		e.settle() // time passed between the recorded scenarios
		f, err := os.Open(filepath.Join(dir, name+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<22)
		for sc.Scan() {
			var ex exchange
			if err := json.Unmarshal(sc.Bytes(), &ex); err != nil {
				t.Fatal(err)
			}
			if !implemented(ex.Path) {
				continue
			}
			t.Run(fmt.Sprintf("%s/%d", name, ex.Seq), func(t *testing.T) {
				code, body := e.replay(ex, ids)
				if code != ex.Status {
					t.Fatalf("%s %s: status %d, recorded %d; body %v", ex.Method, ex.Path, code, ex.Status, body)
				}
				if err := sameShape(ex.ResponseBody, body, "$", ex.Status >= 400); err != nil {
					t.Fatalf("%s %s: %v\nours:     %v\nrecorded: %v", ex.Method, ex.Path, err, body, ex.ResponseBody)
				}
				learnIDs(ex.ResponseBody, body, ids)
			})
			checked++
		}
		f.Close()
	}
	if checked < 30 {
		t.Fatalf("only %d recorded exchanges replayed", checked)
	}
}

func (e *env) replay(ex exchange, ids map[string]string) (int, any) {
	var body io.Reader
	switch b := ex.RequestBody.(type) {
	case nil:
	case string: // recorded raw, e.g. broken JSON
		body = strings.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		text := string(data)
		for rec, ours := range ids {
			text = strings.ReplaceAll(text, rec, ours)
		}
		body = strings.NewReader(text)
	}
	req, _ := http.NewRequest(ex.Method, e.ts.URL+ex.Path, body)
	for k, v := range ex.RequestHeaders {
		switch strings.ToLower(k) {
		case "authorization":
			v = strings.ReplaceAll(v, "<token>", adminToken)
			v = strings.ReplaceAll(v, "<wrong-token>", "00000000-0000-4000-8000-000000000000")
			req.Header.Set(k, v)
		case "x-api-version", "content-type":
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out any
	if json.Unmarshal(data, &out) != nil {
		out = string(data)
	}
	return resp.StatusCode, out
}

// sameShape compares two JSON values structurally. Error bodies must also carry the same codes and,
// except for validation texts that quote the original's Python library, the same messages.
func sameShape(want, got any, path string, isError bool) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %T", path, got)
		}
		for k := range w {
			if _, ok := g[k]; !ok {
				return fmt.Errorf("%s: key %q missing", path, k)
			}
		}
		for _, k := range sortedKeys(w) {
			if err := sameShape(w[k], g[k], path+"."+k, isError); err != nil {
				return err
			}
		}
		if isError {
			if code, ok := w["code"]; ok && fmt.Sprint(code) != fmt.Sprint(g["code"]) {
				return fmt.Errorf("%s.code: want %v, got %v", path, code, g["code"])
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Errorf("%s: want a list, got %T", path, got)
		}
		if isError && len(w) != len(g) {
			return fmt.Errorf("%s: want %d items, got %d", path, len(w), len(g))
		}
		if len(w) > 0 && len(g) > 0 {
			return sameShape(w[0], g[0], path+"[0]", isError)
		}
	case string:
		g, ok := got.(string)
		if !ok {
			return fmt.Errorf("%s: want a string, got %T", path, got)
		}
		pydantic := strings.Contains(w, "validation error") // quotes the original's Python library
		if isError && (strings.HasSuffix(path, ".msg") && !pydantic || path == "$.detail") && w != g {
			return fmt.Errorf("%s: want %q, got %q", path, w, g)
		}
	case nil:
		// null in the recording: ours may be null or a value (optional fields).
	default:
		if fmt.Sprintf("%T", want) != fmt.Sprintf("%T", got) && got != nil {
			return fmt.Errorf("%s: want %T, got %T", path, want, got)
		}
	}
	return nil
}

// learnIDs pairs the UUIDs of a recorded response with ours at the same places, so that later
// requests naming a recorded id (runs/get by id) name ours instead.
func learnIDs(want, got any, ids map[string]string) {
	switch w := want.(type) {
	case map[string]any:
		if g, ok := got.(map[string]any); ok {
			for k, v := range w {
				learnIDs(v, g[k], ids)
			}
		}
	case []any:
		if g, ok := got.([]any); ok {
			for i := 0; i < len(w) && i < len(g); i++ {
				learnIDs(w[i], g[i], ids)
			}
		}
	case string:
		if g, ok := got.(string); ok && w != g && uuidRe.MatchString(w) && uuidRe.MatchString(g) {
			ids[w] = g
		}
	}
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
