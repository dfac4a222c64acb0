package backends

import "sync"

// EachRegion calls f for every region at once and waits for all the calls: results[i] and errs[i]
// are what f returned for regions[i].
func EachRegion[T any](regions []string, f func(region string) (T, error)) (results []T, errs []error) {
	results = make([]T, len(regions))
	errs = make([]error, len(regions))
	var wg sync.WaitGroup
	for i, r := range regions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = f(r)
		}()
	}
	wg.Wait()
	return results, errs
}

// ListEachRegion lists the machines of every region at once (EachRegion) and joins the lists in the
// order of regions; when a region fails, it returns the error of the first failed one in that order.
// It is the fan-out of an InstanceLister.
func ListEachRegion(regions []string, list func(region string) ([]Tagged, error)) ([]Tagged, error) {
	results, errs := EachRegion(regions, list)
	var out []Tagged
	for i := range regions {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out = append(out, results[i]...)
	}
	return out, nil
}
