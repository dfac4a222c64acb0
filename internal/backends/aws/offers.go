package aws

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/offers"
)

// Offers (spec §4.3) are the aws catalog's rows in the configured regions (DefaultRegions when
// none), without the categories os_images leaves out, enriched per region with
//
//   - Service Quotas: ListServiceQuotas(ec2) gives the applied vCPU quota of each instance class
//     (UsageMetric dimension Class: Standard/OnDemand, G/OnDemand, P/Spot, ...); a class the list
//     lacks is asked with GetServiceQuota by its quota code. An offer whose class has no quota, or
//     less than the instance's vCPUs, is no_quota; the others stay unknown, as dstack leaves them.
//     Credentials without servicequotas permissions (AccessDenied) leave every offer unknown.
//   - DescribeAvailabilityZones: the region's available zones, as the offers' availability_zones.
//
// Both are cached per region for quotaTTL, so that plans do not hit the Service Quotas rate limits;
// errors are not cached, and fail the call.

const quotaTTL = 10 * time.Minute

// quotaCodes are the EC2 quota codes of the instance classes, for GetServiceQuota.
var quotaCodes = map[string]string{
	"Standard/OnDemand": "L-1216C47A",
	"G/OnDemand":        "L-DB2E81BA",
	"P/OnDemand":        "L-417A185B",
	"Inf/OnDemand":      "L-1945791B",
	"F/OnDemand":        "L-74FC7D96",
	"X/OnDemand":        "L-7295265B",
	"Standard/Spot":     "L-34B43A08",
	"G/Spot":            "L-3819A6DF",
	"P/Spot":            "L-7212CCBC",
}

// QuotaClass is the Service Quotas class of an instance type: the letters of its family (g4dn →
// G, p4d → P, inf2 → Inf, ...; most families share Standard) and OnDemand or Spot.
func QuotaClass(instanceType string, spot bool) string {
	family, _, _ := strings.Cut(instanceType, ".")
	letters := family
	if i := strings.IndexFunc(letters, func(r rune) bool { return r < 'a' || r > 'z' }); i >= 0 {
		letters = letters[:i]
	}
	class := "Standard"
	switch letters {
	case "p":
		class = "P"
	case "g", "vt":
		class = "G"
	case "inf":
		class = "Inf"
	case "trn":
		class = "Trn"
	case "dl":
		class = "DL"
	case "f":
		class = "F"
	case "x":
		class = "X"
	case "hpc":
		class = "HPC"
	}
	if spot {
		return class + "/Spot"
	}
	return class + "/OnDemand"
}

type liveOffers struct {
	cfg     backends.Config
	catalog offers.Source

	sess backends.Lazy[*session]

	mu     sync.Mutex
	listed map[string]cached[map[string]float64] // region -> class -> vCPUs (nil map: no permission)
	asked  map[string]cached[*float64]           // region/class -> GetServiceQuota's value (nil: none)
	zones  map[string]cached[[]string]
}

func newOffers(cfg backends.Config, tables offers.Tables) offers.Source {
	cc := offers.DefaultCatalogConfig(typ)
	cc.Regions = regionsOf(cfg)
	return &liveOffers{cfg: cfg, catalog: offers.NewCatalogSource(typ, tables, cc),
		listed: map[string]cached[map[string]float64]{}, asked: map[string]cached[*float64]{}, zones: map[string]cached[[]string]{}}
}

func (l *liveOffers) session(ctx context.Context) (*session, error) {
	return l.sess.Get(func() (*session, error) { return newSession(ctx, l.cfg, true) })
}

func (l *liveOffers) Offers(ctx context.Context, req offers.Requirements) ([]offers.Offer, error) {
	list, err := l.catalog.Offers(ctx, req)
	if err != nil || len(list) == 0 {
		return list, err
	}
	s, err := l.session(ctx)
	if err != nil {
		return nil, err
	}
	need := map[string]map[string]bool{} // region -> classes
	var regions []string
	for _, o := range list {
		if need[o.Region] == nil {
			need[o.Region] = map[string]bool{}
			regions = append(regions, o.Region)
		}
		need[o.Region][QuotaClass(o.Instance.Name, o.Instance.Resources.Spot)] = true
	}
	sort.Strings(regions)
	// What a region says of its offers: its zones, and the quotas of its classes.
	type regionState struct {
		zones  []string
		quotas map[string]*float64
	}
	states, errs := backends.EachRegion(regions, func(r string) (regionState, error) {
		zones, err := l.zonesOf(ctx, s, r)
		if err != nil {
			return regionState{}, err
		}
		quotas, err := l.quotasOf(ctx, s, r, need[r])
		return regionState{zones: zones, quotas: quotas}, err
	})
	byRegion := map[string]int{}
	for i, r := range regions {
		if errs[i] != nil {
			return nil, fmt.Errorf("AWS offers in %s: %w", r, errs[i])
		}
		byRegion[r] = i
	}
	out := make([]offers.Offer, 0, len(list))
	for _, o := range list {
		if !hasImage(l.cfg, o) {
			continue
		}
		i := byRegion[o.Region]
		o.AvailabilityZones = states[i].zones
		if q := states[i].quotas; q != nil {
			if v := q[QuotaClass(o.Instance.Name, o.Instance.Resources.Spot)]; v == nil || *v < float64(max(o.Instance.Resources.CPUs, 1)) {
				o.Availability = offers.NoQuota
			}
		}
		out = append(out, o)
	}
	return out, nil
}

func (l *liveOffers) zonesOf(ctx context.Context, s *session, region string) ([]string, error) {
	l.mu.Lock()
	c, ok := l.zones[region]
	l.mu.Unlock()
	if ok && time.Since(c.at) < quotaTTL {
		return c.v, nil
	}
	out, err := s.ec2Client(region).DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{
		Filters: []types.Filter{{Name: aws.String("state"), Values: []string{"available"}},
			{Name: aws.String("zone-type"), Values: []string{"availability-zone"}}}})
	if err != nil {
		return nil, s.mapError(region, err)
	}
	var zs []string
	for _, z := range out.AvailabilityZones {
		zs = append(zs, aws.ToString(z.ZoneName))
	}
	sort.Strings(zs)
	l.mu.Lock()
	l.zones[region] = cached[[]string]{zs, time.Now()}
	l.mu.Unlock()
	return zs, nil
}

// quotasOf returns the vCPU quota of each needed class (nil: none), or a nil map when the
// credentials may not read quotas.
func (l *liveOffers) quotasOf(ctx context.Context, s *session, region string, need map[string]bool) (map[string]*float64, error) {
	l.mu.Lock()
	c, ok := l.listed[region]
	l.mu.Unlock()
	if !ok || time.Since(c.at) >= quotaTTL {
		listed := map[string]float64{}
		p := servicequotas.NewListServiceQuotasPaginator(s.quotasClient(region), &servicequotas.ListServiceQuotasInput{
			ServiceCode: aws.String("ec2"), MaxResults: aws.Int32(100)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if isAccessDenied(err) {
				listed = nil
				break
			}
			if err != nil {
				return nil, s.mapError(region, err)
			}
			for _, q := range page.Quotas {
				if q.UsageMetric == nil || q.Value == nil {
					continue
				}
				if class := q.UsageMetric.MetricDimensions["Class"]; class != "" {
					listed[class] = *q.Value
				}
			}
		}
		c = cached[map[string]float64]{listed, time.Now()}
		l.mu.Lock()
		l.listed[region] = c
		l.mu.Unlock()
	}
	if c.v == nil {
		return nil, nil
	}
	out := map[string]*float64{}
	for class := range need {
		if v, ok := c.v[class]; ok {
			out[class] = &v
			continue
		}
		code := quotaCodes[class]
		if code == "" {
			continue
		}
		key := region + "/" + class
		l.mu.Lock()
		a, ok := l.asked[key]
		l.mu.Unlock()
		if !ok || time.Since(a.at) >= quotaTTL {
			got, err := s.quotasClient(region).GetServiceQuota(ctx, &servicequotas.GetServiceQuotaInput{
				ServiceCode: aws.String("ec2"), QuotaCode: aws.String(code)})
			switch {
			case errorCode(err) == "NoSuchResourceException":
				a = cached[*float64]{nil, time.Now()}
			case isAccessDenied(err):
				return nil, nil
			case err != nil:
				return nil, s.mapError(region, err)
			default:
				var v *float64
				if got.Quota != nil && got.Quota.Value != nil {
					v = aws.Float64(*got.Quota.Value)
				}
				a = cached[*float64]{v, time.Now()}
			}
			l.mu.Lock()
			l.asked[key] = a
			l.mu.Unlock()
		}
		out[class] = a.v
	}
	return out, nil
}

func isAccessDenied(err error) bool {
	code := errorCode(err)
	return code == "AccessDeniedException" || code == "AccessDenied" || code == "DependencyAccessDeniedException"
}
