package engine

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	"github.com/grpc-interop-harness/go_peer/internal/registry"
)

// Metadata keys of the harness.
const (
	CaseKey    = "interop-case"    // every call: the case name
	SessionKey = "interop-session" // every call: run_id:direction:case
	CallKey    = "interop-call"    // every call: the index of the call in its case
	// ServerDiffsKey is the trailer in which a generic server sends its findings (JSON list).
	ServerDiffsKey = "interop-server-diffs-bin"
	// ServerCheckedKey is the trailer a generic server always sends for a catalogue call it
	// answers: the number of requests it compared. Without it, a missing ServerDiffsKey proves
	// nothing (the server may not have checked at all).
	ServerCheckedKey = "interop-server-checked"
	// ServerStatusKey is sent with ServerCheckedKey: the status code the server ended the call
	// with, named as CodeName does (CODE_<n> outside 0-16). A client whose library reads an unknown
	// number as UNKNOWN, or a case whose client reaches its status itself, still learns what the
	// server sent.
	ServerStatusKey = "interop-server-status"
)

// gracePeriod bounds how long a graceful stop waits for running RPCs.
const gracePeriod = 5 * time.Second

// NewServer returns a gRPC server with every registered service (the generated glue: calls go to
// the generic engine when cat has their case, else to the hand-written fallback), health (overall
// and every service SERVING) and reflection (v1 and v1alpha). When the proto set vendors the health
// or a reflection proto, its glue serves that service like any other and the real implementation
// is its fallback (registry.RegisterAll): the harness's readiness probe carries no case, so it still
// reaches the real health server. cat may be nil (only fallbacks answer). Non-OK
// outcomes are logged to log as "[<case>] method -> status", server findings as
// "[<case>] server: path: expected …, got …".
func NewServer(log io.Writer, cat *Catalogue, opts ...grpc.ServerOption) *grpc.Server {
	return newServer(&callLogger{w: log, cat: cat}, opts...)
}

// extra options come after the engine's own: a listener's credentials, or its connection policy and
// interceptors (connection.go), which run inside the engine's.
func newServer(l *callLogger, extra ...grpc.ServerOption) *grpc.Server {
	base := []grpc.ServerOption{grpc.ChainUnaryInterceptor(l.unary), grpc.ChainStreamInterceptor(l.stream),
		grpc.StatsHandler(StatsHandler())}
	s := grpc.NewServer(append(base, extra...)...)
	hs := health.NewServer()
	opts := reflection.ServerOptions{Services: s}
	v1, v1alpha := reflection.NewServerV1(opts), reflection.NewServer(opts)
	registry.RegisterAll(s, map[string]any{
		healthpb.Health_ServiceDesc.ServiceName:                    flipHealth{hs},
		reflectionv1.ServerReflection_ServiceDesc.ServiceName:      v1,
		reflectionv1alpha.ServerReflection_ServiceDesc.ServiceName: v1alpha,
	})
	served := s.GetServiceInfo()
	if _, ok := served[healthpb.Health_ServiceDesc.ServiceName]; !ok {
		healthpb.RegisterHealthServer(s, flipHealth{hs})
	}
	if _, ok := served[reflectionv1.ServerReflection_ServiceDesc.ServiceName]; !ok {
		reflectionv1.RegisterServerReflectionServer(s, v1)
	}
	if _, ok := served[reflectionv1alpha.ServerReflection_ServiceDesc.ServiceName]; !ok {
		reflectionv1alpha.RegisterServerReflectionServer(s, v1alpha)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for name := range s.GetServiceInfo() {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	return s
}

// Listen is one listener of a server: its name (plaintext, tls, mtls) and address.
type Listen struct {
	Name, Addr string
}

// Serve listens on every listener (the first is the plaintext one; tls and mtls take their
// certificates from tlsDir), prints "LISTENING host:port name=host:port …" on stdout once all are
// bound and serving, and serves until ctx is cancelled, then stops them all gracefully (forcefully
// after a grace period). grpc-go's credentials belong to a server, so each listener has its own
// grpc.Server; all share the catalogue and the log.
func Serve(ctx context.Context, listens []Listen, tlsDir string, cat *Catalogue, stdout, stderr io.Writer) error {
	if len(listens) == 0 || listens[0].Name != ListenerPlaintext {
		return fmt.Errorf("the first listener must be the plaintext one")
	}
	// the connection-policy listeners (keepalive, max_age, restart: connection.go) serve themselves
	policy := map[string]string{}
	var core []Listen
	for _, x := range listens {
		if _, ok := listenerOptions[x.Name]; ok {
			policy[x.Name] = x.Addr
		} else {
			core = append(core, x)
		}
	}
	listens = core
	named, err := startListeners(ctx, policy, cat, stderr)
	if err != nil {
		return err
	}
	defer named.stop()
	l := &callLogger{w: stderr, cat: cat}
	refused := &Refusals{log: stderr} // every TLS listener's refused handshakes, taken with a call on any listener
	var (
		servers []*grpc.Server
		lns     []net.Listener
		shown   []string
	)
	defer func() { // on an error before serving: what was bound is let go
		if servers == nil {
			for _, ln := range lns {
				ln.Close()
			}
		}
	}()
	built := make([]*grpc.Server, 0, len(listens))
	for _, x := range listens {
		host, _, err := net.SplitHostPort(x.Addr)
		if err != nil {
			return fmt.Errorf("bad address %q for the %s listener: %v (want HOST:PORT)", x.Addr, x.Name, err)
		}
		opts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(refused.unary)}
		if x.Name != ListenerPlaintext {
			if tlsDir == "" {
				return fmt.Errorf("the %s listener needs --tls-dir (the certificate folder)", x.Name)
			}
			cfg, err := ServerConfig(tlsDir, x.Name)
			if err != nil {
				return fmt.Errorf("the %s listener: %v", x.Name, err)
			}
			opts = append(opts, grpc.Creds(refused.Recording(x.Name, cfg)))
		}
		ln, err := net.Listen("tcp", x.Addr)
		if err != nil {
			return fmt.Errorf("the %s listener: %v", x.Name, err)
		}
		lns = append(lns, ln)
		tcp := ln.Addr().(*net.TCPAddr)
		if host == "" {
			host = tcp.IP.String()
		}
		addr := net.JoinHostPort(host, fmt.Sprint(tcp.Port))
		if x.Name != ListenerPlaintext {
			addr = x.Name + "=" + addr
		}
		shown = append(shown, addr)
		built = append(built, newServer(l, opts...))
	}
	servers = built
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stderr, "interop-peer: stopping")
		case <-stopped: // one listener failed: the others go too
		}
		var wg sync.WaitGroup
		for _, s := range servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t := time.AfterFunc(gracePeriod, s.Stop)
				s.GracefulStop()
				t.Stop()
			}()
		}
		wg.Wait()
	}()
	// Every listener is bound and health already answers SERVING: connections made from now on
	// are queued and served as soon as Serve runs.
	fmt.Fprintf(stdout, "LISTENING %s%s\n", strings.Join(shown, " "), named.handshake())
	errs := make(chan error, len(servers))
	for i, s := range servers {
		go func() {
			err := s.Serve(lns[i])
			if err == grpc.ErrServerStopped {
				err = nil
			}
			if err != nil {
				err = fmt.Errorf("the %s listener: %v", listens[i].Name, err)
			}
			errs <- err
		}()
	}
	// The first server to end (an error, or the stop) ends them all.
	var first error
	for range servers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
		select {
		case <-stopped:
		default:
			close(stopped)
		}
	}
	return first
}

// callLogger is the server's interceptor: it puts itself (the catalogue and the log) into every
// call's context for the generic engine, and logs non-OK outcomes.
type callLogger struct {
	mu  sync.Mutex
	w   io.Writer
	cat *Catalogue
}

type serverKey struct{}

// serverFrom returns the callLogger of the server running the call (nil outside NewServer).
func serverFrom(ctx context.Context) *callLogger {
	l, _ := ctx.Value(serverKey{}).(*callLogger)
	return l
}

func (l *callLogger) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}

// withContext overrides a server stream's context.
type withContext struct {
	grpc.ServerStream
	ctx context.Context
}

func (s withContext) Context() context.Context { return s.ctx }

func (l *callLogger) log(ctx context.Context, method string, err error) {
	if err == nil {
		return
	}
	name := "-"
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(CaseKey); len(v) > 0 {
			name = v[0]
		}
	}
	st := status.Convert(err)
	l.printf("[%s] %s -> %s: %s\n", name, method, CodeName(st.Code()), st.Message())
}

func (l *callLogger) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx = context.WithValue(ctx, serverKey{}, l)
	resp, err := h(ctx, req)
	l.log(ctx, info.FullMethod, err)
	return resp, err
}

func (l *callLogger) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx := context.WithValue(ss.Context(), serverKey{}, l)
	err := h(srv, withContext{ss, ctx})
	l.log(ctx, info.FullMethod, err)
	return err
}
