// Package kubernetes is the Kubernetes backend.
package kubernetes

import (
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

func init() {
	backends.Register(&backends.Driver{
		Type:  "kubernetes",
		Title: "Kubernetes",
		Fields: []schema.Field{
			{Name: "kubeconfig", Kind: schema.Object, Required: true, Secret: true,
				Help:    "the cluster's kubeconfig: `filename` (read at load time) or `data`",
				FileRef: &schema.FileRef{From: "filename", To: "data"},
				Fields: []schema.Field{
					backends.Str("filename", false, "the kubeconfig path, e.g. ~/.kube/config"),
					{Name: "data", Kind: schema.String, Secret: true, Help: "the kubeconfig contents"},
				}},
			{Name: "networking", Kind: schema.Object, Help: "how SSH traffic reaches the cluster", Fields: []schema.Field{
				backends.Str("ssh_host", false, "the external address of any node; default: the first node's ExternalIP"),
				{Name: "ssh_port", Kind: schema.Int, Help: "a NodePort reachable from outside the cluster", Check: port},
			}},
			backends.Str("namespace", false, "the namespace for dstack's pods (default `default`)"),
		},
	})
}

func port(v any) string {
	if n, _ := v.(int64); n < 1 || n > 65535 {
		return "expected a port number between 1 and 65535"
	}
	return ""
}
