// Package registry collects what the peer serves. Two kinds of entries, both added from init():
//
//   - services: the generated glue (gen/pb/.../*_interop.pb.go, written by protoc-gen-interop)
//     adds one entry per gRPC service of the proto set with AddService. The server applies them
//     all, so every service of the proto set is served.
//   - implementations: hand-written services (internal/seeds) add a factory with AddImpl. The glue
//     looks them up by service name with Impl and uses them as the fallback for calls that the
//     catalogue does not describe.
//   - built-ins: the server's own health and reflection servers, handed to RegisterAll. When the
//     proto set vendors grpc/health/v1/health.proto (or reflection), the glue serves that service
//     and the built-in becomes its fallback: calls of a case go to the engine, readiness probes
//     and reflection clients (no case) still reach the real implementation.
package registry

import (
	"sort"
	"sync"

	"google.golang.org/grpc"
)

// Registration registers one service on a server.
type Registration func(s grpc.ServiceRegistrar)

type service struct {
	name     string
	register Registration
}

var (
	mu       sync.Mutex
	services []service
	impls    = map[string]func() any{}

	registering sync.Mutex     // held for a whole RegisterAll: builtins belong to that one server
	builtins    map[string]any // the server being registered's built-in implementations
)

// AddService records the registration of a service; call it from init().
func AddService(name string, r Registration) {
	mu.Lock()
	defer mu.Unlock()
	services = append(services, service{name, r})
}

// AddImpl records a factory for the hand-written implementation of a service (full protobuf name,
// e.g. "routeguide.RouteGuide"); call it from init(). Every server gets its own instance.
func AddImpl(serviceName string, factory func() any) {
	mu.Lock()
	defer mu.Unlock()
	impls[serviceName] = factory
}

// Impl returns the implementation a service falls back to: the server's built-in (during
// RegisterAll), else a new instance of the hand-written implementation, or nil.
func Impl(serviceName string) any {
	mu.Lock()
	f := impls[serviceName]
	b := builtins[serviceName]
	mu.Unlock()
	if b != nil {
		return b
	}
	if f == nil {
		return nil
	}
	return f()
}

// Services returns the names of the recorded services, sorted.
func Services() []string {
	mu.Lock()
	defer mu.Unlock()
	out := make([]string, len(services))
	for i, s := range services {
		out[i] = s.name
	}
	sort.Strings(out)
	return out
}

// RegisterAll applies every recorded service registration to s, in the order they were added.
// builtin (may be nil) maps a full service name to the server's own implementation of it, which
// Impl returns to that service's glue while s is being registered.
func RegisterAll(s grpc.ServiceRegistrar, builtin map[string]any) {
	registering.Lock()
	defer registering.Unlock()
	mu.Lock()
	all := append([]service(nil), services...)
	builtins = builtin
	mu.Unlock()
	defer func() {
		mu.Lock()
		builtins = nil
		mu.Unlock()
	}()
	for _, r := range all {
		r.register(s)
	}
}
