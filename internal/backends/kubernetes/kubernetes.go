// Package kubernetes is the Kubernetes backend, on client-go (k8s.io/client-go v0.37, the core/v1
// API of Kubernetes 1.37: Nodes, Pods, Services, ConfigMaps):
//
//   - the credential check: the kubeconfig's current context (clientcmd.RESTConfigFromKubeConfig)
//     and a list of nodes; a kubeconfig that does not load, or an API server that answers 401 or
//     403, is a *backends.CredentialsError on `kubeconfig`;
//   - offers (offers.go): one per node, from the node's allocatable resources and its GPU Feature
//     Discovery (nvidia.com/gpu.*) or AMD node labeller (amd.com/gpu.*) labels, minus what the pods
//     bound to it request, price 0;
//   - machines (compute.go): a job is a pod bound to the offer's node running the job's image with
//     dstack-runner started directly (instance runtime `runner`), behind a ClusterIP service; a
//     project's jump pod behind a NodePort service is the SSH proxy to it;
//
// The kubeconfig names the API server, so there is no DSTACK_KUBERNETES_API_URL.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

const typ = "kubernetes"

// DefaultNamespace is where dstack's pods go when the config names no namespace.
const DefaultNamespace = "default"

func init() {
	backends.Register(&backends.Driver{
		Type:  typ,
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
		Check:      check,
		NewCompute: newCompute,
		NewOffers:  newOffers,
	})
}

func port(v any) string {
	if n, _ := v.(int64); n < 1 || n > 65535 {
		return "expected a port number between 1 and 65535"
	}
	return ""
}

// field is the config key a credential refusal names.
var field = []string{"kubeconfig"}

// settings are a config's values, with defaults.
type settings struct {
	kubeconfig string
	namespace  string
	sshHost    string
	sshPort    int32 // 0: Kubernetes picks the NodePort
}

func settingsOf(cfg backends.Config) settings {
	s := settings{
		kubeconfig: cfg.String("kubeconfig", "data"),
		namespace:  cfg.String("namespace"),
		sshHost:    cfg.String("networking", "ssh_host"),
	}
	if s.namespace == "" {
		s.namespace = DefaultNamespace
	}
	if nw, ok := cfg.Values["networking"].(map[string]any); ok {
		switch p := nw["ssh_port"].(type) {
		case int64:
			s.sshPort = int32(p)
		case int:
			s.sshPort = int32(p)
		case float64:
			s.sshPort = int32(p)
		}
	}
	return s
}

// restConfig loads the kubeconfig's current context. A kubeconfig that does not load is a
// *backends.CredentialsError whose message leaves out the kubeconfig's contents.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if strings.TrimSpace(kubeconfig) == "" {
		return nil, &backends.CredentialsError{
			Msg:    "kubeconfig.data is empty: set kubeconfig.filename to a kubeconfig file (e.g. ~/.kube/config) or kubeconfig.data to its contents",
			Fields: [][]string{field}}
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig([]byte(kubeconfig))
	if err != nil {
		return nil, &backends.CredentialsError{
			Msg: "the kubeconfig does not load: " + redact(err.Error(), kubeconfig) +
				"; check that kubeconfig.filename names a kubeconfig whose current-context names a cluster and a user (`kubectl config view --minify` shows it)",
			Fields: [][]string{field}}
	}
	// A dstack server makes a few calls per job and per offer query; client-go's default of 5 per
	// second would throttle a busy server for nothing.
	rc.QPS, rc.Burst = 50, 100
	rc.WarningHandler = rest.NoWarnings{}
	rc.UserAgent = "dstack"
	return rc, nil
}

// newClient is a clientset for the config's kubeconfig.
func newClient(cfg backends.Config) (kubernetes.Interface, error) {
	rc, err := restConfig(cfg.String("kubeconfig", "data"))
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, &backends.CredentialsError{
			Msg:    "the kubeconfig's current context cannot make a client: " + redact(err.Error(), cfg.String("kubeconfig", "data")),
			Fields: [][]string{field}}
	}
	return cs, nil
}

// redact removes from msg every word of the kubeconfig long enough to be a secret (tokens,
// passwords, base64 keys and certificates), in case a parser quotes its input.
func redact(msg, kubeconfig string) string {
	for _, w := range strings.FieldsFunc(kubeconfig, func(r rune) bool {
		return r == ' ' || r == '\n' || r == '\t' || r == '\r' || r == '"' || r == '\''
	}) {
		if len(w) >= 8 && strings.Contains(msg, w) {
			msg = strings.ReplaceAll(msg, w, "<redacted>")
		}
	}
	return msg
}

func check(ctx context.Context, cfg backends.Config) error {
	cs, err := newClient(cfg)
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1})
	return apiError("listing nodes", err)
}

// apiError maps a client-go error: 401 and 403 refuse the kubeconfig's credentials; the others
// say what failed.
func apiError(what string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case apierrors.IsUnauthorized(err):
		return &backends.CredentialsError{
			Msg:    fmt.Sprintf("the Kubernetes API server refused the kubeconfig's credentials (%s: %v); renew the token or client certificate of the kubeconfig's current context", what, err),
			Fields: [][]string{field}}
	case apierrors.IsForbidden(err):
		return &backends.CredentialsError{
			Msg:    fmt.Sprintf("the kubeconfig's user may not do what dstack needs (%s: %v); grant it list on nodes and pods, create, get and delete on pods and services, and create, get and update on configmaps", what, err),
			Fields: [][]string{field}}
	}
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return fmt.Errorf("Kubernetes: %s: %w", what, err)
	}
	return fmt.Errorf("Kubernetes: %s: %w (is the kubeconfig's server address reachable from the dstack server?)", what, err)
}
