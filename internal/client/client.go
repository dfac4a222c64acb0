// Package client is a small typed HTTP client for the server's dstack-compatible REST API (dstack 0.21).
//
// Every call is a POST of JSON with the user's bearer token and the X-API-VERSION header. Error bodies
// are turned into *APIError values whose text is meant to be shown to the user as is.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// APIVersion is the dstack client version this client speaks; the server refuses clients newer than itself
// in major or minor. DSTACK_CLIENT_API_VERSION overrides it, as in dstack.
const APIVersion = "0.21.2"

// Client talks to one server with one token.
type Client struct {
	BaseURL    string // without the trailing slash
	Token      string
	APIVersion string       // sent as X-API-VERSION; empty sends no header
	HTTP       *http.Client // the transport; replace it to change timeouts
}

// New returns a client for the server at url (for example http://127.0.0.1:3000) using token.
func New(url, token string) *Client {
	v := APIVersion
	if env := os.Getenv("DSTACK_CLIENT_API_VERSION"); env != "" {
		v = env
	}
	return &Client{
		BaseURL:    strings.TrimRight(url, "/"),
		Token:      token,
		APIVersion: v,
		HTTP:       &http.Client{Timeout: 60 * time.Second},
	}
}

// Do POSTs in (JSON; nil sends no body and Content-Length: 0) to path (for example "/api/projects/list")
// and decodes the response into out (nil discards it). Non-2xx answers become *APIError; failures to
// connect become *ConnError.
func (c *Client) Do(ctx context.Context, path string, in, out any) error {
	return c.do(ctx, http.MethodPost, path, in, out)
}

// Get GETs path (with its query) and decodes the response into out, as Do does.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request for %s: %w", path, err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return fmt.Errorf("invalid server URL %q: %w", c.BaseURL, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	} else if method == http.MethodPost {
		// http.NoBody with ContentLength 0 makes net/http send "Content-Length: 0" for a POST.
		req.Body = http.NoBody
		req.ContentLength = 0
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.APIVersion != "" {
		req.Header.Set("X-API-VERSION", c.APIVersion)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &ConnError{URL: c.BaseURL, Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return &ConnError{URL: c.BaseURL, Err: unwrapURLError(err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return parseError(c.BaseURL, path, resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("unexpected response from %s%s: %w", c.BaseURL, path, err)
	}
	return nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// ConnError means the server could not be reached at all.
type ConnError struct {
	URL string
	Err error
}

func (e *ConnError) Error() string {
	msg := fmt.Sprintf("cannot reach the dstack server at %s: %v", e.URL, e.Err)
	if e.Refused() {
		msg += "; is `dstack server` running?"
	}
	return msg
}

func (e *ConnError) Unwrap() error { return e.Err }

// Refused reports whether nothing listens at the address.
func (e *ConnError) Refused() bool {
	if errors.Is(e.Err, syscall.ECONNREFUSED) {
		return true
	}
	var op *net.OpError
	return errors.As(e.Err, &op) && op.Op == "dial" && strings.Contains(op.Err.Error(), "refused")
}

// Project is the API's Project.
type Project struct {
	ProjectID   string    `json:"project_id"`
	ProjectName string    `json:"project_name"`
	Owner       User      `json:"owner"`
	CreatedAt   time.Time `json:"created_at"`
	Backends    []Backend `json:"backends"`
	Members     []Member  `json:"members"`
	IsPublic    bool      `json:"is_public"`
}

// User is the API's User.
type User struct {
	ID         string    `json:"id"`
	Username   string    `json:"username"`
	GlobalRole string    `json:"global_role"`
	Email      *string   `json:"email"`
	Active     bool      `json:"active"`
	CreatedAt  time.Time `json:"created_at"`
}

// Backend is one item of Project.backends: dstack's BackendInfo (name and the config without credentials)
// plus this server's credential-check result.
type Backend struct {
	Name          string         `json:"name"`
	Config        map[string]any `json:"config"`
	Status        string         `json:"status"`         // "valid", "invalid" or "unchecked"
	StatusMessage string         `json:"status_message"` // why, when invalid
}

// Member is one item of Project.members.
type Member struct {
	User        User              `json:"user"`
	ProjectRole string            `json:"project_role"`
	Permissions MemberPermissions `json:"permissions"`
}

// MemberPermissions says what a member may do besides the role.
type MemberPermissions struct {
	CanManageSSHFleets bool `json:"can_manage_ssh_fleets"`
	CanManageSecrets   bool `json:"can_manage_secrets"`
}

// ServerInfo is the answer of server/get_info.
type ServerInfo struct {
	ServerVersion *string `json:"server_version"`
}

// GetProject returns the project with its backends and members (POST /api/projects/{name}/get).
// A project that does not exist gives an error matching ErrProjectNotFound.
func (c *Client) GetProject(ctx context.Context, name string) (*Project, error) {
	var p Project
	if err := c.Do(ctx, "/api/projects/"+url.PathEscape(name)+"/get", nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ListProjects returns the projects the user can see (POST /api/projects/list). Their backends and
// members lists are empty; use GetProject for those.
func (c *Client) ListProjects(ctx context.Context) ([]Project, error) {
	var ps []Project
	if err := c.Do(ctx, "/api/projects/list", struct{}{}, &ps); err != nil {
		return nil, err
	}
	return ps, nil
}

// ServerInfo returns the server's version (POST /api/server/get_info; no authentication needed).
func (c *Client) ServerInfo(ctx context.Context) (*ServerInfo, error) {
	var si ServerInfo
	if err := c.Do(ctx, "/api/server/get_info", nil, &si); err != nil {
		return nil, err
	}
	return &si, nil
}
