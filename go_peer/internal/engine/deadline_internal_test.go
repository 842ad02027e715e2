package engine

import (
	"context"
	"testing"
	"time"
)

// server.check_deadline: the deadline a call arrives with against its timeout_ms (500 ms grace
// below, only the client library's rounding above), and no deadline where the call sets none.
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
		agent   string
		diff    bool
	}{
		{"as set", with(2001 * time.Millisecond), ms(2001), "grpc-python/1.85.1", false},
		{"within the grace", with(1600 * time.Millisecond), ms(2001), "grpc-python/1.85.1", false},
		{"shorter than the grace", with(1400 * time.Millisecond), ms(2001), "grpc-python/1.85.1", true},
		{"rounded up to a whole second", with(3000 * time.Millisecond), ms(2001), "grpc-python/1.85.1", true},
		{"400 ms more than set (no grace above)", with(2401 * time.Millisecond), ms(2001), "grpc-python/1.85.1", true},
		{"none where one was set", context.Background(), ms(2001), "grpc-python/1.85.1", true},
		{"none where none was set", context.Background(), nil, "grpc-python/1.85.1", false},
		{"one where none was set", with(time.Hour), nil, "grpc-python/1.85.1", true},
		// a grpc-go client rounds up only at its 8th digit: 4% late is grpcio's rounding, not Go's
		{"4% more than set, from grpcio", with(2081 * time.Millisecond), ms(2001), "grpc-python/1.85.1", false},
		{"4% more than set, from grpc-go", with(2081 * time.Millisecond), ms(2001), "grpc-go/1.77.0", true},
		{"as set, from grpc-go", with(2001 * time.Millisecond), ms(2001), "grpc-go/1.77.0", false},
	} {
		d := &differ{}
		checkDeadline(tc.ctx, tc.timeout, []string{tc.agent}, d)
		if got := len(d.diffs) > 0; got != tc.diff {
			t.Errorf("%s: diff %v, want %v (%v)", tc.name, got, tc.diff, d.diffs)
		}
	}
}

// The finding shows every digit of a long timeout (%g showed 11490001 as 1.149e+07).
func TestCheckDeadlineShowsEveryDigit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 13000*time.Second)
	defer cancel()
	timeout := 11490001.5
	d := &differ{}
	checkDeadline(ctx, &timeout, []string{"grpc-python/1.85.1"}, d)
	want := "11490001.500 ms (from 11489501.500 to 12064501.575)"
	if len(d.diffs) != 1 || d.diffs[0].Expected != want {
		t.Errorf("diffs %v, want one expecting %q", d.diffs, want)
	}
}
