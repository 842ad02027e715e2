package registry

import (
	"testing"

	"google.golang.org/grpc"
)

// The server's built-ins are what a vendored health/reflection service's glue falls back to, for
// that server's registration only; hand-written implementations come after them.
func TestBuiltinsAreTheFallbackDuringRegistration(t *testing.T) {
	const name = "registrytest.Builtin"
	builtin := &struct{ n int }{1}
	var got []any
	AddService(name, func(grpc.ServiceRegistrar) { got = append(got, Impl(name)) })
	AddImpl(name, func() any { return "hand-written" })

	RegisterAll(grpc.NewServer(), map[string]any{name: builtin})
	RegisterAll(grpc.NewServer(), nil)

	if len(got) != 2 || got[0] != builtin || got[1] != "hand-written" {
		t.Fatalf("fallbacks seen by the glue: %v", got)
	}
	if Impl(name) != "hand-written" {
		t.Errorf("after RegisterAll the built-in must be gone, got %v", Impl(name))
	}
}
