package bootstrap

import (
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/dstackgo/dstack/internal/backends"
)

func TestResourceName(t *testing.T) {
	for _, c := range []struct {
		project, name string
		max           int
		want          string
	}{
		{"main", "fleet-0-abcd", 60, "dstack-main-fleet-0-abcd"},
		{"main", "a-very-long-fleet-name-0-abcdefgh", 30, "dstack-main-fleet-name-0-abcdefgh"[:12] + "et-name-0-abcdefgh"},
	} {
		got := ResourceName(c.project, c.name, c.max)
		if got != c.want || len(got) > c.max {
			t.Errorf("ResourceName(%q, %q, %d) = %q, want %q", c.project, c.name, c.max, got, c.want)
		}
	}
	if got := ResourceName(strings.Repeat("p", 40), "instance-0", 30); len(got) > 30 || !strings.HasPrefix(got, "dstack-ppppppp-") || !strings.HasSuffix(got, "instance-0") {
		t.Errorf("long project: %q", got)
	}
}

func TestScripts(t *testing.T) {
	cfg := backends.InstanceConfig{ProjectName: "main", InstanceName: "i", SSHPublicKeys: []string{"ssh-ed25519 AAAA a", "ssh-ed25519 BBBB b it's"},
		ShimURL: "http://srv:3000/api/agents/dstack-shim-linux-amd64", ShimEnv: map[string]string{"DSTACK_SHIM_LOG_LEVEL": "4", EnvJobImage: "x"}}
	s := ShimScript(cfg, "ubuntu")
	for _, want := range []string{
		"curl -fsSL --retry 5 -o /usr/local/bin/dstack-shim http://srv:3000/api/agents/dstack-shim-linux-amd64",
		"export DSTACK_RUNNER_DOWNLOAD_URL=http://srv:3000/api/agents/dstack-runner-linux-amd64",
		"export DSTACK_SHIM_LOG_LEVEL=4", "export DSTACK_SHIM_HTTP_PORT=10998", "/home/ubuntu/.ssh/authorized_keys",
		`'ssh-ed25519 AAAA a` + "\n" + `ssh-ed25519 BBBB b it'\''s'`, "nohup /usr/local/bin/dstack-shim",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, EnvJobImage) {
		t.Errorf("script passes %s", EnvJobImage)
	}
	var doc struct {
		Keys   []string   `yaml:"ssh_authorized_keys"`
		Runcmd [][]string `yaml:"runcmd"`
	}
	cc := CloudConfig(cfg, "ubuntu")
	if !strings.HasPrefix(cc, "#cloud-config\n") {
		t.Fatalf("no #cloud-config header")
	}
	if err := yaml.Unmarshal([]byte(cc), &doc); err != nil {
		t.Fatalf("cloud-config is not YAML: %v\n%s", err, cc)
	}
	if len(doc.Keys) != 2 || len(doc.Runcmd) != 1 || doc.Runcmd[0][2] != s {
		t.Errorf("cloud-config = %+v", doc)
	}

	image, env := ContainerEnv(cfg, DefaultImage)
	if image != "x" || env[EnvJobImage] != "" || env["DSTACK_RUNNER_SSH_PORT"] != "10022" || !strings.Contains(env["DSTACK_PUBLIC_SSH_KEY"], "\n") {
		t.Errorf("container %s %v", image, env)
	}
	if cmd := RunnerCommand(cfg); !strings.Contains(cmd, "dstack-runner-linux-amd64") || !strings.Contains(cmd, "exec /usr/local/bin/dstack-runner --http-port 10999 --ssh-port 10022") {
		t.Errorf("runner command %s", cmd)
	}
}
