package fake

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// EBS volumes (EC2 Query API 2016-11-15): CreateVolume, DescribeVolumes, DeleteVolume, AttachVolume
// and DetachVolume. A volume is available once created, in-use while attached (one instance at a
// time, in its own availability zone), and gone once deleted (InvalidVolume.NotFound).
// Attachments and detachments complete at once.

// awsVolume is an EBS volume of the simulation; every access holds the Sim's launchMu.
type awsVolume struct {
	ID, Region, AZ, Type string
	SizeGB               int
	Created              time.Time
	Tags                 map[string]string
	Instance, Device     string   // the attachment, if any
	History              []string // every instance it was attached to, in order
}

var volumeIDRe = regexp.MustCompile(`^vol-[0-9a-f]{8,17}$`)

const awsVolumesKind = "aws-volumes"

func (q *awsReq) volume(id string) (*awsVolume, bool) {
	if !volumeIDRe.MatchString(id) {
		q.fail(http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("Invalid id: \"%s\" (expecting \"vol-...\")", id))
		return nil, false
	}
	v, _ := q.s.Objects(awsVolumesKind)[id].(*awsVolume)
	if v == nil || v.Region != q.region {
		q.fail(http.StatusBadRequest, "InvalidVolume.NotFound", fmt.Sprintf("The volume '%s' does not exist.", id))
		return nil, false
	}
	return v, true
}

func writeVolume(w *xw, v *awsVolume) {
	w.el("volumeId", v.ID)
	w.el("size", v.SizeGB)
	w.el("snapshotId", "")
	w.el("availabilityZone", v.AZ)
	state := "available"
	if v.Instance != "" {
		state = "in-use"
	}
	w.el("status", state)
	w.el("createTime", v.Created.Format("2006-01-02T15:04:05.000Z"))
	w.el("volumeType", v.Type)
	w.el("encrypted", false)
	w.el("multiAttachEnabled", false)
	if len(v.Tags) > 0 {
		w.tags("tagSet", v.Tags)
	}
}

func ec2CreateVolume(q *awsReq) string {
	az, typ := q.form.Get("AvailabilityZone"), q.form.Get("VolumeType")
	if az == "" {
		return q.bad("MissingParameter", "The request must contain the parameter AvailabilityZone")
	}
	size, err := strconv.Atoi(q.form.Get("Size"))
	if q.form.Get("Size") == "" {
		return q.bad("MissingParameter", "The request must contain the parameter size or snapshotId")
	}
	if typ == "" {
		typ = "gp2"
	}
	if err != nil || size < 1 || size > 16384 {
		return q.bad("InvalidParameterValue", fmt.Sprintf("Volume of %sGiB is outside of the allowed size range for %s (1-16384)", q.form.Get("Size"), typ))
	}
	known := false
	for i := range 3 {
		known = known || az == q.region+string(rune('a'+i))
	}
	if !known {
		return q.bad("InvalidParameterValue", fmt.Sprintf("Invalid availability zone: [%s]", az))
	}
	specs, miss := q.tagSpecs()
	if miss != "" {
		return miss
	}
	for t := range specs {
		if t != "volume" {
			return q.bad("InvalidParameterValue", "'"+t+"' is not a valid taggable resource type for this operation.")
		}
	}
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	v := &awsVolume{ID: "vol-" + q.s.hexID(17), Region: q.region, AZ: az, Type: typ, SizeGB: size,
		Created: time.Now().UTC(), Tags: specs["volume"]}
	q.s.putObject(awsVolumesKind, v.ID, v)
	var w xw
	writeVolume(&w, v)
	q.ok(w.String())
	return ""
}

func ec2DescribeVolumes(q *awsReq) string {
	f, miss := q.checkFilters("attachment.instance-id", "availability-zone", "status", "volume-id")
	if miss != "" {
		return miss
	}
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	var list []*awsVolume
	if ids := q.form.list("VolumeId"); len(ids) > 0 {
		for _, id := range ids {
			v, ok := q.volume(id)
			if !ok {
				return ""
			}
			list = append(list, v)
		}
	} else {
		for _, o := range q.s.Objects(awsVolumesKind) {
			if v := o.(*awsVolume); v.Region == q.region {
				list = append(list, v)
			}
		}
		sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	}
	var w xw
	w.open("volumeSet")
	for _, v := range list {
		status := "available"
		if v.Instance != "" {
			status = "in-use"
		}
		if !keep(f, map[string][]string{"attachment.instance-id": {v.Instance}, "availability-zone": {v.AZ},
			"status": {status}, "volume-id": {v.ID}}, v.Tags) {
			continue
		}
		w.open("item")
		writeVolume(&w, v)
		w.open("attachmentSet")
		if v.Instance != "" {
			w.open("item")
			w.el("volumeId", v.ID)
			w.el("instanceId", v.Instance)
			w.el("device", v.Device)
			w.el("status", "attached")
			w.el("deleteOnTermination", false)
			w.close("item")
		}
		w.close("attachmentSet")
		w.close("item")
	}
	w.close("volumeSet")
	q.ok(w.String())
	return ""
}

func ec2DeleteVolume(q *awsReq) string {
	id := q.form.Get("VolumeId")
	if id == "" {
		return q.bad("MissingParameter", "The request must contain the parameter VolumeId")
	}
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	v, ok := q.volume(id)
	if !ok {
		return ""
	}
	if v.Instance != "" {
		q.fail(http.StatusBadRequest, "VolumeInUse", fmt.Sprintf("Volume %s is currently attached to %s", v.ID, v.Instance))
		return ""
	}
	q.s.deleteObject(awsVolumesKind, v.ID)
	var w xw
	w.el("return", true)
	q.ok(w.String())
	return ""
}

var deviceRe = regexp.MustCompile(`^/dev/(sd[f-p]|xvd[f-p])$`)

func ec2AttachVolume(q *awsReq) string {
	id, inst, dev := q.form.Get("VolumeId"), q.form.Get("InstanceId"), q.form.Get("Device")
	switch {
	case id == "":
		return q.bad("MissingParameter", "The request must contain the parameter VolumeId")
	case inst == "":
		return q.bad("MissingParameter", "The request must contain the parameter InstanceId")
	case dev == "":
		return q.bad("MissingParameter", "The request must contain the parameter device")
	case !deviceRe.MatchString(dev):
		return q.bad("InvalidParameterValue", fmt.Sprintf("Value (%s) for parameter device is invalid. %s is not a valid EBS device name.", dev, dev))
	}
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	v, ok := q.volume(id)
	if !ok {
		return ""
	}
	ms, ok := q.instances([]string{inst})
	if !ok {
		return ""
	}
	m := ms[0]
	if m.Status == StatusTerminated {
		q.fail(http.StatusBadRequest, "IncorrectState", fmt.Sprintf("Instance '%s' is not 'running'.", inst))
		return ""
	}
	if az := instanceOf(m).AZ; az != v.AZ {
		q.fail(http.StatusBadRequest, "InvalidVolume.ZoneMismatch", fmt.Sprintf("The volume '%s' is not in the same availability zone as instance '%s'", v.ID, inst))
		return ""
	}
	if v.Instance != "" {
		q.fail(http.StatusBadRequest, "VolumeInUse", fmt.Sprintf("%s is already attached to an instance", v.ID))
		return ""
	}
	for _, o := range q.s.Objects(awsVolumesKind) {
		if o := o.(*awsVolume); o.Instance == inst && o.Device == dev {
			q.fail(http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("Invalid value '%s' for unixDevice. Attachment point %s is already in use", dev, dev))
			return ""
		}
	}
	v.Instance, v.Device = inst, dev
	v.History = append(v.History, inst)
	var w xw
	w.el("volumeId", v.ID)
	w.el("instanceId", inst)
	w.el("device", dev)
	w.el("status", "attaching")
	w.el("attachTime", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"))
	q.ok(w.String())
	return ""
}

func ec2DetachVolume(q *awsReq) string {
	id := q.form.Get("VolumeId")
	if id == "" {
		return q.bad("MissingParameter", "The request must contain the parameter VolumeId")
	}
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	v, ok := q.volume(id)
	if !ok {
		return ""
	}
	if v.Instance == "" || (q.form.Get("InstanceId") != "" && q.form.Get("InstanceId") != v.Instance) {
		q.fail(http.StatusBadRequest, "IncorrectState", fmt.Sprintf("Volume '%s' is in the 'available' state.", v.ID))
		return ""
	}
	var w xw
	w.el("volumeId", v.ID)
	w.el("instanceId", v.Instance)
	w.el("device", v.Device)
	w.el("status", "detaching")
	q.ok(w.String())
	v.Instance, v.Device = "", ""
	return ""
}

// AWSVolumes lists the simulated EBS volumes by id, with the instance each is attached to ("" when
// available), for tests.
func (s *Sim) AWSVolumes() map[string]string {
	s.launchMu.Lock()
	defer s.launchMu.Unlock()
	out := map[string]string{}
	for id, o := range s.Objects(awsVolumesKind) {
		out[id] = o.(*awsVolume).Instance
	}
	return out
}

// AWSAttachments lists the instances an EBS volume was ever attached to, in order.
func (s *Sim) AWSAttachments(id string) []string {
	s.launchMu.Lock()
	defer s.launchMu.Unlock()
	if v, ok := s.Objects(awsVolumesKind)[id].(*awsVolume); ok {
		return append([]string(nil), v.History...)
	}
	return nil
}
