package engine

import (
	"context"
	"testing"
	"time"
)

// server.check_deadline: the deadline a call arrives with against its timeout_ms (500 ms grace
// below, grpcio's rounding above), and no deadline where the call sets none.
func TestCheckDeadline(t *testing.T) {
	ms := func(v float64) *float64 { return &v }
	with := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		t.Cleanup(cancel)
		return ctx
	}
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		timeout *float64
		diff    bool
	}{
		{"as set", with(2001 * time.Millisecond), ms(2001), false},
		{"within the grace", with(1600 * time.Millisecond), ms(2001), false},
		{"shorter than the grace", with(1400 * time.Millisecond), ms(2001), true},
		{"rounded up to a whole second", with(3000 * time.Millisecond), ms(2001), true},
		{"none where one was set", context.Background(), ms(2001), true},
		{"none where none was set", context.Background(), nil, false},
		{"one where none was set", with(time.Hour), nil, true},
	} {
		d := &differ{}
		checkDeadline(tc.ctx, tc.timeout, d)
		if got := len(d.diffs) > 0; got != tc.diff {
			t.Errorf("%s: diff %v, want %v (%v)", tc.name, got, tc.diff, d.diffs)
		}
	}
}
