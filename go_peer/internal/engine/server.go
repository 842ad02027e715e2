package engine

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/grpc-interop-harness/go_peer/internal/registry"
)

// Metadata keys every harness call carries.
const (
	CaseKey    = "interop-case"
	SessionKey = "interop-session"
)

// gracePeriod bounds how long a graceful stop waits for running RPCs.
const gracePeriod = 5 * time.Second

// NewServer returns a gRPC server with every registered service, health (overall and every
// service SERVING) and reflection. Non-OK outcomes are logged to log as "[<case>] method -> status".
func NewServer(log io.Writer) *grpc.Server {
	l := &callLogger{w: log}
	s := grpc.NewServer(grpc.ChainUnaryInterceptor(l.unary), grpc.ChainStreamInterceptor(l.stream))
	registry.RegisterAll(s)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for name := range s.GetServiceInfo() {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	return s
}

// Serve listens on addr, prints "LISTENING host:port" on stdout once serving and serves until
// ctx is cancelled, then stops gracefully (forcefully after a grace period).
func Serve(ctx context.Context, addr string, stdout, stderr io.Writer) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bad --addr %q: %v (want HOST:PORT)", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s := NewServer(stderr)
	tcp := ln.Addr().(*net.TCPAddr)
	if host == "" {
		host = tcp.IP.String()
	}
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-stopped:
			return
		}
		fmt.Fprintln(stderr, "interop-peer: stopping")
		t := time.AfterFunc(gracePeriod, s.Stop)
		s.GracefulStop()
		t.Stop()
	}()
	// The listener is bound and health already answers SERVING: connections made from now on
	// are queued and served as soon as Serve runs.
	fmt.Fprintf(stdout, "LISTENING %s\n", net.JoinHostPort(host, fmt.Sprint(tcp.Port)))
	err = s.Serve(ln)
	close(stopped)
	if err == grpc.ErrServerStopped {
		err = nil
	}
	return err
}

type callLogger struct {
	mu sync.Mutex
	w  io.Writer
}

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
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "[%s] %s -> %s: %s\n", name, method, CodeName(st.Code()), st.Message())
}

func (l *callLogger) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	l.log(ctx, info.FullMethod, err)
	return resp, err
}

func (l *callLogger) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	err := h(srv, ss)
	l.log(ss.Context(), info.FullMethod, err)
	return err
}
