package server

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestE2EVolumesAWS: a `type: volume` becomes an EBS volume in the simulation; a run that mounts it
// is placed in the volume's zone and gets it attached (the test host has no such block device, so the
// shim, given the device AWS named, reports it missing: the attachment reached the machine); the
// volume is detached when the job ends and deleted with `volumes/delete`. A run naming a volume that
// does not exist fails with volume_error.
func TestE2EVolumesAWS(t *testing.T) {
	e, sim, hosts := newCloudE2E(t, "aws", true)
	code, bad := e.call("admin", "/api/project/main/volumes/create", map[string]any{"configuration": map[string]any{
		"type": "volume", "name": "data", "backend": "aws"}})
	if msg := fmt.Sprint(bad); code != 400 || !strings.Contains(msg, "region: required") || !strings.Contains(msg, "size: required") {
		t.Fatalf("an invalid volume: %d %s", code, msg)
	}
	e.must("admin", "/api/project/main/volumes/create", map[string]any{"configuration": map[string]any{
		"type": "volume", "name": "data", "backend": "aws", "region": "us-east-1", "availability_zone": "us-east-1b", "size": "10GB"}})
	var vol map[string]any
	e.waitFor(30*time.Second, "volume active", func() (bool, string) {
		vol = e.must("admin", "/api/project/main/volumes/get", map[string]any{"name": "data"}).(map[string]any)
		return vol["status"] == "active" || vol["status"] == "failed", fmt.Sprint(vol["status"], vol["status_message"])
	})
	pd, _ := vol["provisioning_data"].(map[string]any)
	if vol["status"] != "active" || pd["size_gb"] != 10.0 || pd["availability_zone"] != "us-east-1b" {
		t.Fatalf("volume %v", vol)
	}
	volumeID := pd["volume_id"].(string)
	if _, ok := sim.AWSVolumes()[volumeID]; !ok {
		t.Fatalf("%s is not in the simulation", volumeID)
	}
	if list := e.must("admin", "/api/project/main/volumes/list", nil).([]any); len(list) != 1 {
		t.Fatalf("volumes list %v", list)
	}

	e.submit("with-volume", map[string]any{"commands": []string{"ls /data"}, "volumes": []any{"data:/data"}, "idle_duration": 2,
		"resources": map[string]any{"cpu": "2..", "memory": "1GB..", "disk": "1GB.."}})
	run := e.waitRun("with-volume", 3*time.Minute, "done", "failed", "terminated")
	jpd := jobPD(run)
	if att := sim.AWSAttachments(volumeID); len(att) != 1 || jpd["instance_id"] != att[0] || jpd["availability_zone"] != "us-east-1b" {
		t.Fatalf("the volume was attached to %v; the job ran on %v in %v", att, jpd["instance_id"], jpd["availability_zone"])
	}
	if msg := fmt.Sprint(latestSubmission(run)["termination_reason_message"]); !strings.Contains(msg, "/dev/sdf") {
		t.Errorf("the job ended with %q, not the shim's word on device /dev/sdf", msg)
	}
	e.waitFor(30*time.Second, "the volume detached", func() (bool, string) {
		return sim.AWSVolumes()[volumeID] == "", sim.AWSVolumes()[volumeID]
	})

	e.submit("no-volume", map[string]any{"commands": []string{"true"}, "volumes": []any{"missing:/data"}})
	run = e.waitRun("no-volume", time.Minute, "done", "failed", "terminated")
	if sub := latestSubmission(run); sub["termination_reason"] != "volume_error" || !strings.Contains(fmt.Sprint(sub["termination_reason_message"]), "volume missing does not exist") {
		t.Errorf("a run with a missing volume: %v %v", sub["termination_reason"], sub["termination_reason_message"])
	}

	e.must("admin", "/api/project/main/volumes/delete", map[string]any{"names": []string{"data"}})
	e.waitFor(30*time.Second, "the volume deleted", func() (bool, string) {
		_, left := sim.AWSVolumes()[volumeID]
		return !left, "still in the simulation"
	})
	if list := e.must("admin", "/api/project/main/volumes/list", nil).([]any); len(list) != 0 {
		t.Fatalf("volumes list after deletion %v", list)
	}
	e.waitTornDown(sim, hosts, 2*time.Minute)
	if m := sim.Misses(); len(m) > 0 {
		t.Errorf("requests AWS would refuse: %v", m)
	}
}

// TestE2EVolumesRunPod: a RunPod network volume is created in its data center; a run that mounts it
// gets a pod in that data center with the volume at its path (RunPod mounts it at creation; there
// is no attachment), and runs to completion.
func TestE2EVolumesRunPod(t *testing.T) {
	e, sim, hosts := newCloudE2E(t, "runpod", true)
	e.must("admin", "/api/project/main/volumes/create", map[string]any{"configuration": map[string]any{
		"type": "volume", "name": "models", "backend": "runpod", "region": "CA-MTL-3", "size": 20}})
	e.waitFor(30*time.Second, "volume active", func() (bool, string) {
		v := e.must("admin", "/api/project/main/volumes/get", map[string]any{"name": "models"}).(map[string]any)
		return v["status"] == "active", fmt.Sprint(v["status"], v["status_message"])
	})
	vol := e.must("admin", "/api/project/main/volumes/get", map[string]any{"name": "models"}).(map[string]any)
	volumeID := vol["provisioning_data"].(map[string]any)["volume_id"]
	e.submit("pod-with-volume", map[string]any{"commands": []string{"echo ok"}, "volumes": []any{"models:/models"},
		"resources": map[string]any{"gpu": 1, "cpu": "1..", "memory": "1GB..", "disk": "1GB.."}})
	run := e.waitRun("pod-with-volume", 3*time.Minute, "done", "failed", "terminated")
	if run["status"] != "done" {
		t.Fatalf("run %v: %v", run["status"], latestSubmission(run)["termination_reason_message"])
	}
	machines := sim.Machines()
	if len(machines) != 1 || machines[0].Region != "CA-MTL-3" || machines[0].Extra["network_volume_id"] != volumeID ||
		machines[0].Extra["volume_mount_path"] != "/models" {
		t.Fatalf("pods %+v", machines)
	}
	e.waitTornDown(sim, hosts, time.Minute)
	e.must("admin", "/api/project/main/volumes/delete", map[string]any{"names": []string{"models"}})
	e.waitFor(30*time.Second, "the volume deleted", func() (bool, string) {
		return len(sim.Objects("network-volumes")) == 0, fmt.Sprint(sim.Objects("network-volumes"))
	})
	if m := sim.Misses(); len(m) > 0 {
		t.Errorf("requests RunPod would refuse: %v", m)
	}
}
