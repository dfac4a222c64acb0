package runner

import (
	"context"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// handleLogsWS streams the job's output (stdout and stderr as they came) as binary frames, from the
// beginning, and closes normally once the job finished and everything was sent.
func (r *Runner) handleLogsWS(w http.ResponseWriter, req *http.Request) {
	conn, err := websocket.Accept(w, req, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	ctx := conn.CloseRead(req.Context())
	next := 0
	for {
		changed := r.events.Changed()
		logs, closed := r.events.jobLogsFrom(next)
		for _, ev := range logs {
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := conn.Write(wctx, websocket.MessageBinary, ev.Message)
			cancel()
			if err != nil {
				return
			}
		}
		next += len(logs)
		if closed && len(logs) == 0 {
			_ = conn.Close(websocket.StatusNormalClosure, "the job finished")
			return
		}
		if len(logs) > 0 {
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}
