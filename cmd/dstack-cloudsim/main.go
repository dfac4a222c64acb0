// Command dstack-cloudsim serves simulations of the clouds' APIs (AWS, Lambda, RunPod, Vultr,
// Vast.ai, TensorDock, CUDO, DataCrunch) on local ports, so that a dstack server runs its backends
// without a cloud. On start it prints `export DSTACK_<TYPE>_API_URL=...` lines (and
// DSTACK_CLOUDSIM_URL, its control API; with -catalog-dir, DSTACK_CATALOG_URL; for AWS also
// AWS_ENDPOINT_URL and simulated AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, with
// AWS_EC2_METADATA_DISABLED, for `creds: {type: default}`) and keeps serving
// until interrupted. With -background it starts itself detached, prints the same lines plus
// DSTACK_CLOUDSIM_PID, and exits, so that a shell can eval them:
//
//	eval "$(dstack-cloudsim -background -log /tmp/cloudsim.log)"
//	curl -s "$DSTACK_CLOUDSIM_URL/alive"         # machines still alive
//	kill "$DSTACK_CLOUDSIM_PID"
//
// Any credential is accepted except one containing "invalid" (-strict: only the unit fakes' keys);
// an AWS secret key travels only as a signature, so the AWS simulation refuses one set to exactly
// `invalid`.
// -fault-rate injects capacity errors, throttling (429), 5xx and timeouts; see internal/cloudsim.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/cloudsim"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dstack-cloudsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1", "address to bind")
	port := fs.Int("port", 0, "first port: providers get port, port+1, ... and the control API the next one (0: free ports)")
	provs := fs.String("providers", strings.Join(fake.Types(), ","), "comma-separated backend types to simulate")
	boot := fs.Duration("boot-delay", 2*time.Second, "how long a created machine boots before it has an address")
	rate := fs.Float64("fault-rate", 0, "probability (0..1) that a request fails with an injected fault")
	kinds := fs.String("faults", "", "fault kinds to inject, comma-separated: "+strings.Join(fake.FaultKinds, ",")+" (default all)")
	hang := fs.String("fault-hang", "", "how long a timeout fault holds a request before answering 504 (default: until the client gives up)")
	strict := fs.Bool("strict", false, "accept only the unit fakes' good credentials, not any credential without \"invalid\"")
	seed := fs.Int64("seed", 0, "seed of the fault injection (0: from the clock)")
	catalogDir := fs.String("catalog-dir", "", "write the simulated providers' gpuhunt catalogs here and export DSTACK_CATALOG_URL")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until interrupted)")
	background := fs.Bool("background", false, "start detached, print the exports (and DSTACK_CLOUDSIM_PID) and exit")
	logPath := fs.String("log", "", "with -background: where the simulator's own messages go (default: discarded)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *background {
		return detach(args, *logPath, stdout, stderr)
	}
	faults, err := cloudsim.ParseFaults(*rate, *kinds, *hang)
	if err != nil {
		fmt.Fprintln(stderr, "dstack-cloudsim:", err)
		return 2
	}
	var types []string
	for _, t := range strings.Split(*provs, ",") {
		if t = strings.TrimSpace(t); t != "" {
			types = append(types, t)
		}
	}
	cloud, err := cloudsim.Start(cloudsim.Config{Providers: types, Listen: *listen, BasePort: *port, Strict: *strict,
		BootDelay: *boot, Faults: faults, Seed: *seed})
	if err != nil {
		fmt.Fprintln(stderr, "dstack-cloudsim:", err)
		return 1
	}
	defer cloud.Close()
	out := cloud.Exports()
	if *catalogDir != "" {
		if _, err := cloud.WriteCatalogs(*catalogDir); err != nil {
			fmt.Fprintln(stderr, "dstack-cloudsim:", err)
			return 1
		}
		out += "export DSTACK_CATALOG_URL=" + *catalogDir + "\n"
	}
	fmt.Fprint(stdout, out)
	if os.Getenv(envChild) != "" {
		// The parent of -background reads until this end of file.
		if f, ok := stdout.(*os.File); ok {
			_ = f.Close()
		}
	}
	fmt.Fprintf(stderr, "dstack-cloudsim: serving %s; control API at %s\n", strings.Join(types, ", "), cloud.ControlURL)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	<-ctx.Done()
	alive := cloud.Alive()
	fmt.Fprintf(stderr, "dstack-cloudsim: stopping with %d machine(s) alive\n", len(alive))
	for _, m := range alive {
		fmt.Fprintf(stderr, "  %s %s %s %s\n", m.Provider, m.ID, m.Name, m.Status)
	}
	for typ, misses := range cloud.Misses() {
		for _, m := range misses {
			fmt.Fprintf(stderr, "  %s: malformed request: %s\n", typ, m)
		}
	}
	return 0
}

// envChild marks the detached child of -background.
const envChild = "DSTACK_CLOUDSIM_CHILD"

// detach starts this program again without -background, in its own session, and passes on what it
// prints before it closes its standard output.
func detach(args []string, logPath string, stdout, stderr io.Writer) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "dstack-cloudsim:", err)
		return 1
	}
	var childArgs []string
	for _, a := range args {
		switch strings.TrimLeft(a, "-") {
		case "background", "background=true":
			continue
		}
		childArgs = append(childArgs, a)
	}
	logFile := os.DevNull
	if logPath != "" {
		logFile = logPath
	}
	logOut, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(stderr, "dstack-cloudsim:", err)
		return 1
	}
	defer logOut.Close()
	cmd := exec.Command(self, childArgs...)
	cmd.Env = append(os.Environ(), envChild+"=1")
	cmd.Stderr = logOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(stderr, "dstack-cloudsim:", err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "dstack-cloudsim:", err)
		return 1
	}
	out, _ := io.ReadAll(pipe)
	if !strings.Contains(string(out), "export ") {
		_ = cmd.Wait()
		fmt.Fprintf(stderr, "dstack-cloudsim: the simulator did not start (see %s)\n", logFile)
		return 1
	}
	fmt.Fprint(stdout, string(out))
	fmt.Fprintf(stdout, "export DSTACK_CLOUDSIM_PID=%d\n", cmd.Process.Pid)
	_ = cmd.Process.Release()
	return 0
}
