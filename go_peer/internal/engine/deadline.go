package engine

import (
	"context"
	"fmt"
	"time"
)

// The deadline a server sees is the client's timeout less the time the call took to arrive: 500 ms
// of grace below, as connect's conformance suite allows. Above, grpcio's encoder keeps few digits
// and rounds up (up to 4% measured): 5% more are allowed; and it sends at most 27 000 hours.
// python_impl/plan.py deadline_range says the same.
const (
	deadlineGraceMS = 500.0
	maxTimeoutMS    = 27000 * 3600 * 1000.0
)

func deadlineRange(timeoutMS float64) (float64, float64) {
	return min(timeoutMS, maxTimeoutMS) - deadlineGraceMS, timeoutMS*1.05 + deadlineGraceMS
}

// checkDeadline compares the deadline the call arrived with against the call's timeout_ms (nil:
// none must arrive), as server.deadline.
func checkDeadline(ctx context.Context, timeoutMS *float64, d *differ) {
	dl, ok := ctx.Deadline()
	got := "no deadline"
	remaining := float64(time.Until(dl)) / float64(time.Millisecond)
	if ok {
		got = fmt.Sprintf("%.0f ms", remaining)
	}
	if timeoutMS == nil {
		if ok {
			d.add("server.deadline", "no deadline", got)
		}
		return
	}
	low, high := deadlineRange(*timeoutMS)
	if !ok || remaining < low || remaining > high {
		d.add("server.deadline", fmt.Sprintf("%g ms (from %g to %g)", *timeoutMS, low, high), got)
	}
}
