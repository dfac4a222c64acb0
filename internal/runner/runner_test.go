package runner

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/agentapi"
)

type testRunner struct {
	r      *Runner
	srv    *httptest.Server
	client *agentapi.RunnerClient
	work   string
	home   string
}

func newTestRunner(t *testing.T, mod func(*Config)) *testRunner {
	t.Helper()
	dir := t.TempDir()
	cfg := Config{
		TempDir:    filepath.Join(dir, "tmp"),
		HomeDir:    filepath.Join(dir, "home"),
		WorkingDir: filepath.Join(dir, "work"),
		KillGrace:  2 * time.Second,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	if err := os.MkdirAll(cfg.HomeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(func() {
		r.stopJob(agentapi.ReasonTerminatedByServer, "test cleanup")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.waitJob(ctx)
		srv.Close()
		if r.jobLog != nil {
			r.jobLog.Close()
		}
	})
	return &testRunner{r: r, srv: srv, client: agentapi.NewRunnerClient(srv.URL, nil), work: cfg.WorkingDir, home: cfg.HomeDir}
}

func submitBody(commands ...string) agentapi.SubmitBody {
	return agentapi.SubmitBody{
		Run:     &agentapi.Run{ID: "run-id-1", RunSpec: agentapi.RunSpec{RunName: "test-run", RepoID: "repo-1", Configuration: agentapi.Configuration{Type: "task"}}},
		JobSpec: agentapi.JobSpec{JobNum: 0, JobsPerReplica: 1, Commands: commands},
	}
}

// start submits, uploads code and runs.
func (tr *testRunner) start(t *testing.T, body agentapi.SubmitBody, code []byte) {
	t.Helper()
	ctx := context.Background()
	if err := tr.client.Submit(ctx, body); err != nil {
		t.Fatal(err)
	}
	var rd io.Reader
	if code != nil {
		rd = bytes.NewReader(code)
	}
	if err := tr.client.UploadCode(ctx, rd); err != nil {
		t.Fatal(err)
	}
	if err := tr.client.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// pullAll pulls until the final state arrives and returns everything pulled.
func (tr *testRunner) pullAll(t *testing.T, timeout time.Duration) agentapi.PullResponse {
	t.Helper()
	var all agentapi.PullResponse
	var since int64
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := tr.client.Pull(context.Background(), since)
		if err != nil {
			t.Fatal(err)
		}
		all.JobStates = append(all.JobStates, resp.JobStates...)
		all.JobLogs = append(all.JobLogs, resp.JobLogs...)
		all.RunnerLogs = append(all.RunnerLogs, resp.RunnerLogs...)
		since = resp.LastUpdated
		all.LastUpdated = since
		if n := len(all.JobStates); n > 0 && all.JobStates[n-1].State.Finished() && !resp.HasMore {
			return all
		}
		if !resp.HasMore {
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Fatalf("no final state within %s: %+v", timeout, all.JobStates)
	return all
}

func output(logs []agentapi.LogEvent, stream string) string {
	var b strings.Builder
	for _, l := range logs {
		if stream == "" || l.Stream == stream {
			b.Write(l.Message)
		}
	}
	return b.String()
}

func lastState(t *testing.T, resp agentapi.PullResponse) agentapi.JobStateEvent {
	t.Helper()
	if len(resp.JobStates) == 0 {
		t.Fatal("no job states")
	}
	return resp.JobStates[len(resp.JobStates)-1]
}

func TestStateMachine(t *testing.T) {
	tr := newTestRunner(t, nil)
	ctx := context.Background()
	if err := tr.client.UploadCode(ctx, nil); !agentapi.IsStatus(err, http.StatusConflict) {
		t.Fatalf("upload_code before submit: %v", err)
	}
	if err := tr.client.Run(ctx); !agentapi.IsStatus(err, http.StatusConflict) {
		t.Fatalf("run before submit: %v", err)
	}
	if err := tr.client.Submit(ctx, submitBody("true")); err != nil {
		t.Fatal(err)
	}
	if tr.r.State() != agentapi.RunnerWaitCode {
		t.Fatalf("state %s", tr.r.State())
	}
	if err := tr.client.Submit(ctx, submitBody("true")); !agentapi.IsStatus(err, http.StatusConflict) {
		t.Fatalf("second submit: %v", err)
	}
	if err := tr.client.Run(ctx); !agentapi.IsStatus(err, http.StatusConflict) {
		t.Fatalf("run before code: %v", err)
	}
	if err := tr.client.UploadCode(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := tr.client.UploadCode(ctx, nil); !agentapi.IsStatus(err, http.StatusConflict) {
		t.Fatalf("second upload: %v", err)
	}
	if err := tr.client.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tr.client.Run(ctx); !agentapi.IsStatus(err, http.StatusConflict) {
		t.Fatalf("second run: %v", err)
	}
	resp := tr.pullAll(t, 10*time.Second)
	if st := lastState(t, resp); st.State != agentapi.JobDone || st.ExitStatus == nil || *st.ExitStatus != 0 {
		t.Fatalf("final state %+v", st)
	}
	if resp.JobStates[0].State != agentapi.JobRunning {
		t.Errorf("first state %+v", resp.JobStates[0])
	}
	// Bad JSON is a 400 even in the wrong state.
	req, _ := http.NewRequest(http.MethodPost, tr.srv.URL+"/api/submit", strings.NewReader("{"))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("bad JSON: %d", res.StatusCode)
	}
	h, err := tr.client.Healthcheck(ctx)
	if err != nil || h.Service != "dstack-runner" || h.Version == "" {
		t.Errorf("healthcheck %+v %v", h, err)
	}
}

func TestLogsAndExitStatus(t *testing.T) {
	tr := newTestRunner(t, nil)
	tr.start(t, submitBody("echo hello; echo err >&2; exit 3"), nil)
	resp := tr.pullAll(t, 10*time.Second)
	st := lastState(t, resp)
	if st.State != agentapi.JobFailed || st.TerminationReason != agentapi.ReasonContainerExitedWithError ||
		st.ExitStatus == nil || *st.ExitStatus != 3 || !strings.Contains(st.TerminationMessage, "3") {
		t.Fatalf("final state %+v", st)
	}
	if got := output(resp.JobLogs, agentapi.StreamStdout); got != "hello\n" {
		t.Errorf("stdout %q", got)
	}
	if got := output(resp.JobLogs, agentapi.StreamStderr); got != "err\n" {
		t.Errorf("stderr %q", got)
	}
	if len(resp.RunnerLogs) == 0 {
		t.Error("no runner logs")
	}
	// Timestamps are strictly increasing across all events.
	var stamps []int64
	for _, s := range resp.JobStates {
		stamps = append(stamps, s.Timestamp)
	}
	for _, l := range append(resp.JobLogs, resp.RunnerLogs...) {
		stamps = append(stamps, l.Timestamp)
	}
	seen := map[int64]bool{}
	for _, s := range stamps {
		if seen[s] {
			t.Fatalf("timestamp %d used twice", s)
		}
		seen[s] = true
	}
	// Nothing is newer than the last answer; everything is newer than 0.
	again, err := tr.client.Pull(context.Background(), resp.LastUpdated)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.JobStates)+len(again.JobLogs) != 0 || again.LastUpdated < resp.LastUpdated {
		t.Errorf("pull after the end: %+v", again)
	}
	all, _ := tr.client.Pull(context.Background(), 0)
	if output(all.JobLogs, "") != "hello\nerr\n" && output(all.JobLogs, "") != "err\nhello\n" {
		t.Errorf("pull from 0: %q", output(all.JobLogs, ""))
	}
	// A pull from just before the final state returns only it.
	part, _ := tr.client.Pull(context.Background(), st.Timestamp-1)
	if len(part.JobStates) != 1 || part.JobStates[0].State != agentapi.JobFailed {
		t.Errorf("pull from before the final state: %+v", part.JobStates)
	}
	select {
	case <-tr.r.Drained():
	default:
		t.Error("not drained after the final state was pulled")
	}
}

func TestPullPagination(t *testing.T) {
	oldEvents := pullMaxEvents
	pullMaxEvents = 2
	t.Cleanup(func() { pullMaxEvents = oldEvents })
	tr := newTestRunner(t, nil)
	tr.start(t, submitBody(`i=0; while [ $i -lt 20 ]; do echo line$i; i=$((i+1)); sleep 0.01; done`), nil)
	if err := tr.r.waitJob(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tr.r.Drained():
		t.Fatal("drained before any pull")
	default:
	}
	var since int64
	var text strings.Builder
	pulls, sawMore := 0, false
	var final *agentapi.JobStateEvent
	for {
		resp, err := tr.client.Pull(context.Background(), since)
		if err != nil {
			t.Fatal(err)
		}
		pulls++
		if len(resp.JobLogs)+len(resp.RunnerLogs) > 2 {
			t.Fatalf("%d log events in one pull", len(resp.JobLogs)+len(resp.RunnerLogs))
		}
		text.WriteString(output(resp.JobLogs, ""))
		for _, s := range resp.JobStates {
			if s.State.Finished() {
				s := s
				final = &s
			}
		}
		since = resp.LastUpdated
		if resp.HasMore {
			sawMore = true
			select {
			case <-tr.r.Drained():
				t.Fatal("drained while has_more")
			default:
			}
			continue
		}
		break
	}
	if !sawMore || pulls < 2 {
		t.Errorf("pulls %d, has_more seen %v", pulls, sawMore)
	}
	var want strings.Builder
	for i := range 20 {
		want.WriteString("line" + strconv.Itoa(i) + "\n")
	}
	if text.String() != want.String() {
		t.Errorf("output differs:\n%q\nwant\n%q", text.String(), want.String())
	}
	if final == nil || final.State != agentapi.JobDone {
		t.Errorf("final %+v", final)
	}
	select {
	case <-tr.r.Drained():
	default:
		t.Error("not drained")
	}
}

func TestStop(t *testing.T) {
	tr := newTestRunner(t, nil)
	tr.start(t, submitBody("echo started; sleep 30"), nil)
	waitOutput(t, tr, "started")
	start := time.Now()
	if err := tr.client.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp := tr.pullAll(t, 10*time.Second)
	st := lastState(t, resp)
	if st.State != agentapi.JobTerminated || st.TerminationReason != agentapi.ReasonTerminatedByServer {
		t.Fatalf("final state %+v", st)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stop took %s", d)
	}
	// A second stop changes nothing.
	if err := tr.client.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	again, _ := tr.client.Pull(context.Background(), resp.LastUpdated)
	if len(again.JobStates) != 0 {
		t.Errorf("states after a second stop: %+v", again.JobStates)
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	tr := newTestRunner(t, func(c *Config) { c.KillGrace = 300 * time.Millisecond })
	tr.start(t, submitBody("trap '' TERM; echo started; sleep 30 & wait; sleep 30"), nil)
	waitOutput(t, tr, "started")
	start := time.Now()
	if err := tr.client.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := lastState(t, tr.pullAll(t, 10*time.Second))
	if st.State != agentapi.JobTerminated {
		t.Fatalf("final state %+v", st)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("stop took %s", d)
	}
}

func TestStopBeforeRun(t *testing.T) {
	tr := newTestRunner(t, nil)
	if err := tr.client.Submit(context.Background(), submitBody("true")); err != nil {
		t.Fatal(err)
	}
	if err := tr.client.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := lastState(t, tr.pullAll(t, 5*time.Second))
	if st.State != agentapi.JobTerminated {
		t.Fatalf("final state %+v", st)
	}
	if err := tr.client.UploadCode(context.Background(), nil); !agentapi.IsStatus(err, http.StatusConflict) {
		t.Errorf("upload after stop: %v", err)
	}
}

func TestMaxDuration(t *testing.T) {
	tr := newTestRunner(t, nil)
	body := submitBody("sleep 30")
	body.JobSpec.MaxDuration = 1
	start := time.Now()
	tr.start(t, body, nil)
	st := lastState(t, tr.pullAll(t, 10*time.Second))
	if st.State != agentapi.JobTerminated || st.TerminationReason != agentapi.ReasonMaxDurationExceeded {
		t.Fatalf("final state %+v", st)
	}
	if d := time.Since(start); d < time.Second || d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestEnvAndWorkingDir(t *testing.T) {
	tr := newTestRunner(t, nil)
	body := submitBody(`echo "rank=$DSTACK_NODE_RANK nodes=$DSTACK_NODES_NUM master=$DSTACK_MASTER_NODE_IP gpus=$DSTACK_GPUS_PER_NODE/$DSTACK_GPUS_NUM run=$DSTACK_RUN_NAME"`,
		`echo "ips=$(echo "$DSTACK_NODES_IPS" | tr '\n' ,) token=$TOKEN plain=$PLAIN home=$HOME"`,
		`pwd`, `cat "$DSTACK_MPI_HOSTFILE"`)
	body.JobSpec.JobNum = 1
	body.JobSpec.JobsPerReplica = 2
	body.JobSpec.Env = map[string]string{"TOKEN": "${{ secrets.api_token }}", "PLAIN": "x"}
	body.Secrets = map[string]string{"api_token": "s3cr3t"}
	body.ClusterInfo = agentapi.ClusterInfo{JobIPs: []string{"10.0.0.1", "10.0.0.2"}, MasterJobIP: "10.0.0.1", GPUsPerJob: 4}
	wd := "sub/dir"
	body.JobSpec.WorkingDir = &wd
	tr.start(t, body, nil)
	resp := tr.pullAll(t, 10*time.Second)
	if st := lastState(t, resp); st.State != agentapi.JobDone {
		t.Fatalf("final %+v: %s", st, output(resp.JobLogs, ""))
	}
	out := output(resp.JobLogs, agentapi.StreamStdout)
	for _, want := range []string{
		"rank=1 nodes=2 master=10.0.0.1 gpus=4/8 run=test-run",
		"ips=10.0.0.1,10.0.0.2, token=s3cr3t plain=x home=" + tr.home,
		filepath.Join(tr.work, "sub/dir"),
		"10.0.0.1 slots=4\n10.0.0.2 slots=4",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestUnknownSecretFails(t *testing.T) {
	tr := newTestRunner(t, nil)
	body := submitBody("true")
	body.JobSpec.Env = map[string]string{"X": "${{ secrets.missing }}"}
	tr.start(t, body, nil)
	st := lastState(t, tr.pullAll(t, 5*time.Second))
	if st.State != agentapi.JobFailed || st.TerminationReason != agentapi.ReasonExecutorError || !strings.Contains(st.TerminationMessage, "missing") {
		t.Fatalf("final %+v", st)
	}
}

func makeTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestUploadCode(t *testing.T) {
	t.Run("tar", func(t *testing.T) {
		tr := newTestRunner(t, nil)
		code := makeTar(t, map[string]string{"hello.txt": "from the repo\n", "scripts/run.sh": "#!/bin/sh\necho script ran\n"})
		tr.start(t, submitBody("cat hello.txt", "./scripts/run.sh"), code)
		resp := tr.pullAll(t, 10*time.Second)
		if got := output(resp.JobLogs, ""); got != "from the repo\nscript ran\n" {
			t.Errorf("output %q", got)
		}
	})
	t.Run("gzip", func(t *testing.T) {
		tr := newTestRunner(t, nil)
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		_, _ = zw.Write(makeTar(t, map[string]string{"a.txt": "gz\n"}))
		_ = zw.Close()
		tr.start(t, submitBody("cat a.txt"), gz.Bytes())
		if got := output(tr.pullAll(t, 10*time.Second).JobLogs, ""); got != "gz\n" {
			t.Errorf("output %q", got)
		}
	})
	t.Run("too large", func(t *testing.T) {
		tr := newTestRunner(t, nil)
		ctx := context.Background()
		if err := tr.client.Submit(ctx, submitBody("true")); err != nil {
			t.Fatal(err)
		}
		big := bytes.Repeat([]byte("x"), agentapi.MaxCodeSize+1)
		if err := tr.client.UploadCode(ctx, bytes.NewReader(big)); !agentapi.IsStatus(err, http.StatusRequestEntityTooLarge) {
			t.Fatalf("with Content-Length: %v", err)
		}
		// Without Content-Length (chunked), the size is found while reading.
		req, _ := http.NewRequest(http.MethodPost, tr.srv.URL+"/api/upload_code", io.MultiReader(bytes.NewReader(big)))
		req.ContentLength = -1
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked: %d", res.StatusCode)
		}
		if tr.r.State() != agentapi.RunnerWaitCode {
			t.Fatalf("state %s after a refused upload", tr.r.State())
		}
		// Exactly the limit is fine (not a tar: kept, not applied).
		if err := tr.client.UploadCode(ctx, bytes.NewReader(big[:agentapi.MaxCodeSize])); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("escape", func(t *testing.T) {
		tr := newTestRunner(t, nil)
		ctx := context.Background()
		_ = tr.client.Submit(ctx, submitBody("true"))
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		_ = tw.WriteHeader(&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc"})
		_ = tw.WriteHeader(&tar.Header{Name: "link/evil", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte("x"))
		_ = tw.Close()
		if err := tr.client.UploadCode(ctx, &buf); !agentapi.IsStatus(err, http.StatusBadRequest) {
			t.Fatalf("escaping tar: %v", err)
		}
		// "../x" is confined to the working dir.
		buf.Reset()
		tw = tar.NewWriter(&buf)
		_ = tw.WriteHeader(&tar.Header{Name: "../../outside.txt", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte("x"))
		_ = tw.Close()
		if err := tr.client.UploadCode(ctx, &buf); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(tr.work, "outside.txt")); err != nil {
			t.Errorf("../ entry not confined: %v", err)
		}
	})
}

func TestLogsWebSocket(t *testing.T) {
	tr := newTestRunner(t, nil)
	tr.start(t, submitBody("echo one; sleep 0.3; echo two >&2; sleep 0.2; echo three"), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var buf bytes.Buffer
	if err := tr.client.StreamLogs(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "one\ntwo\nthree\n" {
		t.Errorf("streamed %q", buf.String())
	}
	// A late client gets everything from the start.
	buf.Reset()
	if err := tr.client.StreamLogs(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "one\ntwo\nthree\n" {
		t.Errorf("late client got %q", buf.String())
	}
}

func waitOutput(t *testing.T, tr *testRunner, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, _ := tr.client.Pull(context.Background(), 0)
		if strings.Contains(output(resp.JobLogs, ""), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q in the output", want)
}

func TestJobArgv(t *testing.T) {
	tests := []struct {
		spec agentapi.JobSpec
		want []string
	}{
		{agentapi.JobSpec{Commands: []string{"echo a", "echo b"}}, []string{"/bin/sh", "-c", "echo a && echo b"}},
		{agentapi.JobSpec{Commands: []string{"/bin/bash", "-i", "-c", "echo a && echo b"}}, []string{"/bin/bash", "-i", "-c", "echo a && echo b"}},
		{agentapi.JobSpec{Commands: []string{"sh", "-c", "x"}}, []string{"sh", "-c", "x"}},
		{agentapi.JobSpec{Commands: []string{"bash", "-lc", "x"}}, []string{"bash", "-lc", "x"}},
		{agentapi.JobSpec{Entrypoint: []string{"python", "-m"}, Commands: []string{"http.server"}}, []string{"python", "-m", "http.server"}},
		{agentapi.JobSpec{Commands: []string{"sh script.sh"}}, []string{"/bin/sh", "-c", "sh script.sh"}},
	}
	for _, tt := range tests {
		got, err := jobArgv(tt.spec)
		if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%+v: got %q, %v; want %q", tt.spec, got, err, tt.want)
		}
	}
	if _, err := jobArgv(agentapi.JobSpec{}); err == nil {
		t.Error("no commands: want an error")
	}
}

func TestSubmitBodySpec(t *testing.T) {
	legacy := agentapi.SubmitBody{RunSpec: &agentapi.RunSpec{RunName: "old"}}
	if legacy.Spec().RunName != "old" {
		t.Error("top-level run_spec ignored")
	}
	both := agentapi.SubmitBody{Run: &agentapi.Run{RunSpec: agentapi.RunSpec{RunName: "new"}}, RunSpec: &agentapi.RunSpec{RunName: "old"}}
	if both.Spec().RunName != "new" {
		t.Error("run.run_spec should win")
	}
}
