package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dstackgo/dstack/internal/client"
)

// TestPlanShowsBlocks prints an offer of one block of a host split in two as dstack does: (1/2)
// after the instance type.
func TestPlanShowsBlocks(t *testing.T) {
	plan := &client.RunPlan{ProjectName: "main", User: "admin", JobPlans: []client.JobPlan{{TotalOffers: 2, Offers: []client.Offer{
		{Backend: "remote", Region: "remote", Instance: client.InstanceType{Name: "ssh"}, Availability: "idle", Blocks: 1, TotalBlocks: 2},
		{Backend: "remote", Region: "remote", Instance: client.InstanceType{Name: "whole"}, Availability: "idle", Blocks: 1, TotalBlocks: 1},
	}}}}
	var out bytes.Buffer
	printRunPlan(&out, plan, &configFile{Path: "task.dstack.yml", Type: "task", Conf: map[string]any{}})
	if !strings.Contains(out.String(), "ssh (1/2)") || strings.Contains(out.String(), "whole (") {
		t.Fatalf("plan:\n%s", out.String())
	}
}
