package datacrunch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
	"github.com/dstackgo/dstack/internal/offers"
)

// Machines and live capacity follow the DataCrunch public API v1 (the same document as the check):
// a client-credentials token (POST /oauth2/token) authorizes every call as a bearer token, renewed
// when it expires or is refused.
//
//   - capacity: GET /instance-availability?is_spot=false|true ([{location_code, availabilities}])
//     marks the catalog's offers available or not_available;
//   - create: GET /instance-availability/{type}?is_spot&location_code first (false is a
//     *backends.NoCapacityError without deploying), then POST /sshkeys (the instance's keys,
//     dstack-<project>-<instance>-<n>), POST /scripts (bootstrap.ShimScript: authorize the keys,
//     start dstack-shim) and POST /instances {instance_type, image, hostname, description,
//     location_code, ssh_key_ids, startup_script_id, os_volume {name, size}, is_spot}. The key and
//     script ids travel in the provisioning data's backend data.
//   - poll: GET /instances/{id} → the ip once status is running; error, discontinued and the like
//     are a *backends.ProvisioningError.
//   - terminate: PUT /instances {"action": "delete", "id"} (404 is success), then the instance's
//     keys and script are deleted.
//
// Username "root", Dockerized true (the image has Docker and the NVIDIA toolkit).

// Image is the OS image of GPU instances; CPUImage of the others.
const (
	Image    = "ubuntu-22.04-cuda-12.4-docker"
	CPUImage = "ubuntu-22.04"
)

// Username is the SSH user of DataCrunch's images.
const Username = "root"

// minDiskGB is the smallest OS volume DataCrunch takes.
const minDiskGB = 50

var capacityError = regexp.MustCompile(`(?i)not enough|insufficient|no capacity|out of stock|not available|unavailable`)

type client struct {
	rest       backends.RESTClient
	id, secret string

	mu      sync.Mutex
	token   string
	expires time.Time
}

func newClient(cfg backends.Config) (*client, error) {
	id, secret := cfg.String("creds", "client_id"), cfg.String("creds", "client_secret")
	if id == "" || secret == "" {
		return nil, &backends.CredentialsError{Msg: "no client id or secret", Fields: fields}
	}
	return &client{id: id, secret: secret, rest: backends.RESTClient{
		Provider: "DataCrunch",
		Base:     backends.APIURL(typ, defaultURL),
		Secrets:  []string{id, secret},
		Check:    checkAnswer,
	}}, nil
}

// checkAnswer maps an answer other than 2xx ({"code", "message"}) to a *backends.APIError; what it
// means is the caller's (getToken, do).
func checkAnswer(a *backends.Answer) error {
	if a.OK() {
		return nil
	}
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(a.Body, &e)
	return a.APIError(e.Code, e.Message)
}

// send makes one request with token (none when empty) and answers 2xx bodies as is.
func (c *client) send(ctx context.Context, method, path, token string, in any) ([]byte, error) {
	rest := c.rest
	if token != "" {
		rest.Auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
	}
	return rest.Call(ctx, method, path, in)
}

func (c *client) getToken(ctx context.Context, renew bool) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !renew && c.token != "" && time.Now().Before(c.expires) {
		return c.token, nil
	}
	data, err := c.send(ctx, http.MethodPost, "/oauth2/token", "", map[string]string{
		"grant_type": "client_credentials", "client_id": c.id, "client_secret": c.secret})
	var ae *backends.APIError
	if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden ||
		ae.Status == http.StatusBadRequest && refusal(ae.Code, "", ae.Message)) {
		return "", &backends.CredentialsError{Msg: ae.Message, Fields: fields}
	}
	if err != nil {
		return "", err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if json.Unmarshal(data, &tok) != nil || tok.AccessToken == "" {
		return "", errors.New("DataCrunch API: the token answer has no access_token")
	}
	c.token = tok.AccessToken
	c.expires = time.Now().Add(time.Duration(max(tok.ExpiresIn-60, 30)) * time.Second)
	return c.token, nil
}

// do calls the API with a token (renewed once if refused); out receives the JSON answer.
func (c *client) do(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	ctx, cancel := backends.WithDefaultDeadline(ctx)
	defer cancel()
	var data []byte
	for attempt := 0; ; attempt++ {
		tok, err := c.getToken(ctx, attempt > 0)
		if err != nil {
			return nil, err
		}
		data, err = c.send(ctx, method, path, tok, in)
		var ae *backends.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized && attempt == 0 {
			continue
		}
		if err != nil {
			if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
				return nil, &backends.CredentialsError{Msg: ae.Message, Fields: fields}
			}
			if errors.As(err, &ae) && ae.Status < 500 && ae.Status != http.StatusTooManyRequests && capacityError.MatchString(ae.Code+" "+ae.Message) {
				return nil, &backends.NoCapacityError{Msg: "DataCrunch: " + ae.Message}
			}
			return nil, err
		}
		break
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("DataCrunch API %s %s: %w", method, path, err)
		}
	}
	return data, nil
}

// text is an answer that is a bare id (DataCrunch answers creations with the id as text, or as a
// JSON string).
func text(data []byte) string {
	var s string
	if json.Unmarshal(data, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(data))
}

type compute struct{ c *client }

func newCompute(cfg backends.Config) (backends.Compute, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return &compute{c: c}, nil
}

type backendData struct {
	SSHKeyIDs []string `json:"ssh_key_ids,omitempty"`
	ScriptID  string   `json:"startup_script_id,omitempty"`
}

func (c *compute) CreateInstance(ctx context.Context, offer offers.Offer, cfg backends.InstanceConfig) (*backends.ProvisioningData, error) {
	spot := offer.Instance.Resources.Spot
	var ok bool
	q := url.Values{"is_spot": {fmt.Sprint(spot)}, "location_code": {offer.Region}}
	if _, err := c.c.do(ctx, http.MethodGet, "/instance-availability/"+url.PathEscape(offer.Instance.Name)+"?"+q.Encode(), nil, &ok); err != nil {
		return nil, err
	}
	if !ok {
		return nil, &backends.NoCapacityError{Msg: fmt.Sprintf("DataCrunch has no %s %s in %s", map[bool]string{true: "spot", false: "on-demand"}[spot], offer.Instance.Name, offer.Region)}
	}
	name := bootstrap.ResourceName(cfg.ProjectName, cfg.InstanceName, 60)
	var bd backendData
	cleanup := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		c.deleteExtras(cctx, bd)
	}
	for i, k := range cfg.SSHPublicKeys {
		data, err := c.c.do(ctx, http.MethodPost, "/sshkeys", map[string]string{"name": fmt.Sprintf("%s-%d", name, i), "key": strings.TrimSpace(k)}, nil)
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("adding SSH key: %w", err)
		}
		bd.SSHKeyIDs = append(bd.SSHKeyIDs, text(data))
	}
	data, err := c.c.do(ctx, http.MethodPost, "/scripts", map[string]string{"name": name, "script": bootstrap.ShimScript(cfg, Username)}, nil)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("adding the startup script: %w", err)
	}
	bd.ScriptID = text(data)
	image := Image
	if len(offer.Instance.Resources.GPUs) == 0 {
		image = CPUImage
	}
	disk := max(minDiskGB, (offer.Instance.Resources.Disk.SizeMiB+1023)/1024)
	data, err = c.c.do(ctx, http.MethodPost, "/instances", map[string]any{
		"instance_type":     offer.Instance.Name,
		"image":             image,
		"hostname":          name,
		"description":       "dstack " + cfg.ProjectName + " " + cfg.InstanceName,
		"location_code":     offer.Region,
		"ssh_key_ids":       bd.SSHKeyIDs,
		"startup_script_id": bd.ScriptID,
		"os_volume":         map[string]any{"name": name, "size": disk},
		"is_spot":           spot,
	}, nil)
	if err != nil {
		cleanup()
		return nil, err
	}
	id := text(data)
	if id == "" {
		cleanup()
		return nil, errors.New("datacrunch: the deploy answered no instance id")
	}
	raw, _ := json.Marshal(bd)
	return &backends.ProvisioningData{
		Backend:         typ,
		InstanceType:    offer.Instance,
		InstanceID:      id,
		PublicIPEnabled: true,
		Region:          offer.Region,
		Price:           offer.Price,
		Username:        Username,
		Dockerized:      true,
		BackendData:     string(raw),
	}, nil
}

func (c *compute) deleteExtras(ctx context.Context, bd backendData) {
	for _, id := range bd.SSHKeyIDs {
		_, _ = c.c.do(ctx, http.MethodDelete, "/sshkeys/"+url.PathEscape(id), nil, nil)
	}
	if bd.ScriptID != "" {
		_, _ = c.c.do(ctx, http.MethodDelete, "/scripts/"+url.PathEscape(bd.ScriptID), nil, nil)
	}
}

func isNotFound(err error) bool {
	var ae *backends.APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Code == "not_found")
}

func (c *compute) UpdateProvisioningData(ctx context.Context, pd *backends.ProvisioningData) error {
	var inst struct {
		Status string  `json:"status"`
		IP     *string `json:"ip"`
	}
	_, err := c.c.do(ctx, http.MethodGet, "/instances/"+url.PathEscape(pd.InstanceID), nil, &inst)
	if isNotFound(err) {
		return &backends.ProvisioningError{Msg: "DataCrunch instance " + pd.InstanceID + " no longer exists"}
	}
	if err != nil {
		return err
	}
	switch inst.Status {
	case "error", "discontinued", "deleting", "notfound", "no_capacity", "installation_failed", "offline":
		return &backends.ProvisioningError{Msg: "DataCrunch instance " + pd.InstanceID + " is " + inst.Status}
	case "running":
		if inst.IP != nil && *inst.IP != "" {
			ip, port := *inst.IP, 22
			pd.Hostname, pd.SSHPort = &ip, &port
		}
	}
	return nil
}

func (c *compute) TerminateInstance(ctx context.Context, instanceID, region, data string) error {
	_, err := c.c.do(ctx, http.MethodPut, "/instances", map[string]any{"action": "delete", "id": instanceID}, nil)
	if err != nil && !isNotFound(err) {
		return err
	}
	var bd backendData
	_ = json.Unmarshal([]byte(data), &bd)
	c.deleteExtras(ctx, bd)
	return nil
}

// liveOffers is the catalog with DataCrunch's live capacity: an offer is available when its
// instance type is in its location's availabilities for its spot flag, else not_available.
type liveOffers struct {
	cfg     backends.Config
	catalog offers.Source
}

func newOffers(cfg backends.Config, tables offers.Tables) offers.Source {
	cc := offers.DefaultCatalogConfig(typ)
	cc.Regions = cfg.Strings("regions")
	return &liveOffers{cfg: cfg, catalog: offers.NewCatalogSource(typ, tables, cc)}
}

func (s *liveOffers) Offers(ctx context.Context, req offers.Requirements) ([]offers.Offer, error) {
	c, err := newClient(s.cfg)
	if err != nil {
		return nil, err
	}
	list, err := s.catalog.Offers(ctx, req)
	if err != nil {
		return nil, err
	}
	avail := map[bool]map[string]bool{}
	for _, spot := range []bool{false, true} {
		var locs []struct {
			Location       string   `json:"location_code"`
			Availabilities []string `json:"availabilities"`
		}
		if _, err := c.do(ctx, http.MethodGet, "/instance-availability?is_spot="+fmt.Sprint(spot), nil, &locs); err != nil {
			return nil, fmt.Errorf("DataCrunch capacity: %w", err)
		}
		avail[spot] = map[string]bool{}
		for _, l := range locs {
			for _, t := range l.Availabilities {
				avail[spot][l.Location+"/"+t] = true
			}
		}
	}
	out := make([]offers.Offer, len(list))
	for i, o := range list {
		o.Availability = offers.NotAvailable
		if avail[o.Instance.Resources.Spot][o.Region+"/"+o.Instance.Name] {
			o.Availability = offers.Available
		}
		out[i] = o
	}
	return out, nil
}
