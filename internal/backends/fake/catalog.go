package fake

import (
	"fmt"
	"sort"
	"strings"

	"github.com/dstackgo/dstack/internal/catalog"
	"github.com/dstackgo/dstack/internal/offers"
)

// catalogRow is one gpuhunt catalog row of a simulation's inventory.
type catalogRow struct {
	name, location    string
	price             float64
	cpu, memory, gpus int
	gpuName           string
	gpuMem            float64
	spot              bool
	disk              int    // GB; 0 = configurable
	vendor            string // gpu_vendor; "" = nvidia
}

// CatalogCSV is a gpuhunt v2 catalog (CSV) of what a simulation sells, for the backends whose
// offers come from the catalog (Lambda, DataCrunch, RunPod); "" for the others. Its rows use the
// provider's names, so plans built from it launch on the simulation.
func CatalogCSV(typ string) string {
	p, ok := providers[typ]
	if !ok || p.catalog == nil {
		return ""
	}
	rows := p.catalog()
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].price < rows[j].price })
	var b strings.Builder
	b.WriteString("instance_name,location,price,cpu,memory,gpu_count,gpu_name,gpu_memory,spot,disk_size,gpu_vendor,flags,cpu_arch\n")
	for _, r := range rows {
		gpuName, gpuMem, vendor, disk := "", "", "", ""
		if r.gpus > 0 {
			gpuName, gpuMem, vendor = r.gpuName, fmt.Sprint(r.gpuMem), "nvidia"
			if r.vendor != "" {
				vendor = r.vendor
			}
		}
		if r.disk > 0 {
			disk = fmt.Sprint(r.disk)
		}
		spot := "False"
		if r.spot {
			spot = "True"
		}
		fmt.Fprintf(&b, "%s,%q,%g,%d,%d,%d,%s,%s,%s,%s,%s,,x86\n", r.name, r.location, r.price, r.cpu, r.memory, r.gpus,
			gpuName, gpuMem, spot, disk, vendor)
	}
	return b.String()
}

// CatalogProvider is the gpuhunt provider (file) name of a backend type's catalog.
func CatalogProvider(typ string) string { return catalog.ProviderNames(typ)[0] }

// Tables returns catalog tables holding CatalogCSV of every simulation that has one.
func Tables() offers.Tables {
	var tables []*catalog.Table
	for _, typ := range Types() {
		csv := CatalogCSV(typ)
		if csv == "" {
			continue
		}
		t, err := catalog.Parse(CatalogProvider(typ), strings.NewReader(csv))
		if err != nil {
			panic(fmt.Sprintf("fake: the %s catalog does not parse: %v", typ, err))
		}
		tables = append(tables, t)
	}
	return catalog.NewSnapshot(tables...)
}
