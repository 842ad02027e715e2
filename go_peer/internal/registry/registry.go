// Package registry collects the gRPC services the peer serves. Service implementations (the
// hand-written seeds, later generated glue) call Add from init(); the server applies them all.
package registry

import (
	"sync"

	"google.golang.org/grpc"
)

// Registration registers one or more services on a server.
type Registration func(s grpc.ServiceRegistrar)

var (
	mu   sync.Mutex
	regs []Registration
)

// Add records a registration; call it from init().
func Add(r Registration) {
	mu.Lock()
	defer mu.Unlock()
	regs = append(regs, r)
}

// RegisterAll applies every recorded registration to s, in the order they were added.
func RegisterAll(s grpc.ServiceRegistrar) {
	mu.Lock()
	all := append([]Registration(nil), regs...)
	mu.Unlock()
	for _, r := range all {
		r(s)
	}
}
