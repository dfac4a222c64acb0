package backends

import (
	"context"
	"time"
)

// InstanceLister is an optional ability of a Compute, found by type assertion: listing the machines
// that dstack servers created on the provider, with the tags they carry, so that an orphan
// reconciler can terminate those its database does not know (a server killed between "VM created"
// and "recorded" leaves one). An implementation lists the machines of every configured region that
// are not terminated and carry a dstack_server tag, whatever its value: the caller keeps those whose
// dstack_server is its own id and whose dstack_instance it has no record of, and gives them a grace
// period (a launch may be in flight) before it calls TerminateInstance.
type InstanceLister interface {
	ListInstances(ctx context.Context) ([]Tagged, error)
}

// Tagged is one machine an InstanceLister found.
type Tagged struct {
	Backend    string
	InstanceID string
	Region     string
	// Name is the machine's name (AWS: its Name tag).
	Name string
	// State is the provider's state of the machine, e.g. pending, running, stopped.
	State string
	// Tags are the machine's tags: dstack_project, dstack_server and dstack_instance for the
	// machines dstack created (InstanceConfig.Tags).
	Tags map[string]string
	// LaunchedAt is when the provider started the machine; zero when it does not say.
	LaunchedAt time.Time
}
