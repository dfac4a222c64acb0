package runs

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/offers"
)

func spec(t *testing.T, conf string) models.RunSpec {
	t.Helper()
	var s models.RunSpec
	if err := json.Unmarshal([]byte(`{"run_name":"r","configuration":`+conf+`}`), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJobSpecs(t *testing.T) {
	s := EffectiveSpec(spec(t, `{"type":"task","commands":["echo a","echo b"],"nodes":2,"max_duration":"1h",
		"env":["A=1"],"resources":{"gpu":"A100:2"},"image":"busybox","ports":[8080]}`), "ssh-ed25519 KEY user")
	jobs, err := JobSpecs("r", s, DefaultImage)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[1].JobName != "r-1-0" || jobs[0].JobsPerReplica != 2 {
		t.Fatalf("jobs %+v", jobs)
	}
	j := jobs[0]
	if !reflect.DeepEqual(j.Commands, []string{"/bin/sh", "-c", "echo a && echo b"}) || j.ImageName != "busybox" {
		t.Fatalf("commands %q image %s", j.Commands, j.ImageName)
	}
	if *j.MaxDuration != 3600 || *j.StopDuration != 300 || j.Env["A"] != "1" || j.SSHKey == nil || jobs[1].SSHKey != j.SSHKey {
		t.Fatalf("spec %+v", j)
	}
	if !*j.Requirements.Multinode || *j.Requirements.Resources.CPU.Arch != "x86" || *j.Requirements.Resources.GPU.Vendor != "nvidia" ||
		*j.Requirements.Spot || len(j.AppSpecs) != 1 || j.AppSpecs[0].Port != 8080 {
		t.Fatalf("requirements %+v apps %+v", j.Requirements, j.AppSpecs)
	}
	if *s.SSHKeyPub != "ssh-ed25519 KEY user" || *s.RepoID != "none" || *s.Configuration.Common().Priority != 0 {
		t.Fatalf("effective spec %+v", s)
	}
	// dstack's base image runs commands with bash; an entrypoint comes first.
	jobs, _ = JobSpecs("r", EffectiveSpec(spec(t, `{"type":"task","commands":["x"]}`), ""), DefaultImage)
	if jobs[0].Commands[0] != "/bin/bash" || jobs[0].Commands[1] != "-i" {
		t.Fatalf("default image commands %q", jobs[0].Commands)
	}
	jobs, _ = JobSpecs("r", EffectiveSpec(spec(t, `{"type":"task","image":"i","entrypoint":"python -m 'a b'","commands":["--x"]}`), ""), DefaultImage)
	if !reflect.DeepEqual(jobs[0].Commands, []string{"python", "-m", "a b", "--x"}) {
		t.Fatalf("entrypoint %q", jobs[0].Commands)
	}
	if err := Check(spec(t, `{"type":"task"}`)); err == nil {
		t.Fatal("a task without commands passed")
	}
}

func TestMismatch(t *testing.T) {
	nvidia := "nvidia"
	inst := &models.Instance{Backend: "remote", InstanceType: models.InstanceType{Resources: models.InstanceResources{
		CPUs: 4, MemoryMiB: 16384, Disk: models.Disk{SizeMiB: 200 << 10},
		Gpus: []models.Gpu{{Name: "A100", MemoryMiB: 80 << 10, Vendor: &nvidia}, {Name: "A100", MemoryMiB: 80 << 10, Vendor: &nvidia}}}}}
	for conf, want := range map[string]string{
		`{"type":"task","commands":["x"]}`:                                   "",
		`{"type":"task","commands":["x"],"resources":{"cpu":8}}`:             "4 CPUs, need 8",
		`{"type":"task","commands":["x"],"resources":{"memory":"32GB.."}}`:   "memory, need 32GB..",
		`{"type":"task","commands":["x"],"resources":{"gpu":"H100"}}`:        "A100 GPUs, need H100",
		`{"type":"task","commands":["x"],"resources":{"gpu":"A100:80GB:2"}}`: "",
		`{"type":"task","commands":["x"],"resources":{"gpu":"amd:1.."}}`:     "nvidia GPUs, need amd",
		`{"type":"task","commands":["x"],"resources":{"cpu":"arm:1.."}}`:     "",
		`{"type":"task","commands":["x"],"fleets":["other"]}`:                "fleet f is not in fleets",
		`{"type":"task","commands":["x"],"backends":["aws"]}`:                "backend remote is not in backends",
		`{"type":"task","commands":["x"],"resources":{"disk":"500GB.."}}`:    "disk, need 500GB..",
	} {
		s := EffectiveSpec(spec(t, conf), "")
		jobs, err := JobSpecs("r", s, DefaultImage)
		if err != nil {
			t.Fatal(err)
		}
		got := Mismatch(inst, "f", jobs[0].Requirements, s.Configuration, s.Params())
		if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Errorf("%s: got %q, want %q", conf, got, want)
		}
	}
}

func TestLatestAndRetry(t *testing.T) {
	jobs := []*models.Job{{ReplicaNum: 0, JobNum: 0, SubmissionNum: 0}, {ReplicaNum: 0, JobNum: 0, SubmissionNum: 1},
		{ReplicaNum: 0, JobNum: 1, SubmissionNum: 0}}
	l := Latest(jobs)
	if len(l) != 2 || l[0].SubmissionNum != 1 || l[1].JobNum != 1 {
		t.Fatalf("latest %+v", l)
	}
	if retryEvent(models.JobNoCapacity) != "no-capacity" || retryEvent(models.JobInstanceUnreachable) != "interruption" ||
		retryEvent(models.JobContainerExitedError) != "error" || retryEvent(models.JobTerminatedByUser) != "" {
		t.Fatal("retry events")
	}
	if retryBackoff(0) != 15*time.Second || retryBackoff(99) != 10*time.Minute {
		t.Fatal("backoff")
	}
	p := spec(t, `{"type":"task","commands":["x"],"retry":{"on_events":["no-capacity"],"duration":"1h"}}`).Params().RetryPolicy()
	if p == nil || p.Duration != 3600 || !reflect.DeepEqual(p.OnEvents, []string{"no-capacity"}) {
		t.Fatalf("retry %+v", p)
	}
	if spec(t, `{"type":"task","commands":["x"]}`).Params().RetryPolicy() != nil {
		t.Fatal("retry without retry")
	}
}

func TestSplitArgs(t *testing.T) {
	got, err := splitArgs(`a "b c" 'd "e"' f\ g`)
	if err != nil || !reflect.DeepEqual(got, []string{"a", "b c", `d "e"`, "f g"}) {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := splitArgs(`"open`); err == nil {
		t.Fatal("unterminated quote accepted")
	}
}

func TestCapacityMemory(t *testing.T) {
	var c *CapacityMemory
	o := offers.Offer{Backend: "lambda", Region: "us-east-1", Instance: offers.InstanceType{Name: "gpu_1x_a10"}}
	if c.Recent(o) || c.Any("lambda") {
		t.Fatal("a nil memory remembers")
	}
	c = &CapacityMemory{TTL: 50 * time.Millisecond}
	c.Refused(o)
	other := o
	other.Region = "us-west-1"
	if !c.Recent(o) || c.Recent(other) || !c.Any("lambda") || c.Any("runpod") {
		t.Fatal("the refusal is not remembered for its backend, region and type only")
	}
	time.Sleep(60 * time.Millisecond)
	if c.Recent(o) || c.Any("lambda") {
		t.Fatal("the refusal outlived its TTL")
	}
}
