package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const projectJSON = `{
  "project_id": "0b6f3f55-6d0e-4f5e-9a53-0f1c2d3e4f50",
  "project_name": "demo",
  "owner": {"id": "9d2c1b7a-1111-4222-8333-444455556666", "username": "alice", "created_at": "2026-01-02T03:04:05.123456Z",
            "global_role": "admin", "email": null, "active": true, "permissions": {"can_create_projects": true}, "ssh_public_key": "ssh-rsa AAAA alice\n"},
  "created_at": "2026-01-02T03:04:06.000001Z",
  "backends": [
    {"name": "aws", "config": {"type": "aws", "regions": ["us-east-1"]}, "status": "valid", "status_message": ""},
    {"name": "lambda", "config": {"type": "lambda"}, "status": "invalid", "status_message": "Invalid credentials"}
  ],
  "members": [{"user": {"id": "9d2c1b7a-1111-4222-8333-444455556666", "username": "alice", "created_at": "2026-01-02T03:04:05.123456Z",
               "global_role": "admin", "email": "a@example.test", "active": true},
               "project_role": "admin", "permissions": {"can_manage_ssh_fleets": true, "can_manage_secrets": false}}],
  "is_public": false,
  "templates_repo": null
}`

type recorded struct {
	method, path, auth, version, contentLength, contentType, body string
}

func server(t *testing.T, status int, body string, rec *recorded) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if rec != nil {
			*rec = recorded{r.Method, r.URL.EscapedPath(), r.Header.Get("Authorization"), r.Header.Get("X-API-VERSION"),
				r.Header.Get("Content-Length"), r.Header.Get("Content-Type"), string(b)}
		}
		if strings.HasPrefix(body, "{") || strings.HasPrefix(body, "[") {
			w.Header().Set("Content-Type", "application/json")
		} else {
			w.Header().Set("Content-Type", "text/plain")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestGetProject(t *testing.T) {
	t.Setenv("DSTACK_CLIENT_API_VERSION", "")
	var rec recorded
	srv := server(t, 200, projectJSON, &rec)
	p, err := New(srv.URL+"/", "tok-123").GetProject(context.Background(), "demo")
	if err != nil {
		t.Fatal(err)
	}
	want := recorded{"POST", "/api/projects/demo/get", "Bearer tok-123", "0.21.2", "0", "", ""}
	if rec != want {
		t.Errorf("request = %+v, want %+v", rec, want)
	}
	if p.ProjectName != "demo" || p.Owner.Username != "alice" || p.Owner.Email != nil || p.CreatedAt.Nanosecond() != 1000 {
		t.Errorf("project = %+v", p)
	}
	if len(p.Backends) != 2 || p.Backends[1].Status != "invalid" || p.Backends[1].StatusMessage != "Invalid credentials" ||
		p.Backends[0].Config["type"] != "aws" {
		t.Errorf("backends = %+v", p.Backends)
	}
	if len(p.Members) != 1 || p.Members[0].ProjectRole != "admin" || !p.Members[0].Permissions.CanManageSSHFleets ||
		p.Members[0].User.Email == nil || *p.Members[0].User.Email != "a@example.test" {
		t.Errorf("members = %+v", p.Members)
	}
}

func TestGetProjectEscapesName(t *testing.T) {
	var rec recorded
	srv := server(t, 200, projectJSON, &rec)
	if _, err := New(srv.URL, "t").GetProject(context.Background(), "a b/c"); err != nil {
		t.Fatal(err)
	}
	if rec.path != "/api/projects/a%20b%2Fc/get" {
		t.Errorf("path = %q", rec.path)
	}
}

func TestListProjectsAndServerInfo(t *testing.T) {
	t.Setenv("DSTACK_CLIENT_API_VERSION", "")
	var rec recorded
	srv := server(t, 200, "["+projectJSON+"]", &rec)
	ps, err := New(srv.URL, "t").ListProjects(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].ProjectName != "demo" {
		t.Errorf("projects = %+v", ps)
	}
	if rec.path != "/api/projects/list" || rec.body != "{}" || rec.contentType != "application/json" {
		t.Errorf("request = %+v", rec)
	}

	srv = server(t, 200, `{"server_version": "0.21.2"}`, &rec)
	si, err := New(srv.URL, "").ServerInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if si.ServerVersion == nil || *si.ServerVersion != "0.21.2" {
		t.Errorf("info = %+v", si)
	}
	if rec.path != "/api/server/get_info" || rec.auth != "" || rec.contentLength != "0" || rec.version != "0.21.2" {
		t.Errorf("request = %+v", rec)
	}
}

func TestAPIVersionOverride(t *testing.T) {
	t.Setenv("DSTACK_CLIENT_API_VERSION", "0.19.8")
	var rec recorded
	srv := server(t, 200, `{"server_version": null}`, &rec)
	if _, err := New(srv.URL, "").ServerInfo(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rec.version != "0.19.8" {
		t.Errorf("X-API-VERSION = %q", rec.version)
	}
}

func TestErrorShapes(t *testing.T) {
	tests := []struct {
		name     string
		path     string // default /api/projects/demo/get
		status   int
		body     string
		want     string // exact message, or prefix when it ends with "…"
		sentinel error
		code     string
	}{
		{
			name:   "400 single",
			status: 400, body: `{"detail":[{"msg":"Run not found","code":"resource_not_exists"}]}`,
			want: "Run not found", code: CodeResourceNotExists,
		},
		{
			name:   "400 fields joined",
			status: 400, body: `{"detail":[{"msg":"Invalid credentials","code":"invalid_credentials","fields":["creds","api_key"]},{"msg":"Invalid credentials","code":"invalid_credentials","fields":["creds","secret"]}]}`,
			want: "creds.api_key: Invalid credentials; creds.secret: Invalid credentials", code: CodeInvalidCredentials,
		},
		{
			name:   "400 version mismatch with null code",
			status: 400, body: `{"detail":[{"msg":"The client/CLI version (9.9.9) is incompatible with the server version (0.21.2).","code":null}]}`,
			want: "The client/CLI version (9.9.9) is incompatible with the server version (0.21.2).",
		},
		{
			name:   "401",
			status: 401, body: `{"detail":"Not authenticated"}`,
			want: "not authenticated: no token was sent (set the token in ~/.dstack/config.yml or pass --token)", sentinel: ErrNotAuthenticated,
		},
		{
			name:   "403 invalid token",
			status: 403, body: `{"detail":{"msg":"Invalid token","code":null}}`,
			want: "access denied: invalid token (check the token in ~/.dstack/config.yml or pass --token)", sentinel: ErrInvalidToken,
		},
		{
			name:   "403 access denied",
			status: 403, body: `{"detail":{"msg":"Access denied","code":null}}`,
			want: "access denied: your user lacks the role this request needs", sentinel: ErrAccessDenied,
		},
		{
			name:   "404 project",
			status: 404, body: `{"detail":{"msg":"Not found","code":null}}`,
			want: "project not found: demo (on the server at URL)", sentinel: ErrProjectNotFound,
		},
		{
			name: "404 project in project-scoped path", path: "/api/project/other/fleets/list",
			status: 404, body: `{"detail":{"msg":"Not found","code":null}}`,
			want: "project not found: other (on the server at URL)", sentinel: ErrProjectNotFound,
		},
		{
			name: "404 route", path: "/api/no/such/route",
			status: 404, body: `{"detail":"Not Found"}`,
			want: "the server at URL does not serve POST /api/no/such/route (404 Not Found); is it a dstack server of a compatible version?",
		},
		{
			name:   "405",
			status: 405, body: `{"detail":"Method Not Allowed"}`,
			want: "the server at URL does not serve POST /api/projects/demo/get (405 Method Not Allowed); is it a dstack server of a compatible version?",
		},
		{
			name:   "422",
			status: 422, body: `{"detail":[{"type":"extra_forbidden","loc":["body","foo"],"msg":"Extra inputs are not permitted","input":"bar"},{"type":"json_invalid","loc":["body",21],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting value"}}]}`,
			want: "server validation error: foo: Extra inputs are not permitted; 21: JSON decode error",
		},
		{
			name:   "422 body-level",
			status: 422, body: `{"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":[]}]}`,
			want: "server validation error: Input should be a valid dictionary or object to extract fields from",
		},
		{
			name:   "500 text",
			status: 500, body: `Internal Server Error`,
			want: "unexpected error from the server: status 500 Internal Server Error: Internal Server Error",
		},
		{
			name:   "502 empty",
			status: 502, body: ``,
			want: "unexpected error from the server: status 502 Bad Gateway",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := server(t, tt.status, tt.body, nil)
			path := tt.path
			if path == "" {
				path = "/api/projects/demo/get"
			}
			err := New(srv.URL, "t").Do(context.Background(), path, nil, nil)
			if err == nil {
				t.Fatal("want an error")
			}
			want := strings.ReplaceAll(tt.want, "URL", srv.URL)
			if err.Error() != want {
				t.Errorf("error = %q\nwant    %q", err.Error(), want)
			}
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != tt.status {
				t.Fatalf("error %T is not an *APIError with status %d", err, tt.status)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(err, %v) = false", tt.sentinel)
			}
			for _, s := range []error{ErrNotAuthenticated, ErrInvalidToken, ErrAccessDenied, ErrProjectNotFound} {
				if s != tt.sentinel && errors.Is(err, s) {
					t.Errorf("errors.Is(err, %v) = true", s)
				}
			}
			if ae.Code() != tt.code || (tt.code != "" && !HasCode(err, tt.code)) {
				t.Errorf("code = %q, want %q", ae.Code(), tt.code)
			}
		})
	}
}

func TestGetProjectNotFoundPlain(t *testing.T) {
	srv := server(t, 404, `{"detail":{"msg":"Not found","code":null}}`, nil)
	_, err := New(srv.URL, "t").GetProject(context.Background(), "nope")
	if !errors.Is(err, ErrProjectNotFound) || !strings.HasPrefix(err.Error(), "project not found: nope") {
		t.Fatalf("err = %v", err)
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	url := "http://" + addr
	_, err = New(url, "t").GetProject(context.Background(), "demo")
	var ce *ConnError
	if !errors.As(err, &ce) || !ce.Refused() {
		t.Fatalf("err = %#v", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "cannot reach the dstack server at "+url+": ") || !strings.HasSuffix(msg, "; is `dstack server` running?") {
		t.Errorf("message = %q", msg)
	}
}

func TestBadJSONResponse(t *testing.T) {
	srv := server(t, 200, `{"project_name": 5}`, nil)
	_, err := New(srv.URL, "t").GetProject(context.Background(), "demo")
	if err == nil || !strings.Contains(err.Error(), "unexpected response from") {
		t.Fatalf("err = %v", err)
	}
}

func TestContextCanceled(t *testing.T) {
	srv := server(t, 200, projectJSON, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := New(srv.URL, "t").GetProject(ctx, "demo")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestRequestBodyIsJSON(t *testing.T) {
	var rec recorded
	srv := server(t, 200, `null`, &rec)
	in := map[string]any{"config_yaml": "type: aws\n"}
	if err := New(srv.URL, "t").Do(context.Background(), "/api/project/p/backends/create_yaml", in, nil); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(rec.body), &got); err != nil || got["config_yaml"] != "type: aws\n" {
		t.Errorf("body = %q", rec.body)
	}
}
