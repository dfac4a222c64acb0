package server

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/dstackgo/dstack/internal/backends/fake"
)

var roles = []string{"", "outsider", "member", "manager", "padmin", "admin"}

// rank orders roles by what they may do in project main.
var rank = map[string]int{"": 0, "outsider": 1, "member": 2, "manager": 3, "padmin": 4, "admin": 5}

// TestAccessMatrix calls every endpoint as every role and checks who is let in and who is refused with
// dstack's status and body.
func TestAccessMatrix(t *testing.T) {
	lambda := fake.Use(t, "lambda").Good.Values
	vastKey := fake.Use(t, "vastai").Good.String("creds", "api_key")
	cases := []struct {
		path string
		min  string // least role let in
		body func(role string) any
	}{
		{"/api/server/get_info", "", nil},
		{"/api/backends/list_types", "", nil},
		{"/api/users/list", "outsider", nil},
		{"/api/users/get_my_user", "outsider", nil},
		{"/api/users/get_user", "outsider", func(role string) any { return map[string]any{"username": orAdmin(role)} }},
		{"/api/users/refresh_token", "outsider", func(role string) any { return map[string]any{"username": orAdmin(role)} }},
		{"/api/users/create", "admin", func(role string) any { return map[string]any{"username": "new-" + role, "global_role": "user"} }},
		{"/api/users/update", "admin", func(string) any { return map[string]any{"username": "member", "global_role": "user"} }},
		{"/api/users/delete", "admin", func(string) any { return map[string]any{"users": []string{"nobody"}} }},
		{"/api/projects/list", "outsider", nil},
		{"/api/projects/create", "outsider", func(role string) any { return map[string]any{"project_name": "p-" + role} }},
		{"/api/projects/main/get", "member", nil},
		{"/api/projects/main/set_members", "manager", func(string) any {
			return map[string]any{"members": []any{
				map[string]any{"username": "admin", "project_role": "admin"},
				map[string]any{"username": "padmin", "project_role": "admin"},
				map[string]any{"username": "manager", "project_role": "manager"},
				map[string]any{"username": "member", "project_role": "user"},
			}}
		}},
		{"/api/project/main/backends/create_yaml", "padmin", func(role string) any {
			return map[string]any{"config_yaml": "type: vastai\ncreds:\n  type: api_key\n  api_key: " + vastKey + "\n"}
		}},
		{"/api/project/main/backends/update_yaml", "padmin", func(role string) any {
			return map[string]any{"config_yaml": "type: vastai\nregions: [" + orAnon(role) + "]\ncreds:\n  type: api_key\n  api_key: " + vastKey + "\n"}
		}},
		{"/api/project/main/backends/vastai/get_yaml", "padmin", nil},
		{"/api/project/main/backends/vastai/config_info", "padmin", nil},
		{"/api/project/main/backends/create", "padmin", func(string) any { return lambda }},
		{"/api/project/main/backends/update", "padmin", func(string) any { return lambda }},
		{"/api/project/main/backends/delete", "padmin", func(string) any { return map[string]any{"backends_names": []string{"lambda"}} }},
	}
	e := newEnv(t)
	for _, c := range cases {
		for _, role := range roles {
			t.Run(fmt.Sprintf("%s/%s", c.path, orAnon(role)), func(t *testing.T) {
				var body any
				if c.body != nil {
					body = c.body(role)
				}
				code, out := e.call(role, c.path, body)
				if c.path == "/api/users/refresh_token" && code == http.StatusOK {
					e.tokens[orAdmin(role)] = out.(map[string]any)["creds"].(map[string]any)["token"].(string)
				}
				allowed := rank[role] >= rank[c.min]
				switch {
				case allowed && (code == http.StatusUnauthorized || code == http.StatusForbidden):
					t.Fatalf("%s should be allowed, got %d %v", orAnon(role), code, out)
				case allowed && code != http.StatusOK && code != http.StatusBadRequest:
					// 400 is a business answer (say, a backend that an earlier role already created).
					t.Fatalf("%s: status %d %v", orAnon(role), code, out)
				case !allowed && role == "" && (code != http.StatusUnauthorized || fmt.Sprint(out) != "map[detail:Not authenticated]"):
					t.Fatalf("anonymous should get 401 Not authenticated, got %d %v", code, out)
				case !allowed && role != "" && (code != http.StatusForbidden || fmt.Sprint(out) != "map[detail:map[code:<nil> msg:Access denied]]"):
					t.Fatalf("%s should get 403 Access denied, got %d %v", role, code, out)
				}
			})
		}
	}
}

func orAdmin(role string) string {
	if role == "" {
		return "admin"
	}
	return role
}

func orAnon(role string) string {
	if role == "" {
		return "anonymous"
	}
	return role
}
