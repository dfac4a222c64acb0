package gatewayd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Client calls a gateway's management API; the server gives it an HTTP client that tunnels through
// its SSH connection to the gateway machine.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client of the API at base (e.g. http://127.0.0.1:8000).
func NewClient(base string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(base, "/"), hc: hc}
}

// Healthcheck returns the gateway's name and version.
func (c *Client) Healthcheck(ctx context.Context) (Health, error) {
	var h Health
	err := c.do(ctx, http.MethodGet, "/healthcheck", nil, &h)
	return h, err
}

// SetConfig replaces the gateway's routing state with cfg.
func (c *Client) SetConfig(ctx context.Context, cfg Config) error {
	body, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("gateway config: %w", err)
	}
	return c.do(ctx, http.MethodPost, "/api/config", body, nil)
}

// Stats returns the request counters of the registered services.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := c.do(ctx, http.MethodGet, "/api/stats", nil, &s)
	return s, err
}

// APIError is an answer of the gateway other than 200, e.g. 400 for a configuration it refused.
type APIError struct {
	Method, Path string
	Status       int
	Detail       string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("gateway %s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), e.Detail)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("gateway %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("gateway %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("gateway %s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &APIError{Method: method, Path: path, Status: resp.StatusCode}
		var d struct {
			Detail string `json:"detail"`
		}
		if json.Unmarshal(data, &d) == nil && d.Detail != "" {
			e.Detail = d.Detail
		} else {
			e.Detail = fmt.Sprintf("%.200s", data)
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("gateway %s %s: unexpected answer: %w", method, path, err)
	}
	return nil
}
