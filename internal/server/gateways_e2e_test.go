package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestE2EGatewayAWS runs a gateway on an AWS machine of the simulator, backed by a test host: the
// server creates the machine, installs dstack-gateway on it over SSH and starts it; a service run
// of the project (through the default gateway, https: false) is then served by the gateway at
// web.<domain>, with the dstack token checked by the gateway itself; changing the wildcard domain
// moves the service; deleting the gateway terminates its machine.
func TestE2EGatewayAWS(t *testing.T) {
	e, sim, hosts := newCloudE2E(t, "aws", true)
	gw := e.must("admin", "/api/project/main/gateways/create", map[string]any{"configuration": map[string]any{
		"type": "gateway", "name": "gw", "backend": "aws", "region": "us-east-1", "domain": "*.example.test"}}).(map[string]any)
	if gw["default"] != true || gw["wildcard_domain"] != "example.test" {
		t.Fatalf("the project's first gateway is its default, with the domain as given: %v", gw)
	}
	// A second one by the same name is refused.
	if code, body := e.callText("admin", "/api/project/main/gateways/create", map[string]any{"configuration": map[string]any{
		"type": "gateway", "name": "gw", "backend": "aws", "region": "us-east-1"}}); code != http.StatusBadRequest || !strings.Contains(body, "resource_exists") {
		t.Fatalf("duplicate: %d %s", code, body)
	}
	e.waitFor(3*time.Minute, "gateway running", func() (bool, string) {
		gw = e.must("admin", "/api/project/main/gateways/get", map[string]any{"name": "gw"}).(map[string]any)
		return gw["status"] == "running" || gw["status"] == "failed", fmt.Sprintf("%v %v", gw["status"], gw["status_message"])
	})
	if gw["status"] != "running" {
		t.Fatalf("gateway %v: %v", gw["status"], gw["status_message"])
	}
	ip, _ := gw["ip_address"].(string)
	if ip == "" || gw["hostname"] != ip || len(gw["replicas"].([]any)) != 1 {
		t.Fatalf("gateway address: %v", gw)
	}

	conf := map[string]any{"type": "service", "name": "web", "port": 8080, "https": false, "idle_duration": 1,
		"commands":  []string{"mkdir -p /tmp/www && echo via-gateway > /tmp/www/index.html && httpd -f -p 8080 -h /tmp/www"},
		"resources": map[string]any{"cpu": "1..", "memory": "0.1GB..", "disk": "0.1GB.."}}
	spec := map[string]any{"run_name": "web", "configuration": conf, "profile": map[string]any{"name": "default"}}
	e.must("admin", "/api/project/main/runs/apply", map[string]any{"plan": map[string]any{"run_spec": spec}, "force": false})
	run := e.waitRun("web", 3*time.Minute, "running")
	if svc, _ := run["service"].(map[string]any); svc["url"] != "http://web.example.test" {
		t.Fatalf("service url: %v", run["service"])
	}
	get := func(host, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+net.JoinHostPort(ip, "80")+"/index.html", nil)
		req.Host = host
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	e.waitFor(time.Minute, "the gateway serves the service", func() (bool, string) {
		code, body := get("web.example.test", adminToken)
		return code == http.StatusOK && body == "via-gateway\n", fmt.Sprintf("%d %s", code, body)
	})
	if code, _ := get("web.example.test", ""); code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", code)
	}
	if code, _ := get("web.example.test", "not-a-token"); code != http.StatusForbidden {
		t.Fatalf("a wrong token: %d", code)
	}
	if code, _ := get("other.example.test", adminToken); code != http.StatusNotFound {
		t.Fatalf("an unknown service: %d", code)
	}

	// A new domain: the service moves there at once.
	e.must("admin", "/api/project/main/gateways/set_wildcard_domain", map[string]any{"name": "gw", "wildcard_domain": "apps.example.test"})
	e.waitFor(time.Minute, "the service at the new domain", func() (bool, string) {
		code, body := get("web.apps.example.test", adminToken)
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
	if code, _ := get("web.example.test", adminToken); code != http.StatusNotFound {
		t.Fatalf("the old domain still routes: %d", code)
	}

	e.must("admin", "/api/project/main/runs/stop", map[string]any{"runs_names": []string{"web"}, "abort": true})
	e.waitRun("web", time.Minute, "terminated", "failed", "done")
	e.waitFor(time.Minute, "the stopped service is no longer routed", func() (bool, string) {
		code, body := get("web.apps.example.test", adminToken)
		return code == http.StatusNotFound, fmt.Sprintf("%d %s", code, body)
	})

	e.must("admin", "/api/project/main/gateways/delete", map[string]any{"names": []string{"gw"}})
	e.waitFor(time.Minute, "gateway deleted", func() (bool, string) {
		list := e.must("admin", "/api/project/main/gateways/list", map[string]any{"include_imported": true}).([]any)
		return len(list) == 0, fmt.Sprintf("%d gateways", len(list))
	})
	e.waitTornDown(sim, hosts, 2*time.Minute)
}

// TestGatewayAPIErrors checks the refusals of the gateway API that need no machine.
func TestGatewayAPIErrors(t *testing.T) {
	e, _, _ := newCloudE2E(t, "aws", false)
	for _, tc := range []struct {
		conf map[string]any
		want string
	}{
		{map[string]any{"type": "gateway", "backend": "gcp", "region": "us-central1"}, "Backend gcp is not configured"},
		{map[string]any{"type": "gateway", "backend": "aws"}, "region: required"},
		{map[string]any{"type": "gateway", "backend": "lambda", "region": "x"}, "cannot host gateways"},
	} {
		code, body := e.callText("admin", "/api/project/main/gateways/create", map[string]any{"configuration": tc.conf})
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("%v: %d %s (want %q)", tc.conf, code, body, tc.want)
		}
	}
	if code, body := e.callText("admin", "/api/project/main/gateways/get", map[string]any{"name": "nope"}); code != http.StatusBadRequest || !strings.Contains(body, "resource_not_exists") {
		t.Errorf("get missing: %d %s", code, body)
	}
	// A service that asks for the default gateway of a project without one is refused at apply.
	conf := map[string]any{"type": "service", "port": 8080, "gateway": true, "commands": []string{"true"}}
	spec := map[string]any{"run_name": "svc", "configuration": conf, "profile": map[string]any{"name": "default"}}
	if code, body := e.callText("admin", "/api/project/main/runs/apply", map[string]any{"plan": map[string]any{"run_spec": spec}, "force": false}); code != http.StatusBadRequest || !strings.Contains(body, "has none") {
		t.Errorf("service without a gateway: %d %s", code, body)
	}
	// Members who are not project admins cannot create gateways.
	if code, _ := e.callText("member", "/api/project/main/gateways/create", map[string]any{"configuration": map[string]any{
		"type": "gateway", "backend": "aws", "region": "us-east-1"}}); code != http.StatusForbidden {
		t.Errorf("a member creates a gateway: %d", code)
	}
}

// callText is call with the answer as JSON text, for matching error codes and messages.
func (e *env) callText(role, path string, body any) (int, string) {
	e.t.Helper()
	code, out := e.call(role, path, body)
	data, _ := json.Marshal(out)
	return code, string(data)
}
