package fake_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	tpuapi "google.golang.org/api/tpu/v2"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
)

// uaTransport puts dstack's User-Agent on every request, as the backends do.
type uaTransport struct{}

func (uaTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", backends.UserAgent+" test")
	return http.DefaultTransport.RoundTrip(r)
}

// tpuClient is Google's Cloud TPU client on the simulation, with an access token of the good key.
func tpuClient(t *testing.T, srv *fake.Server) (*tpuapi.Service, *http.Client) {
	t.Helper()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: uaTransport{}})
	creds, err := google.CredentialsFromJSONWithType(ctx, []byte(fake.GCPKeyJSON(srv.URL)), google.ServiceAccount, tpuapi.CloudPlatformScope)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &oauth2.Transport{Source: creds.TokenSource, Base: uaTransport{}}}
	svc, err := tpuapi.NewService(context.Background(), option.WithHTTPClient(hc), option.WithEndpoint(srv.URL+"/"))
	if err != nil {
		t.Fatal(err)
	}
	return svc, hc
}

// status is the google.rpc.Status name of a failed call's error, with its HTTP code.
func status(err error) (int, string) {
	var ge *googleapi.Error
	if !errors.As(err, &ge) {
		return 0, ""
	}
	for _, s := range []string{"INVALID_ARGUMENT", "PERMISSION_DENIED", "NOT_FOUND", "ALREADY_EXISTS"} {
		if strings.Contains(ge.Body, `"status":"`+s+`"`) {
			return ge.Code, s
		}
	}
	return ge.Code, ""
}

func tpuNode(acceleratorType, runtime string) *tpuapi.Node {
	return &tpuapi.Node{AcceleratorType: acceleratorType, RuntimeVersion: runtime, Labels: map[string]string{"dstack_server": "s1"},
		Metadata:      map[string]string{"ssh-keys": "ubuntu:ssh-ed25519 AAAA test", "startup-script": "#!/bin/sh\n"},
		NetworkConfig: &tpuapi.NetworkConfig{Network: "projects/sim-project/global/networks/default", EnableExternalIps: true}}
}

// TestGCPTPUWire drives the Cloud TPU simulation with Google's client: operations, node states,
// pagination and the API's refusals.
func TestGCPTPUWire(t *testing.T) {
	srv := fake.Start(t, "gcp")
	svc, hc := tpuClient(t, srv)
	ctx := context.Background()
	nodes := svc.Projects.Locations.Nodes
	const loc = "projects/sim-project/locations/us-central1-a"

	// Locations, two to a page.
	var zones []string
	err := svc.Projects.Locations.List("projects/sim-project").PageSize(2).Pages(ctx, func(l *tpuapi.ListLocationsResponse) error {
		if len(l.Locations) > 2 {
			t.Errorf("page of %d locations, want at most 2", len(l.Locations))
		}
		for _, x := range l.Locations {
			zones = append(zones, x.LocationId)
		}
		return nil
	})
	if err != nil || !slices.Contains(zones, "us-central1-a") || !slices.Contains(zones, "europe-west4-b") || len(zones) < 5 {
		t.Fatalf("locations %v, %v", zones, err)
	}

	// A node: CREATING, then READY with an endpoint; its operation done with the node.
	op, err := nodes.Create(loc, tpuNode("v5litepod-4", "v2-alpha-tpuv5-lite")).NodeId("n1").Do()
	if err != nil || op.Done || !strings.HasPrefix(op.Name, loc+"/operations/") {
		t.Fatalf("create = %+v, %v", op, err)
	}
	if n, err := nodes.Get(loc + "/nodes/n1").Do(); err != nil || n.State != "CREATING" || len(n.NetworkEndpoints) != 0 {
		t.Errorf("node while creating = %+v, %v", n, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !op.Done && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if op, err = svc.Projects.Locations.Operations.Get(op.Name).Do(); err != nil {
			t.Fatal(err)
		}
	}
	if !op.Done || op.Error != nil || !strings.Contains(string(op.Response), `"state":"READY"`) {
		t.Errorf("operation %+v, response %s", op, op.Response)
	}
	n, err := nodes.Get(loc + "/nodes/n1").Do()
	m, _ := srv.Machine("n1")
	if err != nil || n.State != "READY" || len(n.NetworkEndpoints) != 1 || n.NetworkEndpoints[0].IpAddress != m.PrivateIP ||
		n.NetworkEndpoints[0].AccessConfig.ExternalIp != m.IP || n.AcceleratorType != "v5litepod-4" {
		t.Errorf("ready node = %+v, %v", n, err)
	}

	// Refusals.
	_, err = nodes.Create(loc, tpuNode("v5litepod-4", "v2-alpha-tpuv5-lite")).NodeId("n1").Do()
	if code, st := status(err); code != 409 || st != "ALREADY_EXISTS" {
		t.Errorf("duplicate nodeId = %v", err)
	}
	_, err = nodes.Create(loc, tpuNode("v4-8", "tpu-ubuntu2204-base")).NodeId("n2").Do() // v4 is not sold in us-central1-a
	if code, st := status(err); code != 400 || st != "INVALID_ARGUMENT" {
		t.Errorf("acceleratorType not sold in the zone = %v", err)
	}
	_, err = nodes.Create(loc, tpuNode("v5litepod-4", "tpu-ubuntu2204-base")).NodeId("n2").Do()
	if code, st := status(err); code != 400 || st != "INVALID_ARGUMENT" {
		t.Errorf("runtimeVersion of another generation = %v", err)
	}
	if _, err = nodes.Get(loc + "/nodes/none").Do(); !isStatus(err, 404, "NOT_FOUND") {
		t.Errorf("get of a missing node = %v", err)
	}
	if _, err = nodes.Delete(loc + "/nodes/none").Do(); !isStatus(err, 404, "NOT_FOUND") {
		t.Errorf("delete of a missing node = %v", err)
	}
	_, err = nodes.List("projects/another-project-id/locations/us-central1-a").Do()
	var ge *googleapi.Error
	if !errors.As(err, &ge) || ge.Code != 403 || !strings.Contains(ge.Body, "SERVICE_DISABLED") {
		t.Errorf("list in a project without the API = %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/"+loc+"/nodes", nil)
	req.Header.Set("User-Agent", backends.UserAgent)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("list without a token = %v, %v", resp, err)
	}

	// A stockout: the create's operation ends with RESOURCE_EXHAUSTED, and no node is left.
	op, err = nodes.Create(loc, tpuNode("v5litepod-8", "v2-alpha-tpuv5-lite")).NodeId("n3").Do()
	if err != nil || op.Done {
		t.Fatalf("create in an exhausted zone = %+v, %v", op, err)
	}
	op, err = svc.Projects.Locations.Operations.Get(op.Name).Do()
	if err != nil || !op.Done || op.Error == nil || op.Error.Code != 8 || !strings.Contains(op.Error.Message, "There is no more capacity in the zone") {
		t.Errorf("stockout operation = %+v, %v", op, err)
	}
	if _, ok := srv.Machine("n3"); ok {
		t.Errorf("a stockout left node n3")
	}
	srv.SetNoCapacity(true)
	op, err = nodes.Create(loc, tpuNode("v5litepod-1", "v2-alpha-tpuv5-lite")).NodeId("n4").Do()
	if err != nil || !op.Done || op.Error == nil || op.Error.Code != 8 {
		t.Errorf("create without capacity = %+v, %v", op, err)
	}
	srv.SetNoCapacity(false)

	// Pagination of nodes: one to a page.
	if _, err := nodes.Create(loc, tpuNode("v5litepod-1", "v2-alpha-tpuv5-lite")).NodeId("n5").Do(); err != nil {
		t.Fatal(err)
	}
	first, err := nodes.List(loc).PageSize(1).Do()
	if err != nil || len(first.Nodes) != 1 || first.NextPageToken == "" {
		t.Errorf("first page = %+v, %v", first, err)
	}
	var names []string
	err = nodes.List(loc).PageSize(1).Pages(ctx, func(l *tpuapi.ListNodesResponse) error {
		for _, n := range l.Nodes {
			names = append(names, n.Name)
		}
		return nil
	})
	if err != nil || !slices.Equal(names, []string{loc + "/nodes/n1", loc + "/nodes/n5"}) {
		t.Errorf("nodes %v, %v", names, err)
	}
	if _, err := nodes.List(loc).PageToken("garbage").Do(); !isStatus(err, 400, "INVALID_ARGUMENT") {
		t.Errorf("list with a bad page token = %v", err)
	}

	// Deletes: an operation; the nodes are gone.
	for _, id := range []string{"n1", "n5"} {
		op, err := nodes.Delete(loc + "/nodes/" + id).Do()
		if err != nil {
			t.Fatal(err)
		}
		if op, err = svc.Projects.Locations.Operations.Get(op.Name).Do(); err != nil || !op.Done || op.Error != nil {
			t.Errorf("delete operation = %+v, %v", op, err)
		}
	}
	if alive := srv.Alive(); len(alive) != 0 {
		t.Errorf("alive after deletes: %+v", alive)
	}
	resp, err := hc.Get(srv.URL + "/v2/" + loc + "/nodes")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), `"name"`) {
		t.Errorf("nodes after deletes: %s", body)
	}
	// The refusals above are what a real client would have been refused for, and the miss list says so.
	if misses := srv.Misses(); len(misses) != 4 {
		t.Errorf("misses %v, want the two malformed creates, the bad page token and the call without a token", misses)
	}
}

func isStatus(err error, code int, st string) bool {
	c, s := status(err)
	return c == code && s == st
}
