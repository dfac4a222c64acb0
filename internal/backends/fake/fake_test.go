package fake_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	_ "github.com/dstackgo/dstack/internal/backends/all"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/offers"
)

// recordingHost is a Host that hands out a fixed address after a delay and records calls.
type recordingHost struct {
	mu      sync.Mutex
	started []fake.Machine
	stopped []string
	fail    bool
}

func (h *recordingHost) Start(ctx context.Context, m fake.Machine) (fake.Addr, error) {
	select {
	case <-time.After(30 * time.Millisecond):
	case <-ctx.Done():
		return fake.Addr{}, ctx.Err()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.started = append(h.started, m)
	if h.fail {
		return fake.Addr{}, errors.New("no room on this host")
	}
	return fake.Addr{IP: "127.0.0.1", PrivateIP: "127.0.0.1", SSHPort: 2222, Ports: map[int]int{10022: 2222}}, nil
}

func (h *recordingHost) Stop(ctx context.Context, m fake.Machine) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = append(h.stopped, m.ID)
	return nil
}

func lambdaOffer() offers.Offer {
	return offers.Offer{Backend: "lambda", Region: "us-east-1", Price: 1.29,
		Instance: offers.InstanceType{Name: "gpu_1x_a10", Resources: offers.Resources{CPUs: 30, MemoryMiB: 200 << 10,
			GPUs: []offers.GPU{{Name: "A10", MemoryMiB: 24 << 10, Vendor: "nvidia"}}}}}
}

var key = []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl p"}

// TestHost: a hosted machine gets the host's address, is active only once the host is up, and is
// stopped on terminate; a host that fails makes the machine fail as the provider reports it.
func TestHost(t *testing.T) {
	host := &recordingHost{}
	srv := fake.StartWith(t, "lambda", fake.Options{Host: host})
	t.Setenv(backends.EnvAPIURL("lambda"), srv.URL)
	d, _ := backends.Lookup("lambda")
	comp, _ := d.NewCompute(srv.Good)
	ctx := context.Background()
	pd, err := comp.CreateInstance(ctx, lambdaOffer(), backends.InstanceConfig{ProjectName: "main", InstanceName: "h-0", SSHPublicKeys: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := comp.UpdateProvisioningData(ctx, pd); err != nil || pd.Hostname != nil {
		t.Fatalf("before the host is up: %v, hostname %v", err, pd.Hostname)
	}
	for deadline := time.Now().Add(5 * time.Second); pd.Hostname == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the hosted machine never came up")
		}
		if err := comp.UpdateProvisioningData(ctx, pd); err != nil {
			t.Fatal(err)
		}
	}
	if *pd.Hostname != "127.0.0.1" {
		t.Errorf("hostname %s, want the host's", *pd.Hostname)
	}
	host.mu.Lock()
	if len(host.started) != 1 || host.started[0].Name != "dstack-main-h-0" || host.started[0].Extra["public_key"] != key[0] {
		t.Errorf("host started %+v", host.started)
	}
	host.mu.Unlock()
	if err := comp.TerminateInstance(ctx, pd.InstanceID, "", ""); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		host.mu.Lock()
		n := len(host.stopped)
		host.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the host was not stopped")
		}
	}

	host.fail = true
	pd, err = comp.CreateInstance(ctx, lambdaOffer(), backends.InstanceConfig{ProjectName: "main", InstanceName: "h-1", SSHPublicKeys: key})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		m, _ := srv.Machine(pd.InstanceID)
		if m.Status == fake.StatusFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %s, want failed", m.Status)
		}
	}
}

// TestLenient: the simulator's policy accepts any credential without "invalid"; the unit fakes'
// policy only the good one.
func TestLenient(t *testing.T) {
	d, _ := backends.Lookup("runpod")
	cfg := fake.GoodConfig("runpod")
	cfg.Values["creds"].(map[string]any)["api_key"] = "US9XTPDIV8AR42MMINY8TCKRB8S4E7LNRQ6CAUQ9"
	strict := fake.Use(t, "runpod")
	if err := d.Check(context.Background(), cfg); err == nil {
		t.Errorf("the strict fake accepted a key it does not know")
	}
	lenient := fake.StartWith(t, "runpod", fake.Options{Auth: fake.Lenient})
	t.Setenv(backends.EnvAPIURL("runpod"), lenient.URL)
	if err := d.Check(context.Background(), cfg); err != nil {
		t.Errorf("the lenient fake refused a plausible key: %v", err)
	}
	cfg.Values["creds"].(map[string]any)["api_key"] = "my-INVALID-key"
	var ce *backends.CredentialsError
	if err := d.Check(context.Background(), cfg); !errors.As(err, &ce) {
		t.Errorf("the lenient fake took an invalid key: %v", err)
	}
	_ = strict
}

// TestFaultRate: faults come at about the rate asked, of the kinds asked.
func TestFaultRate(t *testing.T) {
	srv := fake.StartWith(t, "vultr", fake.Options{Faults: fake.Faults{Rate: 0.5, Kinds: []string{fake.FaultThrottle}}, Seed: 1})
	statuses := map[int]int{}
	for i := 0; i < 200; i++ {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/ssh-keys", nil)
		req.Header.Set("Authorization", "Bearer SECRETVULTRGOOD7F2Q4K9Z1XW3")
		req.Header.Set("User-Agent", backends.UserAgent)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses[resp.StatusCode]++
	}
	if n := statuses[http.StatusTooManyRequests]; n < 70 || n > 130 || statuses[http.StatusOK]+n != 200 {
		t.Errorf("statuses %v, want about half 429", statuses)
	}
	if got := srv.FaultsInjected()[fake.FaultThrottle]; got != statuses[http.StatusTooManyRequests] {
		t.Errorf("FaultsInjected %d, answered %d", got, statuses[http.StatusTooManyRequests])
	}
}

// TestCatalogs: every catalog the fakes publish parses and names what the fakes sell.
func TestCatalogs(t *testing.T) {
	for _, typ := range []string{"lambda", "runpod", "datacrunch", "aws"} {
		csv := fake.CatalogCSV(typ)
		if !strings.HasPrefix(csv, "instance_name,location,price,") || strings.Count(csv, "\n") < 5 {
			t.Errorf("%s catalog:\n%s", typ, csv)
		}
		if _, err := fake.Tables().TableFor(typ); err != nil {
			t.Errorf("%s table: %v", typ, err)
		}
	}
}
