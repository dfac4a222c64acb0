package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Sentinels that *APIError values match with errors.Is.
var (
	ErrNotAuthenticated = errors.New("not authenticated")
	ErrInvalidToken     = errors.New("invalid token")
	ErrAccessDenied     = errors.New("access denied")
	ErrProjectNotFound  = errors.New("project not found")
)

// Error codes of 400 answers (ServerClientError in dstack).
const (
	CodeError               = "error"
	CodeResourceExists      = "resource_exists"
	CodeResourceNotExists   = "resource_not_exists"
	CodeInvalidCredentials  = "invalid_credentials"
	CodeBackendNotAvailable = "backend_not_available"
	CodeRepoDoesNotExist    = "repo_does_not_exist"
	CodeGatewayError        = "gateway_error"
)

// ErrorItem is one item of a 400 answer's detail list.
type ErrorItem struct {
	Msg    string   `json:"msg"`
	Code   *string  `json:"code"`
	Fields []string `json:"fields,omitempty"`
}

// APIError is a non-2xx answer of the server.
type APIError struct {
	Status   int
	Path     string      // the request path
	Items    []ErrorItem // 400: the detail items; 403/404: the detail object as one item
	Msg      string      // the readable text
	sentinel error
}

func (e *APIError) Error() string { return e.Msg }

// Is matches the sentinels above.
func (e *APIError) Is(target error) bool { return e.sentinel != nil && target == e.sentinel }

// Code returns the code of the first item of a 400 answer, or "".
func (e *APIError) Code() string {
	if len(e.Items) > 0 && e.Items[0].Code != nil {
		return *e.Items[0].Code
	}
	return ""
}

// HasCode reports whether err is an *APIError whose first item carries code.
func HasCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code() == code
}

// validationItem is one item of a 422 (FastAPI request validation) answer.
type validationItem struct {
	Type string `json:"type"`
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
}

func parseError(baseURL, path string, status int, body []byte) error {
	e := &APIError{Status: status, Path: path}
	var env struct {
		Detail json.RawMessage `json:"detail"`
	}
	_ = json.Unmarshal(body, &env)
	detail := env.Detail
	var detailStr string
	var detailObj ErrorItem
	var detailList []json.RawMessage
	isStr := json.Unmarshal(detail, &detailStr) == nil && len(detail) > 0 && detail[0] == '"'
	isObj := len(detail) > 0 && detail[0] == '{' && json.Unmarshal(detail, &detailObj) == nil
	isList := len(detail) > 0 && detail[0] == '[' && json.Unmarshal(detail, &detailList) == nil

	switch {
	case status == http.StatusBadRequest && isList:
		var msgs []string
		for _, raw := range detailList {
			var it ErrorItem
			if json.Unmarshal(raw, &it) != nil {
				continue
			}
			e.Items = append(e.Items, it)
			m := it.Msg
			if len(it.Fields) > 0 {
				m = strings.Join(it.Fields, ".") + ": " + m
			}
			msgs = append(msgs, m)
		}
		if len(msgs) > 0 {
			e.Msg = strings.Join(msgs, "; ")
			return e
		}
	case status == http.StatusUnauthorized:
		e.sentinel = ErrNotAuthenticated
		e.Msg = "not authenticated: no token was sent (set the token in ~/.dstack/config.yml or pass --token)"
		return e
	case status == http.StatusForbidden:
		if isObj {
			e.Items = []ErrorItem{detailObj}
		}
		if isObj && strings.EqualFold(detailObj.Msg, "Invalid token") {
			e.sentinel = ErrInvalidToken
			e.Msg = "access denied: invalid token (check the token in ~/.dstack/config.yml or pass --token)"
			return e
		}
		e.sentinel = ErrAccessDenied
		e.Msg = "access denied: your user lacks the role this request needs"
		if isObj && detailObj.Msg != "" && !strings.EqualFold(detailObj.Msg, "Access denied") {
			e.Msg = "access denied: " + detailObj.Msg
		}
		return e
	case status == http.StatusNotFound && isObj:
		// Object detail: the project in the path does not exist (or is not visible to this user).
		e.Items = []ErrorItem{detailObj}
		e.sentinel = ErrProjectNotFound
		e.Msg = "project not found"
		if name := projectFromPath(path); name != "" {
			e.Msg = fmt.Sprintf("project not found: %s (on the server at %s)", name, baseURL)
		}
		return e
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		e.Msg = fmt.Sprintf("the server at %s does not serve POST %s (%d %s); is it a dstack server of a compatible version?",
			baseURL, path, status, http.StatusText(status))
		return e
	case status == http.StatusUnprocessableEntity:
		var items []validationItem
		if isList {
			for _, raw := range detailList {
				var it validationItem
				if json.Unmarshal(raw, &it) == nil {
					items = append(items, it)
				}
			}
		}
		var msgs []string
		for _, it := range items {
			loc := locString(it.Loc)
			if loc != "" {
				msgs = append(msgs, loc+": "+it.Msg)
			} else {
				msgs = append(msgs, it.Msg)
			}
		}
		if len(msgs) == 0 {
			msgs = []string{strings.TrimSpace(string(body))}
		}
		e.Msg = "server validation error: " + strings.Join(msgs, "; ")
		return e
	}
	// Anything else: the status and whatever the server said.
	text := ""
	switch {
	case isStr:
		text = detailStr
	case isObj && detailObj.Msg != "":
		text = detailObj.Msg
	default:
		text = strings.TrimSpace(string(body))
	}
	if len(text) > 500 {
		text = text[:500] + "..."
	}
	e.Msg = fmt.Sprintf("unexpected error from the server: status %d %s", status, http.StatusText(status))
	if text != "" {
		e.Msg += ": " + text
	}
	return e
}

// locString renders a 422 loc without its leading "body": ["body","spec","name"] → "spec.name".
func locString(loc []any) string {
	var parts []string
	for i, p := range loc {
		s := fmt.Sprint(p)
		if i == 0 && s == "body" {
			continue
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ".")
}

// projectFromPath returns X of /api/projects/X/... or /api/project/X/....
func projectFromPath(path string) string {
	for _, prefix := range []string{"/api/projects/", "/api/project/"} {
		if rest, ok := strings.CutPrefix(path, prefix); ok {
			name, _, _ := strings.Cut(rest, "/")
			if name == "list" || name == "create" || name == "delete" {
				return ""
			}
			if u, err := url.PathUnescape(name); err == nil {
				return u
			}
			return name
		}
	}
	return ""
}
