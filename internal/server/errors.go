package server

import (
	"encoding/json"
	"net/http"
)

// Error codes of dstack's 400 responses.
const (
	codeError              = "error"
	codeResourceExists     = "resource_exists"
	codeResourceNotExists  = "resource_not_exists"
	codeInvalidCredentials = "invalid_credentials"
)

// apiError is an error with the exact status and body dstack's server gives, so that the original CLI
// recognises it.
type apiError struct {
	status int
	body   any
}

func (e *apiError) Error() string { b, _ := json.Marshal(e.body); return string(b) }

type errorItem struct {
	Msg    string   `json:"msg"`
	Code   *string  `json:"code"`
	Fields []string `json:"fields,omitempty"`
}

func strp(s string) *string { return &s }

// clientError is dstack's ServerClientError: 400 with one item.
func clientError(code, msg string) *apiError {
	return &apiError{http.StatusBadRequest, map[string]any{"detail": []errorItem{{Msg: msg, Code: strp(code)}}}}
}

// fieldsError is a 400 with one item per field path, as dstack reports invalid credentials.
func fieldsError(code, msg string, fields [][]string) *apiError {
	if len(fields) == 0 {
		return clientError(code, msg)
	}
	items := make([]errorItem, len(fields))
	for i, f := range fields {
		items[i] = errorItem{Msg: msg, Code: strp(code), Fields: f}
	}
	return &apiError{http.StatusBadRequest, map[string]any{"detail": items}}
}

func detailObject(status int, msg string) *apiError {
	return &apiError{status, map[string]any{"detail": map[string]any{"msg": msg, "code": nil}}}
}

var (
	errNotAuthenticated = &apiError{http.StatusUnauthorized, map[string]any{"detail": "Not authenticated"}}
	errInvalidToken     = detailObject(http.StatusForbidden, "Invalid token")
	errAccessDenied     = detailObject(http.StatusForbidden, "Access denied")
	errProjectNotFound  = detailObject(http.StatusNotFound, "Not found")
	errRouteNotFound    = &apiError{http.StatusNotFound, map[string]any{"detail": "Not Found"}}
	errMethodNotAllowed = &apiError{http.StatusMethodNotAllowed, map[string]any{"detail": "Method Not Allowed"}}
	// errInternal is written as text, like the original's unhandled exceptions; the cause goes to the log.
	errInternal = &apiError{http.StatusInternalServerError, "Internal Server Error"}
)

func writeError(w http.ResponseWriter, e *apiError) {
	if s, ok := e.body.(string); ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(e.status)
		_, _ = w.Write([]byte(s))
		return
	}
	writeJSON(w, e.status, e.body)
}

// validationError is FastAPI's 422 shape.
type validationItem struct {
	Type  string         `json:"type"`
	Loc   []any          `json:"loc"`
	Msg   string         `json:"msg"`
	Input any            `json:"input"`
	Ctx   map[string]any `json:"ctx,omitempty"`
}

func unprocessable(items ...validationItem) *apiError {
	return &apiError{http.StatusUnprocessableEntity, map[string]any{"detail": items}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
