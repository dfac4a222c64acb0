package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dstackgo/dstack/internal/cliconfig"
)

func TestBackendList(t *testing.T) {
	const tok = "tok-b"
	backends := map[string][]map[string]any{
		"alpha": {
			{"name": "aws", "config": map[string]any{"type": "aws", "regions": []any{"eu-west-1"}}, "status": "valid", "status_message": ""},
			{"name": "lambda", "config": map[string]any{"type": "lambda"}, "status": "invalid",
				"status_message": "creds.api_key: Invalid credentials:\nunauthorized"},
			{"name": "vultr", "config": map[string]any{"type": "vultr"}, "status": "unchecked", "status_message": ""},
		},
		"empty": nil,
	}
	tests := []struct {
		name     string
		projects []cliconfig.Project // URL "URL" is the fake server
		args     []string
		wantErr  string
		wantOut  string // exact stdout unless wantJSON
		wantJSON bool
	}{
		{
			name:     "default project table",
			projects: []cliconfig.Project{{Name: "alpha", URL: "URL", Token: tok, Default: true}},
			args:     nil,
			wantOut: "" +
				"TYPE     STATUS      MESSAGE\n" +
				"aws      valid       \n" +
				"lambda   invalid     creds.api_key: Invalid credentials: unauthorized\n" +
				"vultr    unchecked   \n",
		},
		{
			name: "--project picks another",
			projects: []cliconfig.Project{
				{Name: "alpha", URL: "URL", Token: tok, Default: true}, {Name: "empty", URL: "URL", Token: tok}},
			args:    []string{"--project", "empty"},
			wantOut: "No backends configured in project empty.\n",
		},
		{
			name:     "json",
			projects: []cliconfig.Project{{Name: "alpha", URL: "URL", Token: tok, Default: true}},
			args:     []string{"--json"},
			wantJSON: true,
		},
		{
			name:     "json empty",
			projects: []cliconfig.Project{{Name: "empty", URL: "URL", Token: tok, Default: true}},
			args:     []string{"--json"},
			wantOut:  "[]\n",
		},
		{
			name:    "nothing configured",
			wantErr: "run `dstack project add --name NAME --url URL --token TOKEN`, or start `dstack server`",
		},
		{
			name: "no default among several",
			projects: []cliconfig.Project{
				{Name: "alpha", URL: "URL", Token: tok}, {Name: "empty", URL: "URL", Token: tok}},
			wantErr: "no default project",
		},
		{
			name:     "--project not configured",
			projects: []cliconfig.Project{{Name: "alpha", URL: "URL", Token: tok, Default: true}},
			args:     []string{"--project", "zz"},
			wantErr:  "project zz is not configured",
		},
		{
			name:     "bad token",
			projects: []cliconfig.Project{{Name: "alpha", URL: "URL", Token: "stale", Default: true}},
			wantErr:  "access denied: invalid token (check the token in ~/.dstack/config.yml or pass --token)",
		},
		{
			name:     "project gone on the server",
			projects: []cliconfig.Project{{Name: "gone", URL: "URL", Token: tok, Default: true}},
			wantErr:  "project not found: gone",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HOME", t.TempDir())
			srv := newFakeServer(t, tok, backends)
			if tt.projects != nil {
				var ps []cliconfig.Project
				for _, p := range tt.projects {
					p.URL = strings.ReplaceAll(p.URL, "URL", srv.URL)
					ps = append(ps, p)
				}
				writeCfg(t, ps...)
			}
			out, _, err := runCLI(t, "", append([]string{"backend", "list"}, tt.args...)...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantJSON {
				var got []map[string]any
				if err := json.Unmarshal([]byte(out), &got); err != nil {
					t.Fatalf("%v: %s", err, out)
				}
				if len(got) != 3 || got[1]["name"] != "lambda" || got[1]["status"] != "invalid" ||
					got[1]["status_message"] != "creds.api_key: Invalid credentials:\nunauthorized" ||
					got[0]["config"].(map[string]any)["type"] != "aws" {
					t.Errorf("json = %v", got)
				}
				return
			}
			if out != tt.wantOut {
				t.Errorf("stdout:\n%q\nwant:\n%q", out, tt.wantOut)
			}
		})
	}
}
