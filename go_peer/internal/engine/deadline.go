package engine

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The deadline a server sees is the client's timeout less the time the call took to arrive: 500 ms
// of grace below, as connect's conformance suite allows. Above, no grace (time only shortens a
// deadline), but grpcio's encoder keeps few digits and rounds up (up to 4% measured): 5% more are
// allowed; and it sends at most 27 000 hours. A grpc-go client (its user-agent says so) rounds up
// only at the 8th digit of its unit (at most 1e-5), so it gets no more than that and a millisecond.
// python_impl/plan.py deadline_range says the same.
const (
	deadlineGraceMS = 500.0
	maxTimeoutMS    = 27000 * 3600 * 1000.0
	grpcioRounding  = 0.05
	grpcGoRounding  = 1e-5
	grpcGoAgent     = "grpc-go/"
)

func deadlineRange(timeoutMS float64, goClient bool) (float64, float64) {
	high := timeoutMS * (1 + grpcioRounding)
	if goClient {
		high = timeoutMS*(1+grpcGoRounding) + 1
	}
	return min(timeoutMS, maxTimeoutMS) - deadlineGraceMS, high
}

// checkDeadline compares the deadline the call arrived with against the call's timeout_ms (nil:
// none must arrive), as server.deadline; userAgent is the call's, which says whether the client is
// grpc-go.
func checkDeadline(ctx context.Context, timeoutMS *float64, userAgent []string, d *differ) {
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
	goClient := false
	for _, ua := range userAgent {
		goClient = goClient || strings.Contains(ua, grpcGoAgent)
	}
	low, high := deadlineRange(*timeoutMS, goClient)
	if !ok || remaining < low || remaining > high {
		ms := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) } // %g: 1.149e+07
		d.add("server.deadline", fmt.Sprintf("%s ms (from %s to %s)", ms(*timeoutMS), ms(low), ms(high)), got)
	}
}
