package backends

// StringMap reads a map of strings from a Config value: the string values of a map[string]any (as
// the schema leaves a YAML mapping), or a copy of a map[string]string. Anything else is an empty map.
func StringMap(v any) map[string]string {
	out := map[string]string{}
	switch m := v.(type) {
	case map[string]any:
		for k, x := range m {
			if s, ok := x.(string); ok {
				out[k] = s
			}
		}
	case map[string]string:
		for k, x := range m {
			out[k] = x
		}
	}
	return out
}

// Set is the set of the strings given, for looking up error codes and the like.
func Set(items ...string) map[string]bool {
	m := map[string]bool{}
	for _, c := range items {
		m[c] = true
	}
	return m
}
