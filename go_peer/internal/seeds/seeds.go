// Package seeds holds the Go implementations of the seed services, exactly as specified in
// docs/seeds.md: every method is a pure function of its requests (plus per-session state for
// Position), so clients can check exact results. Importing the package registers them all.
package seeds

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/grpc-interop-harness/go_peer/gen/pb/idc"
	posxyz "github.com/grpc-interop-harness/go_peer/gen/pb/posxyz"
	"github.com/grpc-interop-harness/go_peer/gen/pb/routeguide"
	"github.com/grpc-interop-harness/go_peer/gen/pb/tutorial"
	"github.com/grpc-interop-harness/go_peer/gen/pb/users"
	"github.com/grpc-interop-harness/go_peer/internal/registry"
)

func init() {
	registry.Add(func(s grpc.ServiceRegistrar) {
		posxyz.RegisterPositionServiceServer(s, NewPositionServer())
		routeguide.RegisterRouteGuideServer(s, NewRouteGuideServer())
		tutorial.RegisterHelloServiceServer(s, &HelloServer{})
		users.RegisterUsersServer(s, &UsersServer{})
		idc.RegisterIndicatorServer(s, &IndicatorServer{})
		idc.RegisterIndicatorGraphServer(s, &IndicatorGraphServer{})
	})
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
