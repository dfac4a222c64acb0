package catalog

import "strings"

// cc is an NVIDIA compute capability packed as major*10+minor (8.6 → 86); 0 is unknown.
type cc uint16

// nvidiaCC lists compute capabilities by gpuhunt GPU name (lower case, without dashes), for
// `resources.gpu.compute_capability`. A GPU missing here never satisfies such a requirement.
var nvidiaCC = map[string]cc{
	"p100": 60, "p4": 61, "p40": 61,
	"v100": 70,
	"t4":   75, "rtx6000": 75, "rtx8000": 75,
	"a100": 80, "a800": 80, "a30": 80,
	"a10": 86, "a10g": 86, "a16": 86, "a40": 86, "a6000": 86, "a4000": 86, "a5000": 86, "a4500": 86,
	"rtxa2000": 86, "rtxa4000": 86, "rtxa4500": 86, "rtxa5000": 86, "rtxa6000": 86,
	"rtx3060": 86, "rtx3070": 86, "rtx3080": 86, "rtx3090": 86,
	"l4": 89, "l40": 89, "l40s": 89, "rtx2000ada": 89, "rtx4000ada": 89, "rtx6000ada": 89,
	"rtx4060": 89, "rtx4070": 89, "rtx4080": 89, "rtx4090": 89,
	"h100": 90, "h100nvl": 90, "h200": 90, "h200nvl": 90, "h800": 90, "gh200": 90,
	"b200": 100, "gb200": 100, "b300": 103, "gb300": 103,
	"rtx5090": 120, "rtxpro6000": 120, "rtxpro6000wk": 120, "rtxpro6000s": 120,
}

func lookupCC(vendor Vendor, name string) cc {
	if vendor != NVIDIA {
		return 0
	}
	return nvidiaCC[strings.ReplaceAll(strings.ToLower(name), "-", "")]
}
