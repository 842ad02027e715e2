package engine

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestRefusalOnlyForTheSameConnection(t *testing.T) {
	tr := &connTracker{last: map[string]string{}}
	md := metadata.Pairs(SessionKey, "r:go-go:c", CaseKey, "c", CallKey, "0")
	if err := tr.refusal(md, "127.0.0.1:1"); err != nil {
		t.Fatalf("first call refused: %v", err)
	}
	asked := metadata.Join(md, metadata.Pairs(NewConnectionKey, "1"))
	err := tr.refusal(asked, "127.0.0.1:1")
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "came on the same connection") {
		t.Fatalf("same connection: got %v", err)
	}
	if err := tr.refusal(asked, "127.0.0.1:2"); err != nil {
		t.Fatalf("new connection refused: %v", err)
	}
}

func TestUnknownListenerIsAnError(t *testing.T) {
	_, err := startListeners(context.Background(), map[string]string{"nope": "127.0.0.1:0"}, nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `unknown listener "nope"`) {
		t.Fatalf("got %v", err)
	}
}

func TestChannelsOneConnectionPerChannelObject(t *testing.T) {
	in := &Input{Target: "127.0.0.1:1", Targets: map[string]string{"max_age": "127.0.0.1:2"}}
	cs := NewChannels(nil, in)
	defer cs.Close()
	get := func(raw string) (grpc.ClientConnInterface, error) {
		var c Channel
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			t.Fatal(err)
		}
		n, err := c.normalized()
		if err != nil {
			return nil, err
		}
		return cs.conn(&n)
	}
	if plain, err := cs.conn(nil); err != nil || plain != nil {
		t.Fatalf("a case without a channel must use the plaintext connection, got %v, %v", plain, err)
	}
	a, _ := get(`{"listener": "max_age", "keepalive_time_ms": 1000}`)
	b, _ := get(`{"keepalive_time_ms": 1000, "listener": "max_age"}`)
	c, _ := get(`{"listener": "max_age"}`)
	if a == nil || a != b || a == c {
		t.Fatalf("want one connection per distinct channel object: a=%p b=%p c=%p", a, b, c)
	}
	if _, err := get(`{"listener": "restart"}`); err == nil || !strings.Contains(err.Error(), "restart has no address") {
		t.Fatalf("a listener the server does not have: got %v", err)
	}
	if _, err := get(`{"listener": "keepalive", "server_name": "x"}`); err == nil ||
		!strings.Contains(err.Error(), "need a tls or mtls listener") {
		t.Fatalf("server_name on a connection-policy listener (plaintext): got %v", err)
	}
}

// healthCheck makes a health Check on conn with the given metadata (a fresh session each test).
func healthCheck(t *testing.T, conn *grpc.ClientConn, session string, pairs ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(append([]string{SessionKey, session}, pairs...)...))
	_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	return err
}

func listen(t *testing.T, name string) (listeners, *grpc.ClientConn) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ls, err := startListeners(ctx, map[string]string{name: "127.0.0.1:0"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(ls[0].addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithNoProxy())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); cancel(); ls.stop() })
	return ls, conn
}

func TestRestartListenerComesBackOnTheSamePort(t *testing.T) {
	ls, conn := listen(t, "restart")
	addr := ls[0].addr
	if !strings.HasPrefix(ls.handshake(), " restart=127.0.0.1:") {
		t.Fatalf("handshake %q", ls.handshake())
	}
	if err := healthCheck(t, conn, "s", RestartKey, "300", HoldKey, "200"); err != nil {
		t.Fatalf("the call during which the server goes away must still end OK: %v", err)
	}
	start := time.Now()
	if err := healthCheck(t, conn, "s", NewConnectionKey, "1"); err != nil {
		t.Fatalf("the next call must reach the server once it is back: %v", err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("the next call came back after %v: the server was not gone for 300 ms", waited)
	}
	if ls[0].addr != addr {
		t.Errorf("the server came back on %s, not on %s", ls[0].addr, addr)
	}
}

func TestMaxAgeReplacesTheConnection(t *testing.T) {
	_, conn := listen(t, "max_age")
	if err := healthCheck(t, conn, "s"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(maxConnectionAge*11/10 + 500*time.Millisecond) // past the age and its jitter
	if err := healthCheck(t, conn, "s", NewConnectionKey, "1"); err != nil {
		t.Fatalf("after the connection's age the next call must come on a new connection: %v", err)
	}
}

// Without an age or a restart, the next call comes on the same connection: the check refuses it.
func TestNoRestartNoNewConnection(t *testing.T) {
	_, conn := listen(t, "keepalive")
	if err := healthCheck(t, conn, "s", RestartKey, "300"); err != nil { // only the restart listener restarts
		t.Fatal(err)
	}
	err := healthCheck(t, conn, "s", NewConnectionKey, "1")
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("want FAILED_PRECONDITION (same connection), got %v", err)
	}
}
