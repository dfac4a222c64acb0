package agentapi

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
)

func keys(t *testing.T, v any) []string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestTaskConfigFields(t *testing.T) {
	// The request dstack's server sends to shim API v2.
	const fromServer = `{
		"id": "00000000-0000-0000-0000-000000000000", "name": "test-0-0",
		"registry_username": "user", "registry_password": "pass", "image_name": "debian",
		"container_user": "root", "privileged": true, "gpu": -1, "cpu": 0, "memory": 0, "shm_size": 536870912,
		"network_mode": "host",
		"volumes": [{"backend": "gcp", "name": "vol", "volume_id": "vol-id", "init_fs": true, "device_name": "/dev/sdv"}],
		"volume_mounts": [{"name": "vol", "path": "/vol"}],
		"instance_mounts": [{"instance_path": "/mnt/nfs/home", "path": "/home"}],
		"gpu_devices": [{"path_on_host": "/dev/nvidia0", "path_in_container": "/dev/nvidia0"}],
		"host_ssh_user": "dstack", "host_ssh_keys": ["host_key"], "container_ssh_keys": ["project_key", "user_key"]
	}`
	var cfg TaskConfig
	if err := json.Unmarshal([]byte(fromServer), &cfg); err != nil {
		t.Fatal(err)
	}
	want := TaskConfig{
		ID: "00000000-0000-0000-0000-000000000000", Name: "test-0-0", RegistryUsername: "user", RegistryPassword: "pass",
		ImageName: "debian", ContainerUser: "root", Privileged: true, GPU: -1, ShmSize: 536870912, NetworkMode: "host",
		Volumes:          []VolumeInfo{{Backend: "gcp", Name: "vol", VolumeID: "vol-id", InitFS: true, DeviceName: "/dev/sdv"}},
		VolumeMounts:     []VolumeMountPoint{{Name: "vol", Path: "/vol"}},
		InstanceMounts:   []InstanceMountPoint{{InstancePath: "/mnt/nfs/home", Path: "/home"}},
		GPUDevices:       []GPUDevice{{PathOnHost: "/dev/nvidia0", PathInContainer: "/dev/nvidia0"}},
		HostSSHUser:      "dstack",
		HostSSHKeys:      []string{"host_key"},
		ContainerSSHKeys: []string{"project_key", "user_key"},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("decoded %+v\nwant %+v", cfg, want)
	}
	got := keys(t, cfg)
	wantKeys := []string{"container_ssh_keys", "container_user", "cpu", "gpu", "gpu_devices", "host_ssh_keys", "host_ssh_user", "id",
		"image_name", "instance_mounts", "memory", "name", "network_mode", "privileged", "registry_password", "registry_username",
		"shm_size", "volume_mounts", "volumes"}
	if !reflect.DeepEqual(got, wantKeys) {
		t.Errorf("keys %v\nwant %v", got, wantKeys)
	}
}

func TestTaskInfoAndListFields(t *testing.T) {
	info := TaskInfo{ID: "x", Status: TaskRunning, Ports: []PortMapping{{Host: 32768, Container: 10999}}}
	want := []string{"container_id", "container_name", "gpus_ids", "id", "ports", "status", "termination_message", "termination_reason"}
	if got := keys(t, info); !reflect.DeepEqual(got, want) {
		t.Errorf("TaskInfo keys %v", got)
	}
	if info.Port(10999) != 32768 || info.Port(10022) != 10022 {
		t.Error("Port")
	}
	if got := keys(t, TaskListResponse{}); !reflect.DeepEqual(got, []string{"ids", "tasks"}) {
		t.Errorf("list keys %v", got)
	}
	if got := keys(t, TerminateRequest{}); !reflect.DeepEqual(got, []string{"termination_message", "termination_reason", "timeout"}) {
		t.Errorf("terminate keys %v", got)
	}
}

func TestRunnerWireFormat(t *testing.T) {
	ev := LogEvent{Message: []byte("hello\n"), Timestamp: 1700000000123, Stream: StreamStdout}
	data, _ := json.Marshal(ev)
	if string(data) != `{"message":"aGVsbG8K","timestamp":1700000000123,"stream":"stdout"}` {
		t.Errorf("log event %s", data)
	}
	// dstack's runner sends no stream; it decodes all the same.
	var pr PullResponse
	raw := `{"job_states":[{"state":"failed","timestamp":5,"termination_reason":"container_exited_with_error","termination_message":"Exit status 3","exit_status":3}],
		"job_logs":[{"message":"aGVsbG8K","timestamp":3}],"runner_logs":[],"last_updated":5,"no_connections_secs":12,"has_more":false}`
	if err := json.Unmarshal([]byte(raw), &pr); err != nil {
		t.Fatal(err)
	}
	if string(pr.JobLogs[0].Message) != "hello\n" || *pr.JobStates[0].ExitStatus != 3 || !pr.JobStates[0].State.Finished() || pr.NoConnectionsSecs != 12 {
		t.Errorf("%+v", pr)
	}
	if got := keys(t, pr); !reflect.DeepEqual(got, []string{"has_more", "job_logs", "job_states", "last_updated", "no_connections_secs", "runner_logs"}) {
		t.Errorf("pull keys %v", got)
	}
	wd := "src"
	body := SubmitBody{
		Run:         &Run{ID: "r", RunSpec: RunSpec{RunName: "n"}},
		RunSpec:     &RunSpec{RunName: "n"},
		JobSpec:     JobSpec{Commands: []string{"echo"}, WorkingDir: &wd, MaxDuration: 60},
		ClusterInfo: ClusterInfo{JobIPs: []string{"10.0.0.1"}, MasterJobIP: "10.0.0.1", GPUsPerJob: 8},
		Secrets:     map[string]string{"a": "b"},
	}
	if got := keys(t, body); !reflect.DeepEqual(got, []string{"cluster_info", "job_spec", "repo_credentials", "run", "run_spec", "secrets"}) {
		t.Errorf("submit keys %v", got)
	}
	if got := keys(t, body.JobSpec); !reflect.DeepEqual(got, []string{"commands", "entrypoint", "env", "job_num", "jobs_per_replica",
		"max_duration", "replica_num", "single_branch", "ssh_key", "user", "working_dir"}) {
		t.Errorf("job spec keys %v", got)
	}
	if got := keys(t, body.ClusterInfo); !reflect.DeepEqual(got, []string{"gpus_per_job", "job_ips", "master_job_ip"}) {
		t.Errorf("cluster keys %v", got)
	}
	if got := keys(t, MetricsResponse{}); !reflect.DeepEqual(got, []string{"cpu_usage_micro", "gpus", "memory_usage_bytes", "memory_working_set_bytes", "timestamp_micro"}) {
		t.Errorf("metrics keys %v", got)
	}
	if (RepoCredentials{CloneURL: "https://github.com/a/b.git"}).Protocol() != "https" {
		t.Error("protocol")
	}
}

type recorded struct {
	method, path, body string
}

func recorder(t *testing.T, status int, resp string) (*httptest.Server, *[]recorded) {
	t.Helper()
	var mu sync.Mutex
	var calls []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, recorded{r.Method, r.URL.RequestURI(), string(body)})
		mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, resp)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestShimClient(t *testing.T) {
	srv, calls := recorder(t, 200, `{"id":"t1","status":"running","termination_reason":"","termination_message":"","ports":[]}`)
	// The client dials through its own transport, as the server does over SSH: the URL's host is
	// never resolved.
	addr := srv.Listener.Addr().String()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	c := NewShimClient("http://shim.invalid:10998/", hc)
	ctx := context.Background()
	info, err := c.SubmitTask(ctx, TaskConfig{ID: "t1", Name: "n", ImageName: "i"})
	if err != nil || info.Status != TaskRunning {
		t.Fatalf("%+v %v", info, err)
	}
	_, _ = c.GetTask(ctx, "t1")
	_, _ = c.TerminateTask(ctx, "t1", TerminateRequest{TerminationReason: "r", Timeout: 10})
	_ = c.RemoveTask(ctx, "t1")
	_, _ = c.ListTasks(ctx)
	_, _ = c.Healthcheck(ctx)
	want := []recorded{
		{"POST", "/api/tasks", ""},
		{"GET", "/api/tasks/t1", ""},
		{"POST", "/api/tasks/t1/terminate", `{"termination_reason":"r","termination_message":"","timeout":10}`},
		{"POST", "/api/tasks/t1/remove", ""},
		{"GET", "/api/tasks", ""},
		{"GET", "/api/healthcheck", ""},
	}
	if len(*calls) != len(want) {
		t.Fatalf("calls %+v", *calls)
	}
	for i, w := range want {
		got := (*calls)[i]
		if got.method != w.method || got.path != w.path || (w.body != "" && strings.TrimSpace(got.body) != w.body) {
			t.Errorf("call %d: %+v, want %+v", i, got, w)
		}
	}
	if !strings.Contains((*calls)[0].body, `"image_name":"i"`) {
		t.Errorf("submit body %s", (*calls)[0].body)
	}
}

func TestClientErrors(t *testing.T) {
	srv, _ := recorder(t, http.StatusConflict, "the runner is in state wait_code, not wait_submit\n")
	c := NewRunnerClient(srv.URL, nil)
	err := c.Submit(context.Background(), SubmitBody{})
	if !IsStatus(err, http.StatusConflict) || IsStatus(err, http.StatusNotFound) {
		t.Fatalf("%v", err)
	}
	if !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "wait_code") {
		t.Errorf("message %q", err.Error())
	}
}

func TestRunnerClientPaths(t *testing.T) {
	srv, calls := recorder(t, 200, `{}`)
	c := NewRunnerClient(srv.URL, nil)
	ctx := context.Background()
	_ = c.Submit(ctx, SubmitBody{})
	_ = c.UploadCode(ctx, strings.NewReader("tar"))
	_ = c.Run(ctx)
	_, _ = c.Pull(ctx, 1700000000000)
	_ = c.Stop(ctx)
	_, _ = c.Metrics(ctx)
	want := []recorded{
		{"POST", "/api/submit", ""}, {"POST", "/api/upload_code", "tar"}, {"POST", "/api/run", ""},
		{"GET", "/api/pull?timestamp=1700000000000", ""}, {"POST", "/api/stop", ""}, {"GET", "/api/metrics", ""},
	}
	for i, w := range want {
		got := (*calls)[i]
		if got.method != w.method || got.path != w.path || (w.body != "" && got.body != w.body) {
			t.Errorf("call %d: %+v, want %+v", i, got, w)
		}
	}
}
