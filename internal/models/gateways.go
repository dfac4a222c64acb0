package models

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
)

// Gateway statuses: submitted → provisioning → running, or failed.
const (
	GatewaySubmitted    = "submitted"
	GatewayProvisioning = "provisioning"
	GatewayRunning      = "running"
	GatewayFailed       = "failed"
)

// GatewayBackends are the backends that can host a gateway, and whether a gateway there may be
// private (public_ip: false).
var GatewayBackends = map[string]bool{"aws": true, "azure": false, "gcp": true, "kubernetes": false}

// GatewayConfiguration is `type: gateway`.
type GatewayConfiguration struct {
	Type         string              `json:"type"`
	Name         *string             `json:"name"`
	Default      *bool               `json:"default"`
	Backend      string              `json:"backend"`
	Region       string              `json:"region"`
	InstanceType *string             `json:"instance_type"`
	Domain       *string             `json:"domain"`
	PublicIP     bool                `json:"public_ip"`
	Certificate  *GatewayCertificate `json:"certificate"`
	Replicas     *int                `json:"replicas"`
	Tags         map[string]string   `json:"tags"`
}

// GatewayCertificate is how the gateway gets its HTTPS certificate: lets-encrypt (the default) or acm
// (an AWS Certificate Manager certificate on a load balancer in front).
type GatewayCertificate struct {
	Type string  `json:"type"`
	ARN  *string `json:"arn,omitempty"`
}

// ACMARN is the ACM certificate's ARN, "" for Let's Encrypt.
func (c GatewayConfiguration) ACMARN() string {
	if c.Certificate != nil && c.Certificate.Type == "acm" && c.Certificate.ARN != nil {
		return *c.Certificate.ARN
	}
	return ""
}

var (
	gatewayName = regexp.MustCompile(`^[a-z][a-z0-9-]{1,40}$`)
	// A wildcard domain as users give it: example.com, or *.example.com (the "*." is dropped).
	domainName = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$`)
)

// NormalizeDomain checks a wildcard domain and returns it lowercase without a leading "*.".
func NormalizeDomain(d string) (string, error) {
	d = strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(strings.TrimSpace(d)), "*."), ".")
	if !domainName.MatchString(d) {
		return "", fmt.Errorf("%q is not a domain name (e.g. example.com, whose *.example.com points at the gateway)", d)
	}
	return d, nil
}

// ParseGatewayConfiguration decodes and checks a gateway configuration sent by a client, filling
// dstack's defaults (public_ip true, a Let's Encrypt certificate). Every problem is reported, each
// with its field.
func ParseGatewayConfiguration(raw json.RawMessage) (GatewayConfiguration, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return GatewayConfiguration{}, fmt.Errorf("configuration: expected an object with `type: gateway`")
	}
	known := map[string]bool{"type": true, "name": true, "default": true, "backend": true, "region": true,
		"instance_type": true, "domain": true, "public_ip": true, "certificate": true, "replicas": true, "tags": true}
	var problems []string
	for k := range m {
		if !known[k] {
			problems = append(problems, fmt.Sprintf("%s: unknown field (a gateway has name, default, backend, region, instance_type, domain, public_ip, certificate, replicas, tags)", k))
		}
	}
	if _, ok := m["public_ip"]; !ok || m["public_ip"] == nil {
		m["public_ip"] = true
	}
	data, _ := json.Marshal(m)
	var c GatewayConfiguration
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("configuration: %v", err)
	}
	if c.Type != "gateway" {
		problems = append(problems, fmt.Sprintf("type: %q is not `gateway`", c.Type))
	}
	private, ok := GatewayBackends[c.Backend]
	switch {
	case !ok:
		problems = append(problems, fmt.Sprintf("backend: %q cannot host gateways (expected one of aws, azure, gcp, kubernetes)", c.Backend))
	case !c.PublicIP && !private:
		problems = append(problems, fmt.Sprintf("public_ip: %s gateways must have a public IP (private gateways: aws, gcp)", c.Backend))
	}
	if c.Region == "" {
		problems = append(problems, "region: required (the region of the gateway machine, e.g. us-east-1)")
	}
	if c.Name != nil && !gatewayName.MatchString(*c.Name) {
		problems = append(problems, fmt.Sprintf("name: %q is not valid (lowercase letters, digits and dashes, starting with a letter, 2-41 characters)", *c.Name))
	}
	if c.Domain != nil {
		d, err := NormalizeDomain(*c.Domain)
		if err != nil {
			problems = append(problems, "domain: "+err.Error())
		}
		c.Domain = &d
	}
	if c.Certificate == nil {
		c.Certificate = &GatewayCertificate{Type: "lets-encrypt"}
	}
	switch c.Certificate.Type {
	case "lets-encrypt":
		c.Certificate.ARN = nil
	case "acm":
		if c.Backend != "aws" {
			problems = append(problems, "certificate.type: acm certificates work only with the aws backend")
		}
		if c.Certificate.ARN == nil || !strings.HasPrefix(*c.Certificate.ARN, "arn:") {
			problems = append(problems, "certificate.arn: required for an acm certificate (arn:aws:acm:<region>:<account>:certificate/<id>)")
		}
	default:
		problems = append(problems, fmt.Sprintf("certificate.type: %q is not lets-encrypt or acm", c.Certificate.Type))
	}
	if c.Replicas != nil && *c.Replicas != 1 {
		problems = append(problems, "replicas: this server runs one replica per gateway")
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return c, nil
}

// Gateway is a gateway of a project.
type Gateway struct {
	ID              string
	ProjectID       string
	Name            string
	Configuration   GatewayConfiguration
	Status          string
	StatusMessage   string
	WildcardDomain  string
	Default         bool
	PD              *backends.GatewayProvisioningData
	HostKey         string // the gateway machine's SSH host key, trusted on first use
	CreatedAt       time.Time
	LastProcessedAt time.Time
	Deleted         bool
	DeleteRequested bool
}
