package backends

// The HTTP plumbing of credential checks: one request with the caller's context, a bounded read of the
// answer, and the mapping of what came back to one of three outcomes:
//
//   - the provider accepted the credentials: nil;
//   - the provider refused them (401/403 and the like): a *CredentialsError carrying the provider's
//     own message;
//   - no verdict (network error, timeout, 5xx, an answer the check cannot read): a *ProviderError,
//     which the server reports as "cannot check the credentials: ...".
//
// Secrets never reach an error: URLs are shown without their query string (RunPod and Vast.ai take the
// key there) and every secret the check names is blanked out of the provider's text.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// UserAgent is sent with every credential check.
const UserAgent = "dstack-go"

// MaxProbeBody bounds how much of an answer a check reads.
const MaxProbeBody = 1 << 20

// DefaultProbeTimeout applies when the caller's context has no deadline, so that a hung provider
// cannot hold a check forever.
const DefaultProbeTimeout = 30 * time.Second

// ProbeTransport is the transport of credential checks (and of SDK clients that checks build).
var ProbeTransport http.RoundTripper = http.DefaultTransport

// Probe is the one request of a credential check.
type Probe struct {
	// Provider names the provider in messages, e.g. "Lambda".
	Provider string
	Method   string
	// URL is the endpoint. Messages show it without its query string, so a key may travel there.
	URL string
	// Query is added to URL's query string.
	Query url.Values
	// Header is added to the request (User-Agent and Accept are set unless given).
	Header http.Header
	// Body is sent as is, with ContentType.
	Body        []byte
	ContentType string
	// Secrets are blanked out of anything the provider sends back.
	Secrets []string
}

// ProbeResult is the provider's answer.
type ProbeResult struct {
	Status int
	Header http.Header
	// Body is at most MaxProbeBody bytes of the answer.
	Body  []byte
	probe *Probe
}

// ProviderError says that a check reached no verdict: the provider could not be reached, failed, or
// answered something the check cannot read. It is never a credentials problem.
type ProviderError struct {
	Provider string
	// URL is the endpoint without its query string.
	URL string
	// Status is the HTTP status, 0 when no answer came.
	Status int
	// Msg is the provider's message or what was wrong with the answer.
	Msg string
	// Err is the transport error, if any.
	Err error
}

func (e *ProviderError) Error() string {
	switch {
	case e.Status == 0:
		return fmt.Sprintf("%s could not be reached at %s: %v", e.Provider, e.URL, e.Err)
	case e.Status >= 500:
		s := fmt.Sprintf("%s could not be reached at %s: it answered HTTP %d %s", e.Provider, e.URL, e.Status, http.StatusText(e.Status))
		if e.Msg != "" {
			s += ": " + e.Msg
		}
		return s
	default:
		s := fmt.Sprintf("unexpected answer from %s at %s: HTTP %d %s", e.Provider, e.URL, e.Status, http.StatusText(e.Status))
		if e.Msg != "" {
			s += ": " + e.Msg
		}
		return s
	}
}

func (e *ProviderError) Unwrap() error { return e.Err }

// Do sends the probe. The error is a *ProviderError when the provider cannot be reached or answers
// 5xx; any other answer is returned for the check to judge.
func (p Probe) Do(ctx context.Context) (*ProbeResult, error) {
	shown := ShowURL(p.URL)
	u, err := url.Parse(p.URL)
	if err != nil {
		return nil, &ProviderError{Provider: p.Provider, URL: shown, Err: Redact(fmt.Errorf("invalid API URL: %w", unwrapURLError(err)), p.Secrets)}
	}
	if len(p.Query) > 0 {
		q := u.Query()
		for k, vs := range p.Query {
			for _, v := range vs {
				q.Add(k, v)
			}
		}
		u.RawQuery = q.Encode()
	}
	ctx, cancel := WithDefaultDeadline(ctx)
	defer cancel()
	method := p.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if p.Body != nil {
		body = bytes.NewReader(p.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, &ProviderError{Provider: p.Provider, URL: shown, Err: Redact(unwrapURLError(err), p.Secrets)}
	}
	for k, vs := range p.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", UserAgent)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if p.ContentType != "" {
		req.Header.Set("Content-Type", p.ContentType)
	}
	resp, err := (&http.Client{Transport: ProbeTransport}).Do(req)
	if err != nil {
		return nil, &ProviderError{Provider: p.Provider, URL: shown, Err: Redact(unwrapURLError(err), p.Secrets)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxProbeBody))
	if err != nil {
		return nil, &ProviderError{Provider: p.Provider, URL: shown, Err: Redact(unwrapURLError(err), p.Secrets)}
	}
	r := &ProbeResult{Status: resp.StatusCode, Header: resp.Header, Body: data, probe: &p}
	if resp.StatusCode >= 500 {
		return nil, r.Unexpected("")
	}
	return r, nil
}

// OK reports a 2xx status.
func (r *ProbeResult) OK() bool { return r.Status >= 200 && r.Status < 300 }

// JSON decodes the answer into v.
func (r *ProbeResult) JSON(v any) error { return json.Unmarshal(r.Body, v) }

// Message is the provider's own error message in the answer, trimmed and without secrets; "" when
// there is none.
func (r *ProbeResult) Message() string { return ProviderMessage(r.Body, r.probe.Secrets...) }

// Refuse returns the CredentialsError for this answer: the provider's message (or its status) and
// the fields to fix.
func (r *ProbeResult) Refuse(fields ...[]string) *CredentialsError {
	msg := r.Message()
	if msg == "" {
		msg = fmt.Sprintf("%s answered HTTP %d %s", r.probe.Provider, r.Status, http.StatusText(r.Status))
	}
	return &CredentialsError{Msg: msg, Fields: fields}
}

// Unexpected returns the ProviderError for an answer the check cannot judge; why, if given, replaces
// the provider's message.
func (r *ProbeResult) Unexpected(why string) *ProviderError {
	if why == "" {
		why = r.Message()
	}
	return &ProviderError{Provider: r.probe.Provider, URL: ShowURL(r.probe.URL), Status: r.Status, Msg: why}
}

// Expect judges the common case: 2xx is valid, 401 and 403 refuse the credentials (naming fields),
// anything else reaches no verdict.
func (r *ProbeResult) Expect(fields ...[]string) error {
	switch {
	case r.OK():
		return nil
	case r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden:
		return r.Refuse(fields...)
	default:
		return r.Unexpected("")
	}
}

// ShowURL renders an endpoint for messages: without user info, query string or fragment.
func ShowURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.IndexAny(raw, "?#"); i >= 0 {
			raw = raw[:i]
		}
		return raw
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Redact returns err with every secret blanked out of its text; it still unwraps to err.
func Redact(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	s := RedactString(err.Error(), secrets)
	if s == err.Error() {
		return err
	}
	return &redacted{msg: s, err: err}
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// RedactString blanks every non-empty secret (and its URL-escaped form) out of s.
func RedactString(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		s = strings.ReplaceAll(s, sec, "***")
		if esc := url.QueryEscape(sec); esc != sec {
			s = strings.ReplaceAll(s, esc, "***")
		}
	}
	return s
}

// maxMessage bounds a provider message quoted in an error.
const maxMessage = 300

// ProviderMessage digs the human message out of an error answer in the shapes providers use:
// {"error":{"message"}}, {"message"}, {"msg"}, {"error_description"}, {"detail"}, GraphQL
// {"errors":[{"message"}]} and {"error":"..."}; a short plain-text answer is taken as is; HTML is not.
// The result is one trimmed line without secrets.
func ProviderMessage(body []byte, secrets ...string) string {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return ""
	}
	var msg string
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err == nil {
		msg = messageOf(obj)
	} else if body[0] != '<' && body[0] != '{' && body[0] != '[' && utf8.Valid(body) {
		msg = string(body)
	}
	msg = strings.Join(strings.Fields(RedactString(msg, secrets)), " ")
	if utf8.RuneCountInString(msg) > maxMessage {
		msg = string([]rune(msg)[:maxMessage]) + "…"
	}
	return msg
}

func messageOf(obj map[string]any) string {
	if e, ok := obj["error"].(map[string]any); ok {
		if m := messageOf(e); m != "" {
			return m
		}
	}
	for _, k := range []string{"message", "msg", "error_description", "detail"} {
		if s, ok := obj[k].(string); ok && strings.TrimSpace(s) != "" {
			return s
		}
	}
	if errs, ok := obj["errors"].([]any); ok {
		var parts []string
		for _, e := range errs {
			switch e := e.(type) {
			case map[string]any:
				if s, ok := e["message"].(string); ok && s != "" {
					parts = append(parts, s)
				}
			case string:
				parts = append(parts, e)
			}
		}
		if len(parts) > 0 {
			return strings.Join(parts, "; ")
		}
	}
	if s, ok := obj["error"].(string); ok {
		return s
	}
	if s, ok := obj["code"].(string); ok {
		return s
	}
	return ""
}
