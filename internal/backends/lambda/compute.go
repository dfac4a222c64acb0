package lambda

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
	"github.com/dstackgo/dstack/internal/offers"
)

// Machines on Lambda Cloud follow the API v1 document: POST /instance-operations/launch
// {region_name, instance_type_name, ssh_key_names: [one], quantity: 1, name} → {data: {instance_ids}},
// GET /instances/{id} → {data: {status, ip, private_ip, ...}}, POST /instance-operations/terminate
// {instance_ids}, GET /instances (ListInstances, for the orphan reconciler), and GET/POST /ssh-keys to register the project's key under the name
// dstack-<project>-<hash>. The v1 launch takes no user data, so the machine comes up as Lambda's
// stock Ubuntu image (Docker and NVIDIA drivers included) and the server reaches it over SSH as
// `ubuntu` to install dstack-shim itself: the provisioning data says Username "ubuntu", Dockerized
// true. Keys other than the first of InstanceConfig.SSHPublicKeys are the server's to install then
// too, since a launch takes exactly one key name.
//
// Errors: instance-operations/launch/insufficient-capacity is a *backends.NoCapacityError; 401/403
// (global/invalid-api-key) a *backends.CredentialsError; 404 (global/object-does-not-exist) on
// terminate is success; everything else (429, 5xx, timeouts) is a *backends.APIError or a transport
// error.

// Username is the SSH user of Lambda's stock image.
const Username = "ubuntu"

// maxName is the longest instance name Lambda takes.
const maxName = 64

var field = []string{"creds", "api_key"}

type client struct{ rest backends.RESTClient }

func newClient(cfg backends.Config) (*client, error) {
	key := cfg.String("creds", "api_key")
	if key == "" {
		return nil, &backends.CredentialsError{Msg: "no API key", Fields: [][]string{field}}
	}
	return &client{rest: backends.RESTClient{
		Provider: "Lambda",
		Base:     backends.APIURL(typ, defaultURL),
		Auth:     func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) },
		Secrets:  []string{key},
		Check:    checkAnswer,
	}}, nil
}

// checkAnswer maps an answer other than 2xx ({"error": {"code", "message"}}) to its error.
func checkAnswer(a *backends.Answer) error {
	if a.OK() {
		return nil
	}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(a.Body, &e)
	return mapError(a.APIError(e.Error.Code, e.Error.Message))
}

// do sends one call; out, when not nil, receives the answer's `data`.
func (c *client) do(ctx context.Context, method, path string, in, out any) error {
	data, err := c.rest.Call(ctx, method, path, in)
	if err != nil || out == nil {
		return err
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(data, &env); err != nil || len(env.Data) == 0 {
		return fmt.Errorf("Lambda API %s %s: the answer has no data", method, path)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("Lambda API %s %s: %w", method, path, err)
	}
	return nil
}

func mapError(e *backends.APIError) error {
	switch {
	case e.Code == "instance-operations/launch/insufficient-capacity":
		return &backends.NoCapacityError{Msg: "Lambda: " + e.Message}
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden || e.Code == "global/invalid-api-key":
		msg := e.Message
		if msg == "" {
			msg = fmt.Sprintf("Lambda answered HTTP %d", e.Status)
		}
		return &backends.CredentialsError{Msg: msg, Fields: [][]string{field}}
	}
	return e
}

func isNotFound(err error) bool {
	var ae *backends.APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Code == "global/object-does-not-exist")
}

type compute struct {
	c *client

	mu   sync.Mutex
	keys map[string]string // public key -> registered name
}

func newCompute(cfg backends.Config) (backends.Compute, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return &compute{c: c, keys: map[string]string{}}, nil
}

type sshKey struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	PublicKey string `json:"public_key"`
}

// keyName registers the public key (once) and returns its name on Lambda.
func (c *compute) keyName(ctx context.Context, project, pub string) (string, error) {
	pub = strings.TrimSpace(pub)
	c.mu.Lock()
	name, ok := c.keys[pub]
	c.mu.Unlock()
	if ok {
		return name, nil
	}
	var keys []sshKey
	if err := c.c.do(ctx, http.MethodGet, "/ssh-keys", nil, &keys); err != nil {
		return "", err
	}
	for _, k := range keys {
		if sameKey(k.PublicKey, pub) {
			c.remember(pub, k.Name)
			return k.Name, nil
		}
	}
	sum := sha256.Sum256([]byte(pub))
	name = bootstrap.ResourceName(project, hex.EncodeToString(sum[:])[:12], maxName)
	var created sshKey
	if err := c.c.do(ctx, http.MethodPost, "/ssh-keys", map[string]string{"name": name, "public_key": pub}, &created); err != nil {
		return "", fmt.Errorf("registering the project SSH key: %w", err)
	}
	c.remember(pub, created.Name)
	return created.Name, nil
}

func (c *compute) remember(pub, name string) {
	c.mu.Lock()
	c.keys[pub] = name
	c.mu.Unlock()
}

// sameKey compares the type and body of two OpenSSH public keys, ignoring comments.
func sameKey(a, b string) bool {
	fa, fb := strings.Fields(a), strings.Fields(b)
	return len(fa) >= 2 && len(fb) >= 2 && fa[0] == fb[0] && fa[1] == fb[1]
}

func (c *compute) CreateInstance(ctx context.Context, offer offers.Offer, cfg backends.InstanceConfig) (*backends.ProvisioningData, error) {
	if len(cfg.SSHPublicKeys) == 0 {
		return nil, errors.New("lambda: an SSH public key is required")
	}
	keyName, err := c.keyName(ctx, cfg.ProjectName, cfg.SSHPublicKeys[0])
	if err != nil {
		return nil, err
	}
	req := map[string]any{
		"region_name":        offer.Region,
		"instance_type_name": offer.Instance.Name,
		"ssh_key_names":      []string{keyName},
		"file_system_names":  []string{},
		"quantity":           1,
		"name":               bootstrap.ResourceName(cfg.ProjectName, cfg.InstanceName, maxName),
	}
	var res struct {
		InstanceIDs []string `json:"instance_ids"`
	}
	if err := c.c.do(ctx, http.MethodPost, "/instance-operations/launch", req, &res); err != nil {
		return nil, err
	}
	if len(res.InstanceIDs) != 1 {
		return nil, fmt.Errorf("lambda: launch answered %d instance ids, want 1", len(res.InstanceIDs))
	}
	return &backends.ProvisioningData{
		Backend:         typ,
		InstanceType:    offer.Instance,
		InstanceID:      res.InstanceIDs[0],
		PublicIPEnabled: true,
		Region:          offer.Region,
		Price:           offer.Price,
		Username:        Username,
		Dockerized:      true,
	}, nil
}

func (c *compute) UpdateProvisioningData(ctx context.Context, pd *backends.ProvisioningData) error {
	var inst struct {
		Status    string `json:"status"`
		IP        string `json:"ip"`
		PrivateIP string `json:"private_ip"`
	}
	err := c.c.do(ctx, http.MethodGet, "/instances/"+pd.InstanceID, nil, &inst)
	if isNotFound(err) {
		return &backends.ProvisioningError{Msg: "Lambda instance " + pd.InstanceID + " no longer exists"}
	}
	if err != nil {
		return err
	}
	switch inst.Status {
	case "terminating", "terminated":
		return &backends.ProvisioningError{Msg: "Lambda instance " + pd.InstanceID + " is " + inst.Status}
	case "active":
		if inst.IP != "" {
			ip := inst.IP
			pd.Hostname = &ip
			port := 22
			pd.SSHPort = &port
		}
		if inst.PrivateIP != "" {
			p := inst.PrivateIP
			pd.InternalIP = &p
		}
	}
	return nil
}

func (c *compute) TerminateInstance(ctx context.Context, instanceID, region, backendData string) error {
	err := c.c.do(ctx, http.MethodPost, "/instance-operations/terminate", map[string]any{"instance_ids": []string{instanceID}}, nil)
	if err == nil || isNotFound(err) {
		return nil
	}
	return err
}

// ListInstances lists the machines dstack created on the account (GET /instances; names start
// with dstack-), except those Lambda is terminating. Lambda has no tags: the orphan reconciler
// goes by the name (see backends.InstanceLister).
func (c *compute) ListInstances(ctx context.Context) ([]backends.Tagged, error) {
	var list []struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Status string `json:"status"`
		Region struct {
			Name string `json:"name"`
		} `json:"region"`
	}
	if err := c.c.do(ctx, http.MethodGet, "/instances", nil, &list); err != nil {
		return nil, err
	}
	var out []backends.Tagged
	for _, i := range list {
		if !strings.HasPrefix(i.Name, "dstack-") || i.Status == "terminating" || i.Status == "terminated" {
			continue
		}
		out = append(out, backends.Tagged{Backend: typ, InstanceID: i.ID, Region: i.Region.Name, Name: i.Name, State: i.Status})
	}
	return out, nil
}

// liveOffers is the catalog with Lambda's live capacity: an offer is available when its instance
// type has capacity in its region (GET /instance-types, regions_with_capacity_available), else
// not_available.
type liveOffers struct {
	cfg     backends.Config
	catalog offers.Source
}

func newOffers(cfg backends.Config, tables offers.Tables) offers.Source {
	cc := offers.DefaultCatalogConfig(typ)
	cc.Regions = cfg.Strings("regions")
	return &liveOffers{cfg: cfg, catalog: offers.NewCatalogSource(typ, tables, cc)}
}

// Capacity returns, per instance type, the regions where Lambda has capacity now.
func capacity(ctx context.Context, c *client) (map[string]map[string]bool, error) {
	var types map[string]struct {
		Regions []struct {
			Name string `json:"name"`
		} `json:"regions_with_capacity_available"`
	}
	if err := c.do(ctx, http.MethodGet, "/instance-types", nil, &types); err != nil {
		return nil, err
	}
	out := map[string]map[string]bool{}
	for name, t := range types {
		out[name] = map[string]bool{}
		for _, r := range t.Regions {
			out[name][r.Name] = true
		}
	}
	return out, nil
}

func (s *liveOffers) Offers(ctx context.Context, req offers.Requirements) ([]offers.Offer, error) {
	c, err := newClient(s.cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := s.catalog.Offers(ctx, req)
	if err != nil {
		return nil, err
	}
	capa, err := capacity(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("Lambda capacity: %w", err)
	}
	out := make([]offers.Offer, len(list))
	for i, o := range list {
		o.Availability = offers.NotAvailable
		if capa[o.Instance.Name][o.Region] {
			o.Availability = offers.Available
		}
		out[i] = o
	}
	return out, nil
}
