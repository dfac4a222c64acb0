package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	_ "github.com/dstackgo/dstack/internal/backends/all"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/secrets"
	"github.com/dstackgo/dstack/internal/store"
)

// env is a server on a fresh SQLite database with one user per role in project main.
type env struct {
	t      *testing.T
	srv    *Server
	st     *store.Store
	ts     *httptest.Server
	tokens map[string]string // role name -> token
}

const adminToken = "11111111-1111-4111-8111-111111111111"

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	key, err := secrets.LoadOrCreateDefaultKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.NewKeyring([]secrets.Key{key})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), filepath.Join(dir, "sqlite.db"), kr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, srv: New(st, nil), st: st, tokens: map[string]string{"admin": adminToken}}
	admin, err := e.srv.Bootstrap(context.Background(), adminToken)
	if err != nil {
		t.Fatal(err)
	}
	_ = admin
	main, err := st.GetProject(context.Background(), "main")
	if err != nil {
		t.Fatal(err)
	}
	members, _ := st.ListMembers(context.Background(), main.ID)
	for _, role := range []string{"padmin", "manager", "member", "outsider"} {
		u, err := NewUser(role, models.GlobalRoleUser, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateUser(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		e.tokens[role] = u.Token
		projectRole := map[string]string{"padmin": models.ProjectRoleAdmin, "manager": models.ProjectRoleManager, "member": models.ProjectRoleUser}[role]
		if projectRole != "" {
			members = append(members, models.Member{ProjectID: main.ID, UserID: u.ID, Role: projectRole})
		}
	}
	if err := st.SetMembers(context.Background(), main.ID, members); err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.ts.Close)
	return e
}

// call POSTs body (nil: no body; string: raw) as the user with the given role ("" for anonymous) and
// returns the status and decoded JSON.
func (e *env) call(role, path string, body any) (int, any) {
	e.t.Helper()
	var rdr io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rdr = bytes.NewBufferString(b)
	default:
		data, _ := json.Marshal(b)
		rdr = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+path, rdr)
	if role != "" {
		tok := e.tokens[role]
		if tok == "" {
			tok = role // a literal token
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out any
	if err := json.Unmarshal(data, &out); err != nil {
		out = string(data)
	}
	return resp.StatusCode, out
}

// must is call that fails the test unless the status is 200.
func (e *env) must(role, path string, body any) any {
	e.t.Helper()
	code, out := e.call(role, path, body)
	if code != http.StatusOK {
		e.t.Fatalf("%s as %s: status %d: %v", path, role, code, out)
	}
	return out
}
