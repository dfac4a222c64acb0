package backends

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// MaxAnswer bounds how much of an answer a RESTClient reads unless told otherwise.
const MaxAnswer = 8 << 20

// WithDefaultDeadline returns ctx bounded by DefaultProbeTimeout when it has no deadline of its own,
// so that a hung provider cannot hold a call forever.
func WithDefaultDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultProbeTimeout)
}

// RESTClient is the plumbing of the hand-written provider clients: one request under the caller's
// context (DefaultProbeTimeout when it has no deadline), the credentials, dstack's User-Agent, a
// bounded read of the answer, and transport errors that name the endpoint without its query string
// or any secret. What an answer means is the provider's: Check maps it to the call's error.
type RESTClient struct {
	// Provider names the API in errors: "<Provider> API <METHOD> <URL>: ...".
	Provider string
	// Base is the API's URL; a call's path, which may carry a query string, is appended to it.
	Base string
	// Auth adds the credentials to a request; nil sends none.
	Auth func(*http.Request)
	// Secrets are blanked out of errors and of the provider's messages.
	Secrets []string
	// Check returns the error of an answer, nil for a success; nil accepts 2xx only.
	Check func(*Answer) error
	// MaxBody bounds the answer read; 0 means MaxAnswer.
	MaxBody int64
	// HTTP sends the requests; nil means a client over ProbeTransport.
	HTTP *http.Client
}

// Answer is what a provider sent back to a RESTClient.
type Answer struct {
	Status int
	// Body is at most RESTClient.MaxBody bytes of the answer.
	Body []byte
	// Where is "<Provider> API <METHOD> <URL>", the URL without its query string, for messages.
	Where    string
	provider string
	secrets  []string
}

// OK reports a 2xx status.
func (a *Answer) OK() bool { return a.Status >= 200 && a.Status < 300 }

// Redact blanks the client's secrets out of s.
func (a *Answer) Redact(s string) string { return RedactString(s, a.secrets) }

// Message is own, the message the provider's error structure holds, without secrets; when own is
// empty, whatever message ProviderMessage finds in the body.
func (a *Answer) Message(own string) string {
	if own != "" {
		return a.Redact(own)
	}
	return ProviderMessage(a.Body, a.secrets...)
}

// APIError is an answer of a provider's API that is not a success.
type APIError struct {
	// Provider names the API, e.g. "Lambda".
	Provider string
	Status   int
	// Code is the provider's error code, if any.
	Code    string
	Message string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code != "" {
		return fmt.Sprintf("%s API: HTTP %d %s: %s", e.Provider, e.Status, e.Code, msg)
	}
	return fmt.Sprintf("%s API: HTTP %d: %s", e.Provider, e.Status, msg)
}

// APIError is the answer as an *APIError with the provider's code and message (see Message).
func (a *Answer) APIError(code, own string) *APIError {
	return &APIError{Provider: a.provider, Status: a.Status, Code: code, Message: a.Message(own)}
}

// Do sends in as JSON (no body when nil), judges the answer with Check and decodes a successful
// one into out when out is not nil.
func (c *RESTClient) Do(ctx context.Context, method, path string, in, out any) error {
	data, err := c.Call(ctx, method, path, in)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: %w", c.where(method, path), err)
	}
	return nil
}

// Call is Do for an answer the caller reads itself: it returns the body of a successful one.
func (c *RESTClient) Call(ctx context.Context, method, path string, in any) ([]byte, error) {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = b
	}
	return c.Send(ctx, method, path, body, "application/json")
}

func (c *RESTClient) where(method, path string) string {
	return c.Provider + " API " + method + " " + ShowURL(c.Base+path)
}

// Send sends body (none when nil) as contentType, judges the answer with Check and returns the body
// of a successful one.
func (c *RESTClient) Send(ctx context.Context, method, path string, body []byte, contentType string) ([]byte, error) {
	ctx, cancel := WithDefaultDeadline(ctx)
	defer cancel()
	a := &Answer{Where: c.where(method, path), provider: c.Provider, secrets: c.Secrets}
	fail := func(err error) ([]byte, error) {
		return nil, fmt.Errorf("%s: %w", a.Where, Redact(unwrapURLError(err), c.Secrets))
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, r)
	if err != nil {
		return fail(err)
	}
	if c.Auth != nil {
		c.Auth(req)
	}
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Transport: ProbeTransport}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	limit := c.MaxBody
	if limit <= 0 {
		limit = MaxAnswer
	}
	a.Status = resp.StatusCode
	if a.Body, err = io.ReadAll(io.LimitReader(resp.Body, limit)); err != nil {
		return fail(err)
	}
	check := c.Check
	if check == nil {
		check = checkOK
	}
	if err := check(a); err != nil {
		return nil, err
	}
	return a.Body, nil
}

// checkOK is the Check of a RESTClient that has none: 2xx only.
func checkOK(a *Answer) error {
	if a.OK() {
		return nil
	}
	return a.APIError("", "")
}
