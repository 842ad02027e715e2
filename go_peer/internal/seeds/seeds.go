// Package seeds holds the Go implementations of the seed services, exactly as specified in
// docs/seeds.md: every method is a pure function of its requests (plus per-session state for
// Position), so clients can check exact results. Importing the package registers them all as
// fallback implementations (registry.AddImpl): the generated glue serves every service and hands
// calls that the server's catalogue does not describe to them.
package seeds

import (
	"context"

	"google.golang.org/grpc/metadata"

	"github.com/grpc-interop-harness/go_peer/gen/pb/idc"
	posxyz "github.com/grpc-interop-harness/go_peer/gen/pb/posxyz"
	"github.com/grpc-interop-harness/go_peer/gen/pb/routeguide"
	"github.com/grpc-interop-harness/go_peer/gen/pb/tutorial"
	"github.com/grpc-interop-harness/go_peer/gen/pb/users"
	"github.com/grpc-interop-harness/go_peer/internal/registry"
)

func init() {
	registry.AddImpl(posxyz.PositionService_ServiceDesc.ServiceName, func() any { return NewPositionServer() })
	registry.AddImpl(routeguide.RouteGuide_ServiceDesc.ServiceName, func() any { return NewRouteGuideServer() })
	registry.AddImpl(tutorial.HelloService_ServiceDesc.ServiceName, func() any { return &HelloServer{} })
	registry.AddImpl(users.Users_ServiceDesc.ServiceName, func() any { return &UsersServer{} })
	registry.AddImpl(idc.Indicator_ServiceDesc.ServiceName, func() any { return &IndicatorServer{} })
	registry.AddImpl(idc.IndicatorGraph_ServiceDesc.ServiceName, func() any { return &IndicatorGraphServer{} })
}

// session is the interop-session value of a call ("" when absent).
func session(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("interop-session"); len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// The glue type-asserts the registered implementations to the generated server interfaces; a
// seed that stopped implementing its interface must fail the build, not silently stop answering.
var (
	_ posxyz.PositionServiceServer = (*PositionServer)(nil)
	_ routeguide.RouteGuideServer  = (*RouteGuideServer)(nil)
	_ tutorial.HelloServiceServer  = (*HelloServer)(nil)
	_ users.UsersServer            = (*UsersServer)(nil)
	_ idc.IndicatorServer          = (*IndicatorServer)(nil)
	_ idc.IndicatorGraphServer     = (*IndicatorGraphServer)(nil)
)
