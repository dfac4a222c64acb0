package tensordock_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
	_ "github.com/dstackgo/dstack/internal/backends/tensordock"
	"github.com/dstackgo/dstack/internal/offers"
)

// TestHostnodes: offers from online hostnodes only, carrying the model id the deploy needs; the VM
// gets cloud-init for the `user` account and is reached on the port forwarded to 22.
func TestHostnodes(t *testing.T) {
	srv := fake.Use(t, "tensordock")
	d, _ := backends.Lookup("tensordock")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := d.NewOffers(srv.Good, nil).Offers(ctx, offers.Requirements{})
	if err != nil {
		t.Fatal(err)
	}
	var a6000 offers.Offer
	for _, o := range list {
		if o.Region == "germany" {
			t.Errorf("offer on the offline hostnode: %+v", o)
		}
		if g := o.Instance.Resources.GPUs; len(g) == 1 && g[0].Name == "RTXA6000" {
			a6000 = o
		}
	}
	if a6000.BackendData["gpu_model"] != "rtxa6000-pcie-48gb" || a6000.Region != "canada" {
		t.Fatalf("A6000 offer %+v", a6000)
	}
	comp, _ := d.NewCompute(srv.Good)
	pd, err := comp.CreateInstance(ctx, a6000, backends.InstanceConfig{ProjectName: "main", InstanceName: "td-0",
		SSHPublicKeys: []string{"ssh-ed25519 AAAA k"}, ShimURL: "http://srv/dstack-shim"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := srv.Machine(pd.InstanceID)
	if m.Type != "rtxa6000-pcie-48gb" || m.GPUs != 1 || !strings.Contains(m.UserData, "/home/user/.ssh") || pd.Username != "user" {
		t.Errorf("machine %+v pd %+v", m, pd)
	}
	for pd.Hostname == nil {
		if err := comp.UpdateProvisioningData(ctx, pd); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if *pd.Hostname != m.IP || *pd.SSHPort != m.SSHPort {
		t.Errorf("address %s:%d, want %s:%d", *pd.Hostname, *pd.SSHPort, m.IP, m.SSHPort)
	}
	if err := comp.TerminateInstance(ctx, pd.InstanceID, "", ""); err != nil {
		t.Fatal(err)
	}
	if m := srv.Misses(); len(m) > 0 {
		t.Errorf("misses: %v", m)
	}
}
