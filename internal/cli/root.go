// Package cli is the `dstack` command line: the server and the client commands.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	_ "github.com/dstackgo/dstack/internal/backends/all" // every backend type
)

// exitError carries an exit code without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Main runs the CLI with args and returns the process exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := NewRoot()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		fmt.Fprintln(root.ErrOrStderr(), "Error:", err)
		return 1
	}
	return 0
}

// NewRoot builds the command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "dstack",
		Short:         "dstack gives ML teams GPUs from any cloud or their own servers",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServerCmd(), newProjectCmd(), newBackendCmd(), newOfferCmd())
	root.AddCommand(newApplyCmd(), newDeleteCmd(), newPsCmd(), newLogsCmd(), newStopCmd(), newFleetCmd(), newVolumeCmd(), newGatewayCmd(), newAttachCmd(), newMetricsCmd())
	return root
}
