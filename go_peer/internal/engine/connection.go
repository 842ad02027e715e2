package engine

// Connection behaviour (docs/peer-contract.md, "Connection behaviour (issue 10 item 4)"): the
// client's connection per case channel, and the server's connection listeners, each a grpc.Server
// of its own (keepalive enforcement and connection age are per server in grpc-go) serving the same
// services as the plaintext one:
//   - keepalive: a strict ping enforcement policy (a client pinging too often gets GOAWAY
//     ENHANCE_YOUR_CALM "too_many_pings");
//   - max_age: a short maximum connection age, with a grace period long enough for a call in flight;
//   - restart: a server that goes away (GOAWAY, no new connections) when a call carrying
//     interop-restart-ms: N arrives, closes once its calls have ended and listens again on the
//     same port N ms later.
// On every one of them, a call carrying interop-new-connection: 1 must come on another connection
// than the case's previous call, else it is refused (FAILED_PRECONDITION): that is how a case
// proves that a GOAWAY or a restart really replaced the connection. A call carrying
// interop-hold-ms: N is held N ms (or until it ends) before the service answers it. These work on
// any method, so the cases use the standard health service (harness/cases/connection.py).

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Metadata keys of the connection cases.
const (
	RestartKey       = "interop-restart-ms"
	NewConnectionKey = "interop-new-connection"
	// HoldKey: the listener holds the call this long before the service answers it (a call in
	// flight while the connection ages)
	HoldKey = "interop-hold-ms"
	// ListenerTrailer: every answer of a connection listener carries its name, so a case proves
	// which listener served it (python_impl/connection.py LISTENER_TRAILER)
	ListenerTrailer = "x-interop-listener"
)

// The listeners' policies: the same numbers as python_impl/connection.py.
const (
	// pings closer than this are strikes; grpc-go ends the connection at the third (its fixed
	// maxPingStrikes is 2; the Python listener allows 1, so grpcio ends it at the second)
	keepaliveMinPingInterval = time.Minute
	maxConnectionAge         = time.Second
	maxConnectionAgeGrace    = 10 * time.Second
	// how long a restarting server waits for its calls in flight before it closes
	restartGrace = 5 * time.Second
)

var listenerOptions = map[string][]grpc.ServerOption{
	"keepalive": {grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
		MinTime: keepaliveMinPingInterval, PermitWithoutStream: false})},
	"max_age": {grpc.KeepaliveParams(keepalive.ServerParameters{
		MaxConnectionAge: maxConnectionAge, MaxConnectionAgeGrace: maxConnectionAgeGrace})},
	"restart": nil,
}

// ListenerNames are the listeners Serve can add besides plaintext.
func ListenerNames() []string {
	names := make([]string, 0, len(listenerOptions))
	for n := range listenerOptions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// dialOptions are a channel's options besides Dial's. grpc-go raises a keepalive time under 10 s
// to 10 s (and logs it): the case says what it asks for, the library decides.
func (c Channel) dialOptions() []grpc.DialOption {
	if c.KeepaliveTimeMS == nil {
		return nil
	}
	kp := keepalive.ClientParameters{Time: time.Duration(*c.KeepaliveTimeMS) * time.Millisecond,
		PermitWithoutStream: c.KeepalivePermitWithoutCalls}
	if c.KeepaliveTimeoutMS != nil {
		kp.Timeout = time.Duration(*c.KeepaliveTimeoutMS) * time.Millisecond
	}
	return []grpc.DialOption{grpc.WithKeepaliveParams(kp)}
}

// ---------------------------------------------------------------- server side

// connTracker remembers the peer address of each session's last call.
type connTracker struct {
	mu   sync.Mutex
	last map[string]string
}

// refusal says why a call must be refused: it asked for a new connection and came on the old one.
func (t *connTracker) refusal(md metadata.MD, addr string) error {
	session := first(md, SessionKey)
	t.mu.Lock()
	before, seen := t.last[session]
	t.last[session] = addr
	t.mu.Unlock()
	if first(md, NewConnectionKey) == "1" && seen && before == addr {
		return status.Errorf(codes.FailedPrecondition, "case %s call %s came on the same connection as the call "+
			"before it (%s): the server's GOAWAY or restart did not replace the connection",
			first(md, CaseKey), first(md, CallKey), addr)
	}
	return nil
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// listener is one named listener's server; restart replaces it with a fresh one on the same port.
type listener struct {
	name, addr string
	ctx        context.Context
	cat        *Catalogue
	log        io.Writer
	conns      *connTracker

	mu                 sync.Mutex
	srv                *grpc.Server
	restarting, closed bool
}

// serve binds l.addr (the same port again after a restart) and serves on it; l.mu is held.
func (l *listener) serve() error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return fmt.Errorf("listener %s: %v", l.name, err)
	}
	l.addr = ln.Addr().String()
	opts := append(append([]grpc.ServerOption{}, listenerOptions[l.name]...),
		grpc.ChainUnaryInterceptor(l.unary), grpc.ChainStreamInterceptor(l.stream))
	l.srv = NewServer(l.log, l.cat, opts...)
	go l.srv.Serve(ln) //nolint:errcheck  ends with ErrServerStopped or a closed listener
	return nil
}

func (l *listener) check(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	addr := "?"
	if p, ok := peer.FromContext(ctx); ok {
		addr = p.Addr.String()
	}
	if err := l.conns.refusal(md, addr); err != nil {
		return err
	}
	if ms, err := strconv.Atoi(first(md, RestartKey)); err == nil && ms >= 0 && l.name == "restart" {
		l.restart(time.Duration(ms)*time.Millisecond, first(md, CaseKey))
	}
	if ms, err := strconv.Atoi(first(md, HoldKey)); err == nil && ms > 0 {
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-ctx.Done(): // a cancelled call is not held
		}
	}
	return nil
}

func (l *listener) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	_ = grpc.SetTrailer(ctx, metadata.Pairs(ListenerTrailer, l.name))
	if err := l.check(ctx); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (l *listener) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ss.SetTrailer(metadata.Pairs(ListenerTrailer, l.name))
	if err := l.check(ss.Context()); err != nil {
		return err
	}
	return h(srv, ss)
}

// restart goes away now (GOAWAY: the calls in flight still end, new ones need a new connection),
// closes once they have ended, and listens again on the same port after wait.
func (l *listener) restart(wait time.Duration, name string) {
	l.mu.Lock()
	if l.restarting || l.closed {
		l.mu.Unlock()
		return
	}
	l.restarting = true
	old := l.srv
	l.mu.Unlock()
	go func() {
		defer func() {
			l.mu.Lock()
			l.restarting = false
			l.mu.Unlock()
		}()
		t := time.AfterFunc(restartGrace, old.Stop)
		old.GracefulStop()
		t.Stop()
		fmt.Fprintf(l.log, "[%s] listener restart: stopped, listening again on %s in %v\n", name, l.addr, wait)
		select {
		case <-time.After(wait):
		case <-l.ctx.Done():
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.closed {
			return
		}
		if err := l.serve(); err != nil {
			fmt.Fprintf(l.log, "[%s] listener restart: %v\n", name, err)
			return
		}
		fmt.Fprintf(l.log, "[%s] listener restart: listening again on %s\n", name, l.addr)
	}()
}

func (l *listener) stop() {
	l.mu.Lock()
	l.closed = true
	srv := l.srv
	l.mu.Unlock()
	if srv != nil {
		// at once: these listeners hold calls on purpose (a Watch up to its deadline), and a peer
		// whose harness is gone must go within seconds
		srv.Stop()
	}
}

// listeners are a server's named listeners.
type listeners []*listener

// startListeners binds and serves every named listener (name -> HOST:PORT).
func startListeners(ctx context.Context, listen map[string]string, cat *Catalogue, log io.Writer) (listeners, error) {
	var out listeners
	names := make([]string, 0, len(listen))
	for n := range listen {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := listenerOptions[name]; !ok {
			out.stop()
			return nil, fmt.Errorf("unknown listener %q; this peer serves %s", name, strings.Join(ListenerNames(), ", "))
		}
		l := &listener{name: name, addr: listen[name], ctx: ctx, cat: cat, log: log,
			conns: &connTracker{last: map[string]string{}}}
		l.mu.Lock()
		err := l.serve()
		l.mu.Unlock()
		if err != nil {
			out.stop()
			return nil, err
		}
		out = append(out, l)
	}
	// the listeners stop with the peer, alongside the plaintext server (not after it)
	go func() {
		<-ctx.Done()
		out.stop()
	}()
	return out, nil
}

// handshake is what the LISTENING line says after the plaintext address: " name=host:port" each.
func (ls listeners) handshake() string {
	var b strings.Builder
	for _, l := range ls {
		l.mu.Lock()
		fmt.Fprintf(&b, " %s=%s", l.name, l.addr)
		l.mu.Unlock()
	}
	return b.String()
}

// stop stops every listener at once.
func (ls listeners) stop() {
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.stop()
		}()
	}
	wg.Wait()
}
