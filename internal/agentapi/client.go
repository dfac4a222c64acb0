package agentapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// HTTPError is a non-2xx answer of an agent.
type HTTPError struct {
	Method     string
	Path       string
	StatusCode int
	Body       string
}

func (e *HTTPError) Error() string {
	msg := strings.TrimSpace(e.Body)
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	if msg == "" {
		return fmt.Sprintf("%s %s: HTTP %d", e.Method, e.Path, e.StatusCode)
	}
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.StatusCode, msg)
}

// IsStatus reports whether err is an *HTTPError with the status code.
func IsStatus(err error, code int) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.StatusCode == code
}

// DefaultTimeout is the timeout of the http.Client the constructors use when given none.
const DefaultTimeout = 30 * time.Second

type base struct {
	url string
	hc  *http.Client
}

func newBase(baseURL string, hc *http.Client) base {
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	return base{url: strings.TrimRight(baseURL, "/"), hc: hc}
}

// do sends method path with body (a value encoded as JSON, an io.Reader sent as is, or nil) and decodes
// a 2xx answer into out (nil discards it).
func (b base) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	contentType := ""
	switch v := body.(type) {
	case nil:
	case io.Reader:
		rd = v
		contentType = "application/octet-stream"
	default:
		data, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(data)
		contentType = "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, b.url+path, rd)
	if err != nil {
		return err
	}
	if rd == nil && method == http.MethodPost {
		req.Body = http.NoBody
		req.ContentLength = 0
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &HTTPError{Method: method, Path: path, StatusCode: resp.StatusCode, Body: string(msg)}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

// ShimClient talks to one dstack-shim (API v2).
type ShimClient struct{ base }

// NewShimClient returns a client for the shim at baseURL (for example http://127.0.0.1:10998). hc may
// dial through an SSH connection; nil uses a plain client with DefaultTimeout.
func NewShimClient(baseURL string, hc *http.Client) *ShimClient {
	return &ShimClient{newBase(baseURL, hc)}
}

// Healthcheck calls GET /api/healthcheck.
func (c *ShimClient) Healthcheck(ctx context.Context) (HealthcheckResponse, error) {
	var r HealthcheckResponse
	err := c.do(ctx, http.MethodGet, "/api/healthcheck", nil, &r)
	return r, err
}

// InstanceHealth calls GET /api/instance/health.
func (c *ShimClient) InstanceHealth(ctx context.Context) (InstanceHealthResponse, error) {
	var r InstanceHealthResponse
	err := c.do(ctx, http.MethodGet, "/api/instance/health", nil, &r)
	return r, err
}

// ListTasks calls GET /api/tasks.
func (c *ShimClient) ListTasks(ctx context.Context) (TaskListResponse, error) {
	var r TaskListResponse
	err := c.do(ctx, http.MethodGet, "/api/tasks", nil, &r)
	return r, err
}

// GetTask calls GET /api/tasks/{id}; an unknown task is an *HTTPError with 404.
func (c *ShimClient) GetTask(ctx context.Context, id string) (TaskInfo, error) {
	var r TaskInfo
	err := c.do(ctx, http.MethodGet, "/api/tasks/"+url.PathEscape(id), nil, &r)
	return r, err
}

// SubmitTask calls POST /api/tasks. The shim answers at once and pulls, creates and starts the
// container in the background; poll GetTask until TaskRunning or TaskTerminated. A task with the same
// id is an *HTTPError with 409.
func (c *ShimClient) SubmitTask(ctx context.Context, cfg TaskConfig) (TaskInfo, error) {
	var r TaskInfo
	err := c.do(ctx, http.MethodPost, "/api/tasks", cfg, &r)
	return r, err
}

// TerminateTask calls POST /api/tasks/{id}/terminate and returns once the container is stopped.
func (c *ShimClient) TerminateTask(ctx context.Context, id string, req TerminateRequest) (TaskInfo, error) {
	var r TaskInfo
	err := c.do(ctx, http.MethodPost, "/api/tasks/"+url.PathEscape(id)+"/terminate", req, &r)
	return r, err
}

// RemoveTask calls POST /api/tasks/{id}/remove; a task not terminated yet is an *HTTPError with 409.
func (c *ShimClient) RemoveTask(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/api/tasks/"+url.PathEscape(id)+"/remove", nil, nil)
}

// RunnerClient talks to one dstack-runner.
type RunnerClient struct{ base }

// NewRunnerClient returns a client for the runner at baseURL (for example http://127.0.0.1:10999).
func NewRunnerClient(baseURL string, hc *http.Client) *RunnerClient {
	return &RunnerClient{newBase(baseURL, hc)}
}

// Healthcheck calls GET /api/healthcheck.
func (c *RunnerClient) Healthcheck(ctx context.Context) (HealthcheckResponse, error) {
	var r HealthcheckResponse
	err := c.do(ctx, http.MethodGet, "/api/healthcheck", nil, &r)
	return r, err
}

// Metrics calls GET /api/metrics.
func (c *RunnerClient) Metrics(ctx context.Context) (MetricsResponse, error) {
	var r MetricsResponse
	err := c.do(ctx, http.MethodGet, "/api/metrics", nil, &r)
	return r, err
}

// Submit calls POST /api/submit (409 unless the runner waits for a submit).
func (c *RunnerClient) Submit(ctx context.Context, body SubmitBody) error {
	return c.do(ctx, http.MethodPost, "/api/submit", body, nil)
}

// UploadCode calls POST /api/upload_code with a tar archive (optionally gzipped) as the body; nil
// sends an empty body. Bodies over MaxCodeSize are refused with 413.
func (c *RunnerClient) UploadCode(ctx context.Context, code io.Reader) error {
	if code == nil {
		code = bytes.NewReader(nil)
	}
	return c.do(ctx, http.MethodPost, "/api/upload_code", code, nil)
}

// Run calls POST /api/run, which starts the job.
func (c *RunnerClient) Run(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/api/run", nil, nil)
}

// Pull calls GET /api/pull?timestamp=since: the states and logs newer than since (Unix ms).
func (c *RunnerClient) Pull(ctx context.Context, since int64) (PullResponse, error) {
	var r PullResponse
	err := c.do(ctx, http.MethodGet, "/api/pull?timestamp="+strconv.FormatInt(since, 10), nil, &r)
	return r, err
}

// Stop calls POST /api/stop.
func (c *RunnerClient) Stop(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/api/stop", nil, nil)
}

// StreamLogs connects to /logs_ws and writes the job's output to w from its beginning until the job
// has finished and everything was sent, or ctx ends.
func (c *RunnerClient) StreamLogs(ctx context.Context, w io.Writer) error {
	u := c.url + "/logs_ws"
	switch {
	case strings.HasPrefix(u, "http://"):
		u = "ws://" + strings.TrimPrefix(u, "http://")
	case strings.HasPrefix(u, "https://"):
		u = "wss://" + strings.TrimPrefix(u, "https://")
	}
	conn, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.hc})
	if err != nil {
		return fmt.Errorf("connect to %s: %w", u, err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(-1)
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
				return nil
			}
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
}
