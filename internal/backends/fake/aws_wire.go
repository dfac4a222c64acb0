package fake

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The wire of the AWS simulation: Signature Version 4 (what the Authorization header carries and how
// a signature is recomputed), the Query API's form parameters (Name.N lists, Filter.N.Name and
// Filter.N.Value.M), and the XML and JSON answers with the services' error envelopes.

// sigV4 is a parsed `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
type sigV4 struct {
	accessKey, date, region, service string
	signedHeaders                    []string
	signature                        string
}

// parseSigV4 parses an Authorization header; it returns what is wrong with it, or "".
func parseSigV4(h string) (sigV4, string) {
	var a sigV4
	algo, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if algo != "AWS4-HMAC-SHA256" {
		return a, fmt.Sprintf("Authorization header uses %q, not AWS4-HMAC-SHA256", algo)
	}
	parts := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok {
			parts[k] = v
		}
	}
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if parts[k] == "" {
			return a, fmt.Sprintf("Authorization header requires '%s' parameter.", k)
		}
	}
	scope := strings.Split(parts["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return a, fmt.Sprintf("Credential %q is not <key>/<date>/<region>/<service>/aws4_request", strings.Join(scope[min(1, len(scope)):], "/"))
	}
	a.accessKey, a.date, a.region, a.service = scope[0], scope[1], scope[2], scope[3]
	a.signedHeaders = strings.Split(parts["SignedHeaders"], ";")
	a.signature = parts["Signature"]
	return a, ""
}

// verify recomputes the signature of r (with its body) under secret.
func (a sigV4) verify(r *http.Request, body []byte, secret string) bool {
	var canon strings.Builder
	canon.WriteString(r.Method + "\n")
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	canon.WriteString(path + "\n")
	canon.WriteString(canonicalQuery(r.URL.Query()) + "\n")
	for _, h := range a.signedHeaders {
		var v string
		switch h {
		case "host":
			v = r.Host
		case "content-length":
			v = strconv.FormatInt(r.ContentLength, 10)
		default:
			v = strings.Join(r.Header.Values(h), ",")
		}
		canon.WriteString(h + ":" + strings.Join(strings.Fields(v), " ") + "\n")
	}
	canon.WriteString("\n" + strings.Join(a.signedHeaders, ";") + "\n")
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		sum := sha256.Sum256(body)
		payload = hex.EncodeToString(sum[:])
	}
	canon.WriteString(payload)
	sum := sha256.Sum256([]byte(canon.String()))
	toSign := "AWS4-HMAC-SHA256\n" + r.Header.Get("X-Amz-Date") + "\n" +
		a.date + "/" + a.region + "/" + a.service + "/aws4_request\n" + hex.EncodeToString(sum[:])
	key := hmacSHA256([]byte("AWS4"+secret), a.date)
	for _, p := range []string{a.region, a.service, "aws4_request"} {
		key = hmacSHA256(key, p)
	}
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	return hmac.Equal([]byte(want), []byte(a.signature))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func canonicalQuery(q url.Values) string {
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, awsEscape(k)+"="+awsEscape(v))
		}
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "&")
}

// awsEscape is SigV4's URI encoding: everything but A-Z a-z 0-9 - _ . ~ is percent-encoded.
func awsEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// readBody reads a request body and puts it back, so that it can be read again.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b, err
}

// qform is a Query API request's parameters.
type qform struct{ url.Values }

// list returns the values of name.1, name.2, ... in order.
func (f qform) list(name string) []string {
	var out []string
	for _, i := range f.indexes(name) {
		out = append(out, f.Get(fmt.Sprintf("%s.%d", name, i)))
	}
	return out
}

// indexes returns the sorted N of every parameter name.N or name.N.*.
func (f qform) indexes(name string) []int {
	seen := map[int]bool{}
	for k := range f.Values {
		rest, ok := strings.CutPrefix(k, name+".")
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, ".")
		if i, err := strconv.Atoi(n); err == nil && i > 0 {
			seen[i] = true
		}
	}
	out := make([]int, 0, len(seen))
	for i := range seen {
		out = append(out, i)
	}
	sort.Ints(out)
	return out
}

// sub returns the parameters under name.N. as a form of their own.
func (f qform) sub(name string, n int) qform {
	prefix := fmt.Sprintf("%s.%d.", name, n)
	out := url.Values{}
	for k, v := range f.Values {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			out[rest] = v
		}
	}
	return qform{out}
}

// filters returns Filter.N.Name -> its values.
func (f qform) filters() map[string][]string {
	out := map[string][]string{}
	for _, i := range f.indexes("Filter") {
		s := f.sub("Filter", i)
		out[s.Get("Name")] = append(out[s.Get("Name")], s.list("Value")...)
	}
	return out
}

// unknown returns the first parameter whose top-level name is not allowed.
func (f qform) unknown(allowed ...string) string {
	ok := map[string]bool{"Action": true, "Version": true, "DryRun": true}
	for _, a := range allowed {
		ok[a] = true
	}
	var bad []string
	for k := range f.Values {
		top, _, _ := strings.Cut(k, ".")
		if !ok[top] {
			bad = append(bad, top)
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		return bad[0]
	}
	return ""
}

// wildcard matches s against an EC2 filter value, where * is any run and ? any one character.
func wildcard(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if wildcard(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && wildcard(pattern[1:], s[1:])
	case '\\':
		if len(pattern) > 1 {
			pattern = pattern[1:]
		}
	}
	return s != "" && s[0] == pattern[0] && wildcard(pattern[1:], s[1:])
}

// matchAny reports whether s matches one of the filter values.
func matchAny(values []string, s string) bool {
	for _, v := range values {
		if wildcard(v, s) {
			return true
		}
	}
	return false
}

// xw writes XML elements.
type xw struct{ strings.Builder }

func (w *xw) open(name string)  { w.WriteString("<" + name + ">") }
func (w *xw) close(name string) { w.WriteString("</" + name + ">") }

// el writes <name>value</name>; nothing for an empty string.
func (w *xw) el(name string, v any) {
	s := fmt.Sprint(v)
	if s == "" {
		return
	}
	w.open(name)
	_ = xml.EscapeText(w, []byte(s))
	w.close(name)
}

// tags writes a tagSet of key/value items.
func (w *xw) tags(name string, tags map[string]string) {
	w.open(name)
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w.open("item")
		w.el("key", k)
		w.WriteString("<value>")
		_ = xml.EscapeText(w, []byte(tags[k]))
		w.WriteString("</value>")
		w.close("item")
	}
	w.close(name)
}

// Namespaces and versions of the services the simulation answers.
const (
	ec2Version = "2016-11-15"
	stsVersion = "2011-06-15"
	iamVersion = "2010-05-08"
	elbVersion = "2015-12-01"
	ec2NS      = "http://ec2.amazonaws.com/doc/2016-11-15/"
	stsNS      = "https://sts.amazonaws.com/doc/2011-06-15/"
	iamNS      = "https://iam.amazonaws.com/doc/2010-05-08/"
	elbNS      = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
	sqTarget   = "ServiceQuotasV20190624."
	acmTarget  = "CertificateManager."
)

// awsQueryNS is the XML namespace of a Query API other than EC2's.
func awsQueryNS(svc string) string {
	return map[string]string{"sts": stsNS, "iam": iamNS, "elasticloadbalancing": elbNS}[svc]
}

// awsJSONService reports whether a service speaks JSON 1.1 (X-Amz-Target) rather than the Query API.
func awsJSONService(svc string) bool { return svc == "servicequotas" || svc == "acm" }

// awsXML answers a Query API call: <Action>Response xmlns=...> around body (EC2 puts requestId
// first; STS, IAM and ELBv2 wrap the body in <Action>Result and end with ResponseMetadata).
func awsXML(w http.ResponseWriter, svc, action, body, requestID string) {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	switch svc {
	case "ec2":
		fmt.Fprintf(&b, `<%sResponse xmlns="%s"><requestId>%s</requestId>%s</%sResponse>`, action, ec2NS, requestID, body, action)
	default:
		ns := awsQueryNS(svc)
		fmt.Fprintf(&b, `<%sResponse xmlns="%s"><%sResult>%s</%sResult><ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>`,
			action, ns, action, body, action, requestID, action)
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("X-Amzn-RequestId", requestID)
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, b.String())
}

// awsErr answers an error in the envelope of svc: EC2's <Response><Errors><Error>, STS's, IAM's and
// ELBv2's <ErrorResponse><Error><Type>, Service Quotas' and ACM's JSON {"__type", "message"}.
func awsErr(w http.ResponseWriter, svc string, status int, code, msg, requestID string) {
	w.Header().Set("X-Amzn-RequestId", requestID)
	var esc strings.Builder
	_ = xml.EscapeText(&esc, []byte(msg))
	switch svc {
	case "servicequotas", "acm":
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", code)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
	case "sts", "iam", "elasticloadbalancing":
		ns, kind := awsQueryNS(svc), "Sender"
		if status >= 500 {
			kind = "Receiver"
		}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
			ns, kind, code, esc.String(), requestID)
	default:
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
			`<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>`,
			code, esc.String(), requestID)
	}
}

// amzTime formats a time as the services do.
func amzTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
