package oci

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"
	"github.com/oracle/oci-go-sdk/v65/core"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
	"github.com/dstackgo/dstack/internal/offers"
)

// Machines on OCI Compute (spec §5):
//
//   - CreateInstance finds the compartment and the region's network (network.go) and the newest
//     available Canonical Ubuntu 22.04 image for the shape (ListImages), then LaunchInstance: the
//     offer's shape (flexible shapes get ocpus = vCPUs/2 and the offer's memory), the image with a
//     boot volume of the offer's disk, a VNIC in the subnet with a public IP, metadata
//     ssh_authorized_keys and user_data (base64 bootstrap.CloudConfig, which starts dstack-shim),
//     InstanceConfig.Tags as freeform tags, preemptible (terminate on preemption) for spot offers,
//     and an opc-retry-token digesting the request so a retried launch gets the same instance. It
//     tries the availability domains of the offer in turn: a capacity refusal ("Out of host
//     capacity", LimitExceeded) moves on to the next; when all refuse, the result is a
//     *backends.NoCapacityError.
//   - UpdateProvisioningData is GetInstance: RUNNING instances get their primary VNIC's public
//     IP (ListVnicAttachments, GetVnic) as hostname, port 22; PROVISIONING and STARTING nothing yet;
//     anything else (STOPPED, TERMINATING, TERMINATED, gone) a *backends.ProvisioningError.
//   - TerminateInstance is TerminateInstance with preserveBootVolume=false; an instance OCI does
//     not know (404) or one already TERMINATING/TERMINATED is success.
//   - ListInstances (backends.InstanceLister) lists in every region the compartment's instances
//     that are not terminated and carry a dstack_server freeform tag.
//
// Throttling (429) and 5xx other than capacity are retried (4 attempts, backoff up to 2 s);
// authentication refusals are a *backends.CredentialsError.

// Username is the SSH user of the Ubuntu images.
const Username = "ubuntu"

// Image is what CreateInstance boots.
const (
	ImageOS        = "Canonical Ubuntu"
	ImageOSVersion = "22.04"
)

const (
	compartmentTTL = time.Hour
	networkTTL     = 10 * time.Minute
	imageTTL       = time.Hour
)

type compute struct {
	cfg backends.Config

	sess backends.Lazy[*session]

	mu          sync.Mutex
	compartment cached[string]
	networks    map[string]cached[*network] // region/project
	images      map[string]cached[string]   // region/shape -> image id
}

func newCompute(cfg backends.Config) (backends.Compute, error) {
	return &compute{cfg: cfg, networks: map[string]cached[*network]{}, images: map[string]cached[string]{}}, nil
}

func (c *compute) session() (*session, error) {
	return c.sess.Get(func() (*session, error) { return newSession(c.cfg, true) })
}

// sharedTags are the tags of resources that machines share (compartment, network).
func sharedTags(cfg backends.InstanceConfig) map[string]string {
	tags := map[string]string{"dstack_project": cfg.ProjectName}
	if v := cfg.Tags["dstack_server"]; v != "" {
		tags["dstack_server"] = v
	}
	return tags
}

// instanceTags are an instance's freeform tags: dstack_project, dstack_instance and the
// InstanceConfig's tags over them.
func instanceTags(cfg backends.InstanceConfig) map[string]string {
	tags := map[string]string{"dstack_project": cfg.ProjectName, "dstack_instance": cfg.InstanceName}
	for k, v := range cfg.Tags {
		tags[k] = v
	}
	return tags
}

func (c *compute) compartmentID(ctx context.Context, s *session, tags map[string]string) (string, error) {
	c.mu.Lock()
	cc := c.compartment
	c.mu.Unlock()
	if cc.fresh(compartmentTTL) {
		return cc.v, nil
	}
	id, err := s.findCompartment(ctx, c.cfg, true, tags)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.compartment = cached[string]{id, time.Now()}
	c.mu.Unlock()
	return id, nil
}

func (c *compute) network(ctx context.Context, s *session, region, compartment, project string, tags map[string]string) (*network, error) {
	key := region + "/" + project
	c.mu.Lock()
	n := c.networks[key]
	c.mu.Unlock()
	if n.fresh(networkTTL) {
		return n.v, nil
	}
	net, err := s.ensureNetwork(ctx, region, compartment, project, tags)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.networks[key] = cached[*network]{net, time.Now()}
	c.mu.Unlock()
	return net, nil
}

// imageFor finds the newest available Ubuntu image that runs a shape.
func (c *compute) imageFor(ctx context.Context, s *session, region, compartment, shape string) (string, error) {
	key := region + "/" + shape
	c.mu.Lock()
	im := c.images[key]
	c.mu.Unlock()
	if im.fresh(imageTTL) {
		return im.v, nil
	}
	cc, err := s.computeClient(region)
	if err != nil {
		return "", err
	}
	resp, err := cc.ListImages(sdkCtx(ctx), core.ListImagesRequest{CompartmentId: common.String(compartment),
		OperatingSystem: common.String(ImageOS), OperatingSystemVersion: common.String(ImageOSVersion), Shape: common.String(shape),
		SortBy: core.ListImagesSortByTimecreated, SortOrder: core.ListImagesSortOrderDesc, LifecycleState: core.ImageLifecycleStateAvailable})
	if err != nil {
		return "", s.mapError(region, "ListImages", err)
	}
	for _, i := range resp.Items {
		if i.Id != nil && i.LifecycleState == core.ImageLifecycleStateAvailable {
			c.mu.Lock()
			c.images[key] = cached[string]{*i.Id, time.Now()}
			c.mu.Unlock()
			return *i.Id, nil
		}
	}
	return "", &backends.ProvisioningError{Msg: fmt.Sprintf("OCI %s: no available %s %s image for shape %s", region, ImageOS, ImageOSVersion, shape)}
}

// forget drops what CreateInstance cached about a region, after OCI said something is gone.
func (c *compute) forget(region string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.compartment = cached[string]{}
	for k := range c.networks {
		if strings.HasPrefix(k, region+"/") {
			delete(c.networks, k)
		}
	}
	for k := range c.images {
		if strings.HasPrefix(k, region+"/") {
			delete(c.images, k)
		}
	}
}

// IsFlex reports a flexible shape, which LaunchInstance needs a shape config for.
func IsFlex(shape string) bool { return strings.HasSuffix(shape, ".Flex") }

func (c *compute) CreateInstance(ctx context.Context, offer offers.Offer, cfg backends.InstanceConfig) (*backends.ProvisioningData, error) {
	s, err := c.session()
	if err != nil {
		return nil, err
	}
	region, shape := offer.Region, offer.Instance.Name
	shared := sharedTags(cfg)
	compartment, err := c.compartmentID(ctx, s, shared)
	if err != nil {
		return nil, err
	}
	net, err := c.network(ctx, s, region, compartment, cfg.ProjectName, shared)
	if err != nil {
		return nil, err
	}
	image, err := c.imageFor(ctx, s, region, compartment, shape)
	if err != nil {
		return nil, err
	}
	ads := offer.AvailabilityZones
	if len(ads) == 0 {
		if ads, err = s.availabilityDomains(ctx, region); err != nil {
			return nil, err
		}
	}
	if len(ads) == 0 {
		return nil, &backends.NoCapacityError{Msg: fmt.Sprintf("OCI %s: no availability domain offers %s", region, shape)}
	}
	diskGB := int64((offer.Instance.Resources.Disk.SizeMiB + 1023) / 1024)
	if diskGB < 50 {
		diskGB = 50 // OCI's smallest boot volume
	}
	cc, err := s.computeClient(region)
	if err != nil {
		return nil, err
	}
	name := bootstrap.ResourceName(cfg.ProjectName, cfg.InstanceName, 255)
	userData := base64.StdEncoding.EncodeToString([]byte(bootstrap.CloudConfig(cfg, Username)))
	var last error
	for _, ad := range ads {
		details := core.LaunchInstanceDetails{
			AvailabilityDomain: common.String(ad),
			CompartmentId:      common.String(compartment),
			Shape:              common.String(shape),
			DisplayName:        common.String(name),
			FreeformTags:       instanceTags(cfg),
			Metadata: map[string]string{
				"ssh_authorized_keys": strings.Join(cfg.SSHPublicKeys, "\n"),
				"user_data":           userData,
			},
			SourceDetails: core.InstanceSourceViaImageDetails{ImageId: common.String(image), BootVolumeSizeInGBs: common.Int64(diskGB)},
			CreateVnicDetails: &core.CreateVnicDetails{SubnetId: common.String(net.subnetID), AssignPublicIp: common.Bool(true),
				DisplayName: common.String(name)},
		}
		if IsFlex(shape) {
			ocpus := max(offer.Instance.Resources.CPUs/2, 1) // an x86 OCPU is two vCPUs
			details.ShapeConfig = &core.LaunchInstanceShapeConfigDetails{Ocpus: common.Float32(float32(ocpus)),
				MemoryInGBs: common.Float32(float32(offer.Instance.Resources.MemoryMiB) / 1024)}
		}
		if offer.Instance.Resources.Spot {
			details.PreemptibleInstanceConfig = &core.PreemptibleInstanceConfigDetails{
				PreemptionAction: core.TerminatePreemptionAction{PreserveBootVolume: common.Bool(false)}}
		}
		resp, err := cc.LaunchInstance(sdkCtx(ctx), core.LaunchInstanceRequest{LaunchInstanceDetails: details, OpcRetryToken: common.String(retryToken(region, details))})
		if err != nil {
			if status, _ := serviceCode(err); status == http.StatusNotFound {
				c.forget(region) // a cached subnet, image or compartment is gone
			}
			last = s.mapError(region, "LaunchInstance in "+ad, err)
			if backends.IsNoCapacity(last) && ctx.Err() == nil {
				continue
			}
			return nil, last
		}
		pd := &backends.ProvisioningData{
			Backend:          typ,
			InstanceType:     offer.Instance,
			InstanceID:       *resp.Id,
			PublicIPEnabled:  true,
			Region:           region,
			AvailabilityZone: common.String(ad),
			Price:            offer.Price,
			Username:         Username,
			Dockerized:       true,
		}
		return pd, nil
	}
	return nil, last
}

// retryToken is the opc-retry-token of a launch (at most 64 characters): a digest of the whole
// request, which names the instance, so that the SDK's retries and a repeated CreateInstance of
// the same instance in the same AD get the first launch's instance rather than a second one.
func retryToken(region string, d core.LaunchInstanceDetails) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n%s\n%v\n%v", region, *d.AvailabilityDomain, *d.DisplayName, *d.Shape, d.Metadata["user_data"],
		d.ShapeConfig != nil, d.PreemptibleInstanceConfig != nil)
	for _, k := range bootstrap.SortedKeys(d.FreeformTags) {
		fmt.Fprintf(h, "\n%s=%s", k, d.FreeformTags[k])
	}
	return "dstack-" + hex.EncodeToString(h.Sum(nil))[:40]
}

func (c *compute) UpdateProvisioningData(ctx context.Context, pd *backends.ProvisioningData) error {
	s, err := c.session()
	if err != nil {
		return err
	}
	cc, err := s.computeClient(pd.Region)
	if err != nil {
		return err
	}
	resp, err := cc.GetInstance(sdkCtx(ctx), core.GetInstanceRequest{InstanceId: common.String(pd.InstanceID)})
	if status, _ := serviceCode(err); status == http.StatusNotFound {
		return &backends.ProvisioningError{Msg: fmt.Sprintf("OCI instance %s is gone", pd.InstanceID)}
	}
	if err != nil {
		return s.mapError(pd.Region, "GetInstance", err)
	}
	switch resp.LifecycleState {
	case core.InstanceLifecycleStateProvisioning, core.InstanceLifecycleStateStarting, core.InstanceLifecycleStateCreatingImage:
		return nil
	case core.InstanceLifecycleStateRunning:
	default:
		return &backends.ProvisioningError{Msg: fmt.Sprintf("OCI instance %s is %s", pd.InstanceID, resp.LifecycleState)}
	}
	if resp.AvailabilityDomain != nil {
		pd.AvailabilityZone = common.String(*resp.AvailabilityDomain)
	}
	vnic, err := c.primaryVnic(ctx, s, pd.Region, *resp.CompartmentId, pd.InstanceID)
	if err != nil || vnic == nil {
		return err // nil, nil: the VNIC is not attached yet
	}
	if ip := deref(vnic.PrivateIp); ip != "" {
		pd.InternalIP = &ip
	}
	if ip := deref(vnic.PublicIp); ip != "" {
		port := 22
		pd.Hostname, pd.SSHPort = &ip, &port
	}
	return nil
}

// primaryVnic returns an instance's attached primary VNIC, nil while none is attached.
func (c *compute) primaryVnic(ctx context.Context, s *session, region, compartment, instanceID string) (*core.Vnic, error) {
	cc, err := s.computeClient(region)
	if err != nil {
		return nil, err
	}
	nc, err := s.networkClient(region)
	if err != nil {
		return nil, err
	}
	req := core.ListVnicAttachmentsRequest{CompartmentId: common.String(compartment), InstanceId: common.String(instanceID)}
	var ids []string
	for {
		resp, err := cc.ListVnicAttachments(sdkCtx(ctx), req)
		if err != nil {
			return nil, s.mapError(region, "ListVnicAttachments", err)
		}
		for _, a := range resp.Items {
			if a.LifecycleState == core.VnicAttachmentLifecycleStateAttached && a.VnicId != nil {
				ids = append(ids, *a.VnicId)
			}
		}
		if resp.OpcNextPage == nil {
			break
		}
		req.Page = resp.OpcNextPage
	}
	var first *core.Vnic
	for _, id := range ids {
		v, err := nc.GetVnic(sdkCtx(ctx), core.GetVnicRequest{VnicId: common.String(id)})
		if err != nil {
			return nil, s.mapError(region, "GetVnic", err)
		}
		if v.IsPrimary != nil && *v.IsPrimary {
			return &v.Vnic, nil
		}
		if first == nil {
			first = &v.Vnic
		}
	}
	return first, nil
}

func (c *compute) TerminateInstance(ctx context.Context, instanceID, region, backendData string) error {
	s, err := c.session()
	if err != nil {
		return err
	}
	if region == "" {
		return fmt.Errorf("OCI: cannot terminate %s: no region", instanceID)
	}
	cc, err := s.computeClient(region)
	if err != nil {
		return err
	}
	_, err = cc.TerminateInstance(sdkCtx(ctx), core.TerminateInstanceRequest{InstanceId: common.String(instanceID), PreserveBootVolume: common.Bool(false)})
	status, _ := serviceCode(err)
	switch {
	case err == nil, status == http.StatusNotFound:
		return nil
	case status == http.StatusConflict:
		// Refused for its state: success when that state is the end of a termination.
		got, gerr := cc.GetInstance(sdkCtx(ctx), core.GetInstanceRequest{InstanceId: common.String(instanceID)})
		if gstatus, _ := serviceCode(gerr); gstatus == http.StatusNotFound {
			return nil
		}
		if gerr == nil && (got.LifecycleState == core.InstanceLifecycleStateTerminated || got.LifecycleState == core.InstanceLifecycleStateTerminating) {
			return nil
		}
	}
	return s.mapError(region, "TerminateInstance", err)
}

// ListInstances lists, in every region of the backend, the compartment's instances that are not
// terminated and carry a dstack_server freeform tag (of any server: the caller compares it with
// its own id). It implements backends.InstanceLister for the orphan reconciler; it creates
// nothing, so a backend without dstack's compartment has no instances.
func (c *compute) ListInstances(ctx context.Context) ([]backends.Tagged, error) {
	s, err := c.session()
	if err != nil {
		return nil, err
	}
	compartment, err := s.findCompartment(ctx, c.cfg, false, nil)
	if err != nil || compartment == "" {
		return nil, err
	}
	subscribed, err := s.subscribedRegions(ctx)
	if err != nil {
		return nil, err
	}
	regions, err := regionsFor(c.cfg, subscribed)
	if err != nil {
		return nil, err
	}
	return backends.ListEachRegion(regions, func(region string) ([]backends.Tagged, error) {
		return c.listRegion(ctx, s, region, compartment)
	})
}

func (c *compute) listRegion(ctx context.Context, s *session, region, compartment string) ([]backends.Tagged, error) {
	cc, err := s.computeClient(region)
	if err != nil {
		return nil, err
	}
	var out []backends.Tagged
	req := core.ListInstancesRequest{CompartmentId: common.String(compartment)}
	for {
		resp, err := cc.ListInstances(sdkCtx(ctx), req)
		if err != nil {
			return nil, s.mapError(region, "ListInstances", err)
		}
		for _, inst := range resp.Items {
			if inst.LifecycleState == core.InstanceLifecycleStateTerminated {
				continue
			}
			if _, ok := inst.FreeformTags["dstack_server"]; !ok {
				continue
			}
			t := backends.Tagged{Backend: typ, InstanceID: deref(inst.Id), Region: region, Name: deref(inst.DisplayName),
				State: string(inst.LifecycleState), Tags: map[string]string{}}
			for k, v := range inst.FreeformTags {
				t.Tags[k] = v
			}
			if inst.TimeCreated != nil {
				t.LaunchedAt = inst.TimeCreated.Time
			}
			out = append(out, t)
		}
		if resp.OpcNextPage == nil {
			break
		}
		req.Page = resp.OpcNextPage
	}
	return out, nil
}

var _ backends.InstanceLister = (*compute)(nil)

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
