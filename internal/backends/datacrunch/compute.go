package datacrunch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// APIError is an answer of the DataCrunch API that is not a success.
type APIError struct {
	Status        int
	Code, Message string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code != "" {
		return fmt.Sprintf("DataCrunch API: HTTP %d %s: %s", e.Status, e.Code, msg)
	}
	return fmt.Sprintf("DataCrunch API: HTTP %d: %s", e.Status, msg)
}

type client struct {
	base, id, secret string
	hc               *http.Client

	mu      sync.Mutex
	token   string
	expires time.Time
}

func newClient(cfg backends.Config) (*client, error) {
	id, secret := cfg.String("creds", "client_id"), cfg.String("creds", "client_secret")
	if id == "" || secret == "" {
		return nil, &backends.CredentialsError{Msg: "no client id or secret", Fields: fields}
	}
	return &client{base: backends.APIURL(typ, defaultURL), id: id, secret: secret, hc: &http.Client{Transport: backends.ProbeTransport}}, nil
}

func (c *client) secrets() []string { return []string{c.id, c.secret} }

// send makes one request; raw answers 2xx bodies as is.
func (c *client) send(ctx context.Context, method, path, token string, in any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("User-Agent", backends.UserAgent)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	shown := method + " " + backends.ShowURL(c.base+path)
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("DataCrunch API %s: %w", shown, backends.Redact(err, c.secrets()))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("DataCrunch API %s: %w", shown, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(data, &e)
		ae := &APIError{Status: resp.StatusCode, Code: e.Code, Message: backends.RedactString(e.Message, c.secrets())}
		if ae.Message == "" {
			ae.Message = backends.ProviderMessage(data, c.secrets()...)
		}
		return nil, ae
	}
	return data, nil
}

func (c *client) getToken(ctx context.Context, renew bool) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !renew && c.token != "" && time.Now().Before(c.expires) {
		return c.token, nil
	}
	data, err := c.send(ctx, http.MethodPost, "/oauth2/token", "", map[string]string{
		"grant_type": "client_credentials", "client_id": c.id, "client_secret": c.secret})
	var ae *APIError
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
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, backends.DefaultProbeTimeout)
		defer cancel()
	}
	var data []byte
	for attempt := 0; ; attempt++ {
		tok, err := c.getToken(ctx, attempt > 0)
		if err != nil {
			return nil, err
		}
		data, err = c.send(ctx, method, path, tok, in)
		var ae *APIError
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
	var ae *APIError
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
	cc.Regions = regionsOf(cfg)
	return &liveOffers{cfg: cfg, catalog: offers.NewCatalogSource(typ, tables, cc)}
}

func regionsOf(cfg backends.Config) []string {
	var out []string
	switch list := cfg.Values["regions"].(type) {
	case []any:
		for _, v := range list {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
	case []string:
		out = list
	}
	return out
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
