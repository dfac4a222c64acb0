package models

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/resources"
)

// Volume statuses: submitted → provisioning → active, or failed.
const (
	VolumeSubmitted    = "submitted"
	VolumeProvisioning = "provisioning"
	VolumeActive       = "active"
	VolumeFailed       = "failed"
)

// VolumeBackends are the backends with network volumes, and whether a volume may be used by several
// jobs at once (only RunPod's network volumes may).
var VolumeBackends = map[string]bool{"aws": false, "gcp": false, "runpod": true}

// VolumeConfiguration is `type: volume`: a new volume (`size`) or an existing one (`volume_id`).
type VolumeConfiguration struct {
	Type             string  `json:"type"`
	Name             *string `json:"name"`
	Backend          string  `json:"backend"`
	Region           string  `json:"region"`
	AvailabilityZone *string `json:"availability_zone"`
	// Size is in GB; the CLI sends a number, a file may say "100GB".
	Size                *float64          `json:"size"`
	VolumeID            *string           `json:"volume_id"`
	AutoCleanupDuration any               `json:"auto_cleanup_duration"`
	Tags                map[string]string `json:"tags"`
}

var volumeName = regexp.MustCompile(`^[a-z][a-z0-9-]{1,40}$`)

// ParseVolumeConfiguration decodes and checks a volume configuration sent by a client; sizes may be
// numbers (GB) or strings with units ("100GB"). Every problem is reported, each with its field.
func ParseVolumeConfiguration(raw json.RawMessage) (VolumeConfiguration, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return VolumeConfiguration{}, fmt.Errorf("configuration: expected an object with `type: volume`")
	}
	if s, ok := m["size"].(string); ok {
		gb, err := resources.ParseMemory(s)
		if err != nil {
			return VolumeConfiguration{}, fmt.Errorf("size: %v", err)
		}
		m["size"] = float64(gb)
	}
	known := map[string]bool{"type": true, "name": true, "backend": true, "region": true, "availability_zone": true,
		"size": true, "volume_id": true, "auto_cleanup_duration": true, "tags": true}
	var problems []string
	for k := range m {
		if !known[k] {
			problems = append(problems, fmt.Sprintf("%s: unknown field (a volume has name, backend, region, availability_zone, size, volume_id, tags, auto_cleanup_duration)", k))
		}
	}
	data, _ := json.Marshal(m)
	var c VolumeConfiguration
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("configuration: %v", err)
	}
	if c.Type != "volume" {
		problems = append(problems, fmt.Sprintf("type: %q is not `volume`", c.Type))
	}
	if _, ok := VolumeBackends[c.Backend]; !ok {
		problems = append(problems, fmt.Sprintf("backend: %q has no network volumes (expected one of aws, gcp, runpod)", c.Backend))
	}
	if c.Region == "" {
		problems = append(problems, "region: required (the region of the volume, e.g. us-east-1)")
	}
	if c.Name != nil && !volumeName.MatchString(*c.Name) {
		problems = append(problems, fmt.Sprintf("name: %q is not valid (lowercase letters, digits and dashes, starting with a letter, 2-41 characters)", *c.Name))
	}
	switch {
	case c.VolumeID != nil && c.Size != nil:
		problems = append(problems, "size: not allowed with volume_id (an existing volume keeps its size)")
	case c.VolumeID == nil && c.Size == nil:
		problems = append(problems, "size: required for a new volume (or give volume_id to use an existing one)")
	case c.Size != nil && *c.Size < 1:
		problems = append(problems, fmt.Sprintf("size: %g GB is too small (at least 1GB)", *c.Size))
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return c, nil
}

// Volume is a network volume of a project.
type Volume struct {
	ID              string
	ProjectID       string
	UserID          string
	Name            string
	Configuration   VolumeConfiguration
	External        bool // registered by volume_id: dstack never deletes it on the provider
	Status          string
	StatusMessage   string
	PD              *backends.VolumeProvisioningData
	CreatedAt       time.Time
	LastProcessedAt time.Time
	Deleted         bool
	DeletedAt       *time.Time
	DeleteRequested bool
}

// VolumeAttachment is a volume attached to an instance.
type VolumeAttachment struct {
	VolumeID   string
	InstanceID string
	Data       *backends.VolumeAttachmentData
}
