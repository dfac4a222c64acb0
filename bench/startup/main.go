// Command startup measures `dstack server` from process start to a healthy /healthcheck, and its resident
// memory right after, on a fresh server directory (SQLite, migrations included) and on a warm one.
//
//	go run ./bench/startup [-n 10]
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func main() {
	n := flag.Int("n", 10, "runs per case")
	flag.Parse()
	tmp, err := os.MkdirTemp("", "dstack-bench-")
	check(err)
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "dstack")
	build := exec.Command("go", "build", "-o", bin, "./cmd/dstack")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stderr = os.Stderr
	check(build.Run())

	for _, warm := range []bool{false, true} {
		var times []time.Duration
		var rss []int
		dir := filepath.Join(tmp, "server-warm")
		for i := 0; i < *n; i++ {
			if !warm {
				dir = filepath.Join(tmp, fmt.Sprintf("server-%d", i))
			}
			d, r := once(bin, dir, tmp)
			times = append(times, d)
			rss = append(rss, r)
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		sort.Ints(rss)
		name := "fresh_dir"
		if warm {
			name = "warm_dir"
		}
		fmt.Printf("%s runs=%d start_to_healthy_p50_ms=%.1f max_ms=%.1f rss_p50_mb=%.1f (targets: <200 ms, <40 MB)\n",
			name, *n, ms(times[len(times)/2]), ms(times[len(times)-1]), float64(rss[len(rss)/2])/1024)
	}
}

func once(bin, dir, home string) (time.Duration, int) {
	port := freePort()
	cmd := exec.Command(bin, "server", "--port", fmt.Sprint(port), "-n")
	cmd.Env = append(os.Environ(), "DSTACK_SERVER_DIR="+dir, "HOME="+home)
	start := time.Now()
	check(cmd.Start())
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	url := fmt.Sprintf("http://127.0.0.1:%d/healthcheck", port)
	client := &http.Client{Timeout: time.Second}
	for time.Since(start) < 30*time.Second {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), rssKB(cmd.Process.Pid)
			}
		}
		time.Sleep(time.Millisecond)
	}
	panic("server did not become healthy")
}

func rssKB(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			var kb int
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:")), "%d", &kb)
			return kb
		}
	}
	return 0
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func check(err error) {
	if err != nil {
		panic(err)
	}
}
