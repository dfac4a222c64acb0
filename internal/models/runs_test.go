package models

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRunConfigurationJSON(t *testing.T) {
	for _, in := range []string{
		`{"type":"task","commands":["echo"],"env":["A=1","B="],"max_duration":"off","ports":[8080,"9000:90",{"container_port":1}]}`,
		`{"type":"dev-environment","ide":"vscode","inactivity_duration":"2h"}`,
		`{"type":"service","port":"8000:80","commands":["serve"],"replicas":2}`,
	} {
		var c RunConfiguration
		if err := json.Unmarshal([]byte(in), &c); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back RunConfiguration
		if err := json.Unmarshal(out, &back); err != nil || back.Type() != c.Type() {
			t.Fatalf("round trip of %s: %s %v", in, out, err)
		}
		// Every key of the type is written, defaults included.
		for _, k := range []string{`"home_dir":"/root"`, `"resources":{"cpu"`, `"backends":null`, `"setup":[]`} {
			if !strings.Contains(string(out), k) {
				t.Fatalf("%s lacks %s", out, k)
			}
		}
	}
	var c RunConfiguration
	_ = json.Unmarshal([]byte(`{"type":"task","commands":["x"],"env":["A=1"],"max_duration":"off","ports":["9000:90"]}`), &c)
	if c.Task.Env["A"] != "1" || !c.Task.MaxDuration.Off || *c.Task.Ports[0].LocalPort != 9000 || c.Task.Ports[0].ContainerPort != 90 || *c.Task.Nodes != 1 {
		t.Fatalf("task %+v", c.Task)
	}
	if err := json.Unmarshal([]byte(`{"type":"gateway"}`), &c); err == nil {
		t.Fatal("unknown type accepted")
	}
	if _, v := (RunConfiguration{}).JSONVariant(map[string]any{"type": "service"}); v != "service" {
		t.Fatal(v)
	}
}

func TestFleetSpecHostsAndKeys(t *testing.T) {
	in := `{"configuration":{"type":"fleet","name":"f","ssh_config":{"user":"u","ssh_key":{"public":"p","private":"SECRET"},
		"hosts":["10.0.0.1",{"hostname":"10.0.0.2","port":2222,"ssh_key":{"public":"p2","private":"SECRET2"}}]}},"profile":{"name":"default"}}`
	var s FleetSpec
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	hosts := s.Configuration.SSHConfig.Hosts
	if hosts[0].Object || hosts[0].Params.Hostname != "10.0.0.1" || !hosts[1].Object || *hosts[1].Params.Port != 2222 {
		t.Fatalf("hosts %+v", hosts)
	}
	stripped, _ := json.Marshal(s.StripPrivateKeys())
	if strings.Contains(string(stripped), "SECRET") || !strings.Contains(string(stripped), `"hosts":["10.0.0.1",{"hostname":"10.0.0.2"`) {
		t.Fatalf("stripped %s", stripped)
	}
	if *s.Configuration.SSHConfig.SSHKey.Private != "SECRET" {
		t.Fatal("stripping changed the original")
	}
}

func TestDurations(t *testing.T) {
	for in, want := range map[any]int{"90s": 90, "5m": 300, "2h": 7200, "1d": 86400, "1w": 604800, "45": 45, 30.0: 30, "off": -1} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%v: %d %v", in, got, err)
		}
	}
	if _, err := ParseDuration("5 years"); err == nil {
		t.Error("bad duration accepted")
	}
	if RunStatusFor(RunStoppedByUser) != RunTerminated || JobStatusFor(JobDoneByRunner) != JobDone ||
		JobStatusFor(JobMaxDurationExceeded) != JobTerminated || JobStatusFor(JobContainerExitedError) != JobFailed {
		t.Fatal("status mapping")
	}
}
