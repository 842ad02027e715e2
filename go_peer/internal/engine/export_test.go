package engine

import (
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Test hooks. The tests that need the generated seed types are external (package engine_test):
// the generated packages import this one (their _interop.pb.go glue), so an internal test that
// imported them would be an import cycle.

// Differ exposes the diff walker.
type Differ struct{ d *differ }

func NewDiffer(tol *Tolerance) *Differ { return &Differ{&differ{tol: tol}} }

func (d *Differ) Messages(path string, exp, got []proto.Message) { d.d.messages(path, exp, got) }

func (d *Differ) Message(path string, exp, got protoreflect.Message) { d.d.message(path, exp, got) }

func (d *Differ) Diffs() []Diff { return d.d.diffs }

func (d *Differ) ServerDiffs(trailer metadata.MD) { d.d.serverDiffs(trailer) }

// Plan is a prepared call.
type Plan = plan

// Outcome is what an RPC produced, as check sees it.
type Outcome struct {
	Status          *status.Status
	Header, Trailer metadata.MD
	Responses       []proto.Message
	Elapsed         time.Duration
}

var (
	Prepare    = prepare
	ReprFloat  = reprFloat
	ASCIISafe  = asciiSafe
	FloatEqual = floatEqual
	ParseCase  = parseCase
)

// ServedCallError is the error the generic server finds in a catalogue call (nil: valid).
func ServedCallError(c *Call) error { return serveCall("case", 0, c).err }

func Check(call int, p *Plan, o Outcome) []Diff {
	return check(call, p, &outcome{status: o.Status, header: o.Header, trailer: o.Trailer, responses: o.Responses,
		elapsed: o.Elapsed})
}

// PlanRequests and PlanExpected are a prepared call's parsed messages.
func PlanRequests(p *Plan) []proto.Message { return p.requests }

func PlanExpected(p *Plan) []proto.Message { return p.expected }

// WithholdUnlistedCert makes the client give crypto/tls its certificate as Certificates (the fault
// GetClientCertificate fixes: a certificate the server's CA list does not cover is withheld), until
// the returned function runs.
func WithholdUnlistedCert() (restore func()) {
	withholdUnlistedCert = true
	return func() { withholdUnlistedCert = false }
}
