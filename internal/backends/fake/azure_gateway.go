package fake

import (
	"net/http"
	"strings"
)

// What the Azure simulation has for gateways: the burstable B-series sizes they run on, which the
// catalog leaves out (no GPU, no job's offer) and every location sells (not as Spot VMs), and the
// Canonical Ubuntu platform images (imageReference publisher/offer/sku/version) besides dstack's
// community gallery images.

// azGatewaySizes are the B-series sizes.
var azGatewaySizes = []azSize{
	{name: "Standard_B1s", cpu: 1, mem: 1, price: 0.0104, locations: azLocations},
	{name: "Standard_B1ms", cpu: 1, mem: 2, price: 0.0207, locations: azLocations},
	{name: "Standard_B2s", cpu: 2, mem: 4, price: 0.0416, locations: azLocations},
}

func azGatewaySize(name string) *azSize {
	for i := range azGatewaySizes {
		if strings.EqualFold(azGatewaySizes[i].name, name) {
			return &azGatewaySizes[i]
		}
	}
	return nil
}

// azPlatformImages are the platform images by offer: the SKUs each has (version latest only).
var azPlatformImages = map[string][]string{
	"0001-com-ubuntu-server-jammy": {"22_04-lts", "22_04-lts-gen2"},
	"ubuntu-24_04-lts":             {"server", "server-gen1"},
}

// vmImage reads a VM's imageReference: dstack's community gallery image (its name) or a Canonical
// platform image (its URN). "" means it answered the refusal ARM gives; miss is then the reason
// the request counts as malformed.
func (q *armReq) vmImage(ref map[string]any, loc string) (image, miss string) {
	if img := jsonStr(ref, "communityGalleryImageId"); img != "" {
		im := azCommunityImage.FindStringSubmatch(img)
		if im == nil {
			q.fail(http.StatusNotFound, "GalleryImageNotFound", "The gallery image "+img+" is not available in "+loc+" region. Please contact image owner to replicate to this region, or change your requested region.")
			return "", "image " + img + " is not one of dstack's community gallery images"
		}
		return im[1], ""
	}
	publisher, offer, sku, version := jsonStr(ref, "publisher"), jsonStr(ref, "offer"), jsonStr(ref, "sku"), jsonStr(ref, "version")
	if publisher == "" || offer == "" || sku == "" {
		return "", q.bad("InvalidParameter", "Required parameter 'imageReference' is missing (null): give a communityGalleryImageId or a publisher, offer and sku.")
	}
	urn := publisher + ":" + offer + ":" + sku + ":" + version
	if !strings.EqualFold(publisher, "Canonical") || !contains(azPlatformImages[offer], sku) || version != "latest" {
		q.fail(http.StatusNotFound, "PlatformImageNotFound", "The platform image '"+urn+"' is not available. Verify that all fields in the storage profile are correct. For more details about storage profile information, please refer to https://aka.ms/storageprofile")
		return "", "platform image " + urn + " is not one the simulation has"
	}
	return urn, ""
}

// AzureProperties is a copy of the properties of the ARM resource id (as AzureResources lists it,
// any case), for tests that check what the backend asked for (a security group's rules); false
// when there is no such resource.
func (s *Sim) AzureProperties(id string) (map[string]any, bool) {
	w := azState(s)
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.res[strings.ToLower(id)]
	if r == nil {
		return nil, false
	}
	props, _ := deepCopyJSON(r.Props).(map[string]any)
	return props, true
}
