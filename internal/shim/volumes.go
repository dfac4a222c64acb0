package shim

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/dstackgo/dstack/internal/agentapi"
)

// volumePath is where the volume name is mounted on the host.
func (s *Shim) volumePath(name string) string {
	return filepath.Join(s.cfg.VolumesRoot, name)
}

// prepareVolumes mounts the task's volumes under VolumesRoot. A volume with a block device is
// formatted as ext4 when init_fs is set and the device has no file system yet, then mounted; a volume
// without a device is a plain directory.
func (s *Shim) prepareVolumes(ctx context.Context, volumes []agentapi.VolumeInfo) error {
	for _, v := range volumes {
		if v.Name == "" || strings.ContainsAny(v.Name, "/\x00") || v.Name == "." || v.Name == ".." {
			return fmt.Errorf("invalid volume name %q", v.Name)
		}
		dir := s.volumePath(v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		if v.DeviceName == "" {
			continue
		}
		if mounted, err := isMountPoint(dir); err == nil && mounted {
			continue
		}
		dev := v.DeviceName
		if _, err := os.Stat(dev); err != nil {
			// On AWS Nitro instances an EBS volume is an NVMe device whose serial is its id.
			nvme := "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_" + strings.ReplaceAll(v.VolumeID, "-", "")
			if _, nerr := os.Stat(nvme); v.Backend != "aws" || nerr != nil {
				return fmt.Errorf("volume %s: device %s: %w", v.Name, dev, err)
			}
			dev = nvme
		}
		fsType, _ := s.run(ctx, "blkid", "-o", "value", "-s", "TYPE", dev)
		if strings.TrimSpace(fsType) == "" {
			if !v.InitFS {
				return fmt.Errorf("volume %s: device %s has no file system and init_fs is off", v.Name, dev)
			}
			if out, err := s.run(ctx, "mkfs.ext4", "-F", dev); err != nil {
				return fmt.Errorf("volume %s: mkfs.ext4 %s: %w: %s", v.Name, dev, err, out)
			}
		}
		if out, err := s.run(ctx, "mount", dev, dir); err != nil {
			return fmt.Errorf("volume %s: mount %s: %w: %s", v.Name, dev, err, out)
		}
	}
	return nil
}

func (s *Shim) run(ctx context.Context, name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// isMountPoint reports whether dir is a mount point according to /proc/self/mountinfo.
func isMountPoint(dir string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == dir {
			return true, nil
		}
	}
	return false, sc.Err()
}
