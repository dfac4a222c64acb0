// Package all registers every backend; import it for its side effect.
package all

import (
	_ "github.com/dstackgo/dstack/internal/backends/aws"
	_ "github.com/dstackgo/dstack/internal/backends/azure"
	_ "github.com/dstackgo/dstack/internal/backends/cudo"
	_ "github.com/dstackgo/dstack/internal/backends/datacrunch"
	_ "github.com/dstackgo/dstack/internal/backends/gcp"
	_ "github.com/dstackgo/dstack/internal/backends/kubernetes"
	_ "github.com/dstackgo/dstack/internal/backends/lambda"
	_ "github.com/dstackgo/dstack/internal/backends/nebius"
	_ "github.com/dstackgo/dstack/internal/backends/oci"
	_ "github.com/dstackgo/dstack/internal/backends/runpod"
	_ "github.com/dstackgo/dstack/internal/backends/tensordock"
	_ "github.com/dstackgo/dstack/internal/backends/vastai"
	_ "github.com/dstackgo/dstack/internal/backends/vultr"
)
