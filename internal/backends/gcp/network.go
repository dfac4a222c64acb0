package gcp

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"google.golang.org/api/compute/v1"

	"github.com/dstackgo/dstack/internal/backends"
)

// Networks (spec §1.3, §2.1, §9.3): the VPC (vpc_name, default `default`, in vpc_project_id or the
// project), its Cloud NAT when instances get no public IPs, and the extra VPCs of GPUDirect.
//
//   - The credential check gets the VPC (networks.get); with public_ips false and nat_check not
//     false, it lists the Cloud Routers of every configured region (routers.list) and wants one
//     of the VPC with a Cloud NAT gateway (a non-empty nats) in each, as instances without public
//     IPs reach the internet (the shim's downloads, image pulls) only through it.
//   - extra_vpcs are got too (networks.get). Their subnets are looked up when an A3 instance is
//     created, in its region only (spec §1.3: a region without them should not fail the check),
//     as dstack does: a3-highgpu-8g and a3-edgegpu-8g take the first 4, a3-megagpu-8g the first 8,
//     one gVNIC network interface each after nic0, in order; other machine types ignore them.

// maxRegionChecks bounds the regions whose routers are listed at once.
const maxRegionChecks = 12

// vpcOf is the config's VPC: its name and the project that holds it.
func vpcOf(cfg backends.Config, project string) (name, vpcProject string) {
	name, vpcProject = cfg.String("vpc_name"), cfg.String("vpc_project_id")
	if name == "" {
		name = "default"
	}
	if vpcProject == "" {
		vpcProject = project
	}
	return name, vpcProject
}

func networkPath(project, vpc string) string {
	return "projects/" + project + "/global/networks/" + vpc
}

// publicIPsOf is public_ips, true unless set false; natCheckOf is nat_check, likewise.
func publicIPsOf(cfg backends.Config) bool { return cfg.Values["public_ips"] != false }
func natCheckOf(cfg backends.Config) bool  { return cfg.Values["nat_check"] != false }

// extraNICs is how many of extra_vpcs a machine type takes as GPUDirect interfaces (0: none).
func extraNICs(machineType string) int {
	switch machineType {
	case "a3-megagpu-8g":
		return 8
	case "a3-highgpu-8g", "a3-edgegpu-8g":
		return 4
	}
	return 0
}

// checkNetworks is the network part of the credential check: the VPC and the extra VPCs exist,
// and, without public IPs, each region has the VPC's Cloud NAT. Config problems are a
// *backends.CredentialsError naming the field to fix; other failures go through probeError.
func checkNetworks(ctx context.Context, s *session, cfg backends.Config) error {
	vpc, vpcProject := vpcOf(cfg, s.project)
	vpcFields := [][]string{{"vpc_name"}}
	if cfg.String("vpc_project_id") != "" {
		vpcFields = append(vpcFields, []string{"vpc_project_id"})
	}
	if err := getNetwork(ctx, s, vpcProject, vpc); isNotFound(err) {
		return &backends.CredentialsError{Msg: fmt.Sprintf("VPC %s not found in project %s; set vpc_name to an existing VPC (see `gcloud compute networks list --project %s`)",
			vpc, vpcProject, vpcProject), Fields: vpcFields}
	} else if err != nil {
		return s.probeError(err)
	}
	for _, extra := range cfg.Strings("extra_vpcs") {
		if extra == vpc {
			return &backends.CredentialsError{Msg: fmt.Sprintf("extra_vpcs lists %s, the main VPC (vpc_name); each network interface needs its own VPC", extra),
				Fields: [][]string{{"extra_vpcs"}}}
		}
		if err := getNetwork(ctx, s, vpcProject, extra); isNotFound(err) {
			return &backends.CredentialsError{Msg: fmt.Sprintf("extra_vpcs: VPC %s not found in project %s; create it (one subnet per region for GPUDirect) or remove it from extra_vpcs",
				extra, vpcProject), Fields: [][]string{{"extra_vpcs"}}}
		} else if err != nil {
			return s.probeError(err)
		}
	}
	if publicIPsOf(cfg) || !natCheckOf(cfg) {
		return nil
	}
	regions := regionsOf(cfg)
	has := make([]bool, len(regions))
	errs := make([]error, len(regions))
	sem := make(chan struct{}, maxRegionChecks)
	var wg sync.WaitGroup
	for i, r := range regions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			has[i], errs[i] = hasCloudNAT(ctx, s, vpcProject, vpc, r)
		}()
	}
	wg.Wait()
	var without []string
	for i, r := range regions {
		if errs[i] != nil {
			if ge := apiError(errs[i]); ge != nil && ge.Code == http.StatusNotFound {
				return &backends.CredentialsError{Msg: fmt.Sprintf("region %s not found in project %s; fix regions", r, vpcProject), Fields: [][]string{{"regions"}}}
			}
			return fmt.Errorf("region %s: %w", r, s.probeError(errs[i]))
		}
		if !has[i] {
			without = append(without, r)
		}
	}
	if len(without) > 0 {
		sort.Strings(without)
		return &backends.CredentialsError{Msg: fmt.Sprintf("public_ips is false but VPC %s of project %s has no Cloud NAT in %s, so instances there could not reach the internet; "+
			"create a Cloud NAT for the VPC in those regions (`gcloud compute routers nats create`), or set nat_check: false if they have another way out",
			vpc, vpcProject, strings.Join(without, ", ")), Fields: [][]string{{"public_ips"}, {"nat_check"}}}
	}
	return nil
}

func getNetwork(ctx context.Context, s *session, project, name string) error {
	return s.do(ctx, func() error {
		_, err := s.svc.Networks.Get(project, name).Context(ctx).Do()
		return err
	})
}

// hasCloudNAT reports whether a region has a Cloud Router of the VPC with a NAT gateway.
func hasCloudNAT(ctx context.Context, s *session, project, vpc, region string) (bool, error) {
	want := networkPath(project, vpc)
	found := false
	err := s.do(ctx, func() error {
		return s.svc.Routers.List(project, region).Context(ctx).Pages(ctx, func(l *compute.RouterList) error {
			for _, r := range l.Items {
				if len(r.Nats) > 0 && strings.HasSuffix(r.Network, want) {
					found = true
				}
			}
			return nil
		})
	})
	return found, err
}

// subnetOf finds a VPC's subnetwork in a region (subnetworks.list of the VPC's project), "" when
// it has none.
func subnetOf(ctx context.Context, s *session, project, vpc, region string) (string, error) {
	want := networkPath(project, vpc)
	sn := ""
	err := s.do(ctx, func() error {
		return s.svc.Subnetworks.List(project, region).Context(ctx).Pages(ctx, func(l *compute.SubnetworkList) error {
			for _, it := range l.Items {
				if sn == "" && strings.HasSuffix(it.Network, want) {
					sn = "projects/" + project + "/regions/" + region + "/subnetworks/" + it.Name
				}
			}
			return nil
		})
	})
	return sn, err
}
