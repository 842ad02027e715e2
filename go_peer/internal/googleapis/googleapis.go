// Package googleapis keeps the Go modules of the googleapis common protos in go.mod.
//
// User protos often import google/api (annotations, field_behavior, ...), google/type (Date,
// Money, LatLng, ...) or google/rpc (Status, error details). Their Go code lives in genproto, not in
// the generated proto set, so the modules that hold it must be required, at pinned versions, for
// any proto set's generated code to build. Nothing calls this package; importing one package of each
// module is what keeps `go mod tidy` from dropping the requirement.
package googleapis

import (
	_ "google.golang.org/genproto/googleapis/api/annotations"
	_ "google.golang.org/genproto/googleapis/rpc/status"
	_ "google.golang.org/genproto/googleapis/type/date"
)
