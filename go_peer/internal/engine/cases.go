package engine

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	// The standard google.rpc error detail types, so expect.details can name them.
	_ "google.golang.org/genproto/googleapis/rpc/errdetails"
)

// Input is the client's JSON document (docs/peer-contract.md). Cases stay raw so that one bad
// case becomes an "error" verdict while the others still run.
type Input struct {
	Target string `json:"target"`
	// Targets: the server's other listeners by name (tls, mtls, keepalive, …), for cases with a channel.
	Targets map[string]string `json:"targets"`
	// Certs: the certificate folder as the client sees it (docs/peer-contract.md, "Certificates").
	Certs     string            `json:"certs"`
	Direction string            `json:"direction"`
	RunID     string            `json:"run_id"`
	Cases     []json.RawMessage `json:"cases"`
	// Concurrency: how many cases are in flight at once on the one connection (0 or absent: 1).
	Concurrency int `json:"concurrency"`
	// Phases: a bench document (grpc-interop bench) instead of cases.
	Phases []BenchPhase `json:"phases"`
}

// Case is a list of calls made in order on one channel.
type Case struct {
	Name  string `json:"name"`
	Calls []Call `json:"calls"`
	// Channel: the listener the case connects to and how (nil: the plaintext connection).
	Channel *Channel `json:"channel"`
}

// Call is one RPC and what is expected of it. The client reads all of it; a generic server
// (contract v2) reads the same call to know what to answer.
type Call struct {
	Method       string              `json:"method"`
	Streaming    string              `json:"streaming"`
	RequestType  string              `json:"request_type"`
	ResponseType string              `json:"response_type"`
	Metadata     map[string][]string `json:"metadata"`
	Requests     []json.RawMessage   `json:"requests"`
	TimeoutMS    *float64            `json:"timeout_ms"`
	Bidi         string              `json:"bidi"`
	Expect       Expect              `json:"expect"`
	// Server says what a generic server does besides answering.
	Server *ServerSpec `json:"server"`
	// Compression "gzip": the client compresses its requests.
	Compression string `json:"compression"`
	// CancelAfterResponses k: the client cancels the call after k responses (0: at once).
	CancelAfterResponses *int `json:"cancel_after_responses"`
	// CancelAfterRequests k: the client sends k requests, then cancels without half-closing
	// (client_stream and half-duplex bidi).
	CancelAfterRequests *int `json:"cancel_after_requests"`
	// Raw: the method need not exist; requests and responses are google.protobuf.Empty.
	Raw bool `json:"raw"`
	// CheckedByServer: the case is in the server's catalogue, so the server checks the call and
	// must say so (ServerCheckedKey) whenever it answers it itself (serverAnswers).
	CheckedByServer bool `json:"checked_by_server"`
	// WaitForReady: the call waits for a connection instead of failing fast (grpc.WaitForReady).
	WaitForReady bool `json:"wait_for_ready"`
	// RequestsWire: the requests as exact bytes (base64), sent as they are instead of Requests (wire.go).
	RequestsWire *[]string `json:"requests_wire"`
	// Protojson: each side also renders its message as protojson for the other to parse (wire.go).
	Protojson bool `json:"protojson"`
	// NoDeadline: the client sets no deadline (TimeoutMS still bounds the run).
	NoDeadline bool `json:"no_deadline"`
}

// ServerSpec is the "server" part of a call (all optional).
type ServerSpec struct {
	DelayMS      float64 `json:"delay_ms"`
	ReadRequests *int    `json:"read_requests"`
	Compression  string  `json:"compression"`
	// Responses the server sends instead of expect.responses, when the client must not see them
	// (a response over the client's receive limit).
	Responses *[]json.RawMessage `json:"responses"`
	// Status the server finishes with instead of expect.status (for outcomes the client must reach
	// itself: CANCELLED, DEADLINE_EXCEEDED).
	Status string `json:"status"`
	// Headers the server sends instead of expect.headers, when the client must refuse them (over
	// its metadata limit) and so cannot expect to see them.
	Headers map[string][]string `json:"headers"`
	// Trailers the server sends instead of expect.trailers, when the client must refuse them (over
	// its metadata limit) and so cannot expect to see them.
	Trailers map[string][]string `json:"trailers"`
	// Metadata is what must arrive instead of the call's metadata, when the client legitimately
	// changes it (drops a key gRPC reserves for itself).
	Metadata map[string][]string `json:"metadata"`
	// DetailsStatus is the google.rpc.Status sent in grpc-status-details-bin instead of one built
	// from the call's status, to contradict it (its own code, message and details).
	DetailsStatus *DetailsStatus `json:"details_status"`
	// RequireToken: the call must carry "authorization: Bearer <RequireToken>", else the server
	// answers UNAUTHENTICATED "bearer token required" (and still confirms the call).
	RequireToken string `json:"require_token"`
	// End: how the handler ends the call (docs/cases.md, "How a handler ends"): return (default),
	// return_none (a unary handler returns a nil message and a nil error), raise (a plain error,
	// not a status: grpc-go sends UNKNOWN with its text, expect.message_contains[0]), abort
	// (status.Error with the call's code and message; with OK that is a nil error).
	End string `json:"end"`
	// IgnoreEnd: the delay ignores a cancel and the deadline (a handler that sleeps through them
	// and goes on as if nothing happened).
	IgnoreEnd bool `json:"ignore_end"`
	// DelayAfter k: the delay comes after the k-th response instead of first (a client that
	// cancels after k responses must do it while the server waits).
	DelayAfter *int `json:"delay_after"`
	// RequestsWire: each request the server parsed must be the message these bytes (base64) are
	// to its own library (wire.go).
	RequestsWire *[]string `json:"requests_wire"`
	// ResponsesWire: responses as bytes (base64) the server parses with its library and sends,
	// instead of expect.responses.
	ResponsesWire *[]string `json:"responses_wire"`
	// CheckDeadline: the timeout the server received must be the call's timeout_ms, within
	// deadlineRange (none when the call has no timeout_ms).
	CheckDeadline bool `json:"check_deadline"`
}

// Handler ends (ServerSpec.End).
const (
	EndReturn     = "return"
	EndReturnNone = "return_none"
	EndRaise      = "raise"
	EndAbort      = "abort"
)

// DetailsStatus is server.details_status.
type DetailsStatus struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Details []json.RawMessage `json:"details"`
}

// Expect lists the checks of a call; absent parts are not checked (status defaults to OK).
type Expect struct {
	Status string `json:"status"`
	// StatusAlternatives are other codes that also pass, where the libraries race legitimately.
	StatusAlternatives []string            `json:"status_alternatives"`
	Message            *string             `json:"message"`
	MessageContains    []string            `json:"message_contains"`
	Responses          *[]json.RawMessage  `json:"responses"`
	Headers            map[string][]string `json:"headers"`
	Trailers           map[string][]string `json:"trailers"`
	Details            *[]json.RawMessage  `json:"details"`
	FloatTolerance     *Tolerance          `json:"float_tolerance"`
	Chunks             *Chunks             `json:"chunks"`
	// Reflection: a reflection stream's responses, checked by meaning (standard.go).
	Reflection *[]ReflectionExpect `json:"reflection"`
	// ResponsesWire: each response the client parsed must be the message these bytes (base64) are
	// to its own library (wire.go).
	ResponsesWire *[]string `json:"responses_wire"`
}

// Metadata keys the harness itself uses; expect.trailers never compares them.
const harnessKeyPrefix = "interop-"

// parseCase decodes one case strictly: unknown keys anywhere in it are an error, so a typo in a
// case file never silently turns a check off.
func parseCase(raw json.RawMessage) (*Case, error) {
	var c Case
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the case")
	}
	return &c, nil
}

// Tolerance for float and double fields: |got-exp| <= abs + rel*|exp|.
type Tolerance struct {
	Abs float64 `json:"abs"`
	Rel float64 `json:"rel"`
}

// Chunks checks a bytes field concatenated over all responses; ChunkSize 0 (absent): the size
// of each chunk is not checked.
type Chunks struct {
	Field     string `json:"field"`
	Size      int    `json:"size"`
	SHA256    string `json:"sha256"`
	ChunkSize int    `json:"chunk_size"`
}

// Streaming modes.
const (
	ModeUnary        = "unary"
	ModeServerStream = "server_stream"
	ModeClientStream = "client_stream"
	ModeBidi         = "bidi"

	PingPong    = "ping_pong"
	HalfDuplex  = "half_duplex"
	defaultWait = 10 * time.Second
)

// plan is a call checked and converted into protobuf values, ready to run.
type plan struct {
	call     *Call
	respType protoreflect.MessageType
	requests []proto.Message
	expected []proto.Message // nil: responses not checked
	// serverSent is what the server answers when server.status replaces expect.status: a client
	// that lets that answer through (a known divergence) must show it intact (answeredByServer)
	serverSent   []proto.Message
	md           metadata.MD // the call's own metadata (without interop-*)
	timeout      time.Duration
	chunkField   protoreflect.FieldDescriptor
	expectStatus string
	details      []*anypb.Any // nil: details not checked
	// wire: requests_wire, sent as they are (rawCodec); expectedWire: expect.responses_wire
	wire, expectedWire [][]byte
	// From the case's channel: refused (no server sees the call, so none confirms it), tls (the
	// negotiated ALPN is checked), opts (the token's call credentials).
	refused, tls bool
	opts         []grpc.CallOption
}

// prepare validates a call and parses its messages; any error makes the case an "error".
func prepare(c *Call) (*plan, error) {
	v, err := validateCall(c)
	if err != nil {
		return nil, err
	}
	p := &plan{call: c, timeout: v.timeout, expectStatus: v.expectStatus, md: v.md, details: v.details,
		wire: v.requestsWire, expectedWire: v.responsesWire}
	var reqType protoreflect.MessageType
	if c.Raw { // the method may not exist: the messages are Empty whatever the case names
		reqType = (&emptypb.Empty{}).ProtoReflect().Type()
		p.respType = reqType
	} else {
		if reqType, err = findType(c.RequestType, "request_type"); err != nil {
			return nil, err
		}
		if p.respType, err = findType(c.ResponseType, "response_type"); err != nil {
			return nil, err
		}
	}
	for i, raw := range c.Requests {
		m := reqType.New().Interface()
		if err := unmarshalBulk(raw, m); err != nil {
			return nil, fmt.Errorf("requests[%d]: not a valid %s in protobuf JSON: %v", i, c.RequestType, err)
		}
		p.requests = append(p.requests, m)
	}
	e := &c.Expect
	if e.Responses != nil {
		p.expected = []proto.Message{}
		for i, raw := range *e.Responses {
			m := p.respType.New().Interface()
			if err := unmarshalBulk(raw, m); err != nil {
				return nil, fmt.Errorf("expect.responses[%d]: not a valid %s in protobuf JSON: %v", i, c.ResponseType, err)
			}
			p.expected = append(p.expected, m)
		}
	}
	if s := c.Server; s != nil && s.Status != "" {
		sent := e.Responses
		if s.Responses != nil {
			sent = s.Responses
		}
		p.serverSent = []proto.Message{}
		for i, raw := range deref(sent) {
			m := p.respType.New().Interface()
			if err := unmarshalBulk(raw, m); err != nil {
				return nil, fmt.Errorf("server.responses[%d]: not a valid %s in protobuf JSON: %v", i, c.ResponseType, err)
			}
			p.serverSent = append(p.serverSent, m)
		}
	}
	if ch := e.Chunks; ch != nil {
		fd := p.respType.Descriptor().Fields().ByName(protoreflect.Name(ch.Field))
		if fd == nil || fd.Kind() != protoreflect.BytesKind || fd.IsList() || fd.IsMap() {
			return nil, fmt.Errorf("expect.chunks.field %q is not a singular bytes field of %s", ch.Field, c.ResponseType)
		}
		p.chunkField = fd
	}
	return p, nil
}

// validCall is a call checked by validateCall, its type-independent parts converted.
type validCall struct {
	timeout      time.Duration
	md           metadata.MD // metadata
	header       metadata.MD // expect.headers
	trailer      metadata.MD // expect.trailers
	expectStatus string      // expect.status, default OK
	// serverCode is the status a generic server finishes with: server.status, else expect.status.
	serverCode codes.Code
	details    []*anypb.Any // expect.details; nil: not checked
	// detailsStatus is server.details_status, sent as grpc-status-details-bin as it is.
	detailsStatus *spb.Status
	// the wire forms (wire.go): requests_wire, expect.responses_wire, server.requests_wire,
	// server.responses_wire
	requestsWire, responsesWire, serverRequestsWire, serverResponsesWire [][]byte
}

// validateCall checks every part of a call that does not depend on its message types. The client
// (prepare) and the generic server (the catalogue) both use it, so a call one side accepts the
// other accepts too. Messages are parsed by each side in its own types.
func validateCall(c *Call) (*validCall, error) {
	v := &validCall{timeout: defaultWait, expectStatus: "OK", serverCode: codes.OK}
	if !strings.HasPrefix(c.Method, "/") || strings.Count(c.Method, "/") != 2 {
		return nil, fmt.Errorf("method %q is not of the form /package.Service/Method", c.Method)
	}
	var err error
	if v.requestsWire, err = decodeWire(c.RequestsWire, "requests_wire"); err != nil {
		return nil, err
	}
	if v.responsesWire, err = decodeWire(c.Expect.ResponsesWire, "expect.responses_wire"); err != nil {
		return nil, err
	}
	requests := len(c.Requests)
	if c.RequestsWire != nil {
		if len(c.Requests) > 0 {
			return nil, fmt.Errorf("give requests or requests_wire, not both")
		}
		requests = len(*c.RequestsWire)
	}
	if c.Expect.ResponsesWire != nil && (c.Expect.Responses != nil || c.Expect.Chunks != nil) {
		return nil, fmt.Errorf("give expect.responses or expect.responses_wire, not both")
	}
	wireResponses := c.Expect.ResponsesWire != nil || (c.Server != nil && c.Server.ResponsesWire != nil)
	if c.Protojson && (c.RequestsWire != nil || wireResponses || requests != 1) {
		// protojson has no form for unknown fields, which wire-form messages carry
		return nil, fmt.Errorf("protojson: give exactly one request, in requests (no wire-form messages)")
	}
	switch c.Streaming {
	case ModeUnary, ModeServerStream:
		if requests != 1 {
			return nil, fmt.Errorf("a %s call needs exactly one request, got %d", c.Streaming, requests)
		}
	case ModeClientStream:
	case ModeBidi:
		if c.Bidi != "" && c.Bidi != PingPong && c.Bidi != HalfDuplex {
			return nil, fmt.Errorf("bidi %q is not ping_pong or half_duplex", c.Bidi)
		}
	default:
		return nil, fmt.Errorf("streaming %q is not unary, server_stream, client_stream or bidi", c.Streaming)
	}
	if c.Streaming != ModeBidi && c.Bidi != "" {
		return nil, fmt.Errorf("bidi %q given for a %s call", c.Bidi, c.Streaming)
	}
	if c.TimeoutMS != nil {
		if *c.TimeoutMS <= 0 {
			return nil, fmt.Errorf("timeout_ms must be positive, got %v", *c.TimeoutMS)
		}
		v.timeout = time.Duration(*c.TimeoutMS * float64(time.Millisecond))
	}
	// deflate: grpcio ships it, grpc-go does not (its client fails the call; the fuzz draws it)
	if c.Compression != "" && c.Compression != "gzip" && c.Compression != "deflate" {
		return nil, fmt.Errorf("compression %q is not supported (gzip, deflate)", c.Compression)
	}
	if c.CancelAfterResponses != nil && *c.CancelAfterResponses < 0 {
		return nil, fmt.Errorf("cancel_after_responses must not be negative, got %d", *c.CancelAfterResponses)
	}
	if k := c.CancelAfterRequests; k != nil {
		halfDuplex := c.Streaming == ModeBidi && c.Bidi != PingPong
		if *k < 0 || *k >= len(c.Requests) || !(c.Streaming == ModeClientStream || halfDuplex) || c.CancelAfterResponses != nil {
			return nil, fmt.Errorf("cancel_after_requests %d: a count under the %d requests, for client_stream and "+
				"half-duplex bidi calls, without cancel_after_responses", *k, len(c.Requests))
		}
	}
	if v.md, err = mdFromCase(c.Metadata, "metadata"); err != nil {
		return nil, err
	}
	e := &c.Expect
	for _, name := range append([]string{e.Status}, e.StatusAlternatives...) {
		if _, ok := CodeByName(name); name != "" && !ok {
			return nil, fmt.Errorf("expect.status %q is not a gRPC status code name", name)
		}
	}
	if e.Status != "" {
		v.expectStatus = e.Status
		v.serverCode, _ = CodeByName(e.Status)
	}
	if e.Responses == nil && e.Chunks == nil && e.Reflection == nil && e.ResponsesWire == nil {
		// unpinned, whatever came back would pass: five garbage responses gave no diff
		if v.expectStatus == "OK" || slices.Contains(e.StatusAlternatives, "OK") {
			return nil, fmt.Errorf("the call may end OK and nothing says what comes back: give expect.responses " +
				"(a list; [] for none), expect.chunks or expect.reflection")
		}
		if c.Streaming == ModeServerStream || c.Streaming == ModeBidi {
			return nil, fmt.Errorf("a %s call streams responses before its %s: say how many with expect.responses "+
				"(a list; [] for none) or expect.chunks", c.Streaming, v.expectStatus)
		}
	}
	if v.header, err = mdFromCase(e.Headers, "expect.headers"); err != nil {
		return nil, err
	}
	if v.trailer, err = mdFromCase(e.Trailers, "expect.trailers"); err != nil {
		return nil, err
	}
	if e.Details != nil {
		if v.details, err = parseDetails(*e.Details); err != nil {
			return nil, err
		}
	}
	if ch := e.Chunks; ch != nil {
		if ch.Field == "" {
			return nil, fmt.Errorf("expect.chunks.field is missing")
		}
		if ch.ChunkSize < 0 { // 0 (absent): the chunk sizes are not checked
			return nil, fmt.Errorf("expect.chunks.chunk_size must not be negative, got %d", ch.ChunkSize)
		}
	}
	if s := c.Server; s != nil {
		if s.DelayMS < 0 {
			return nil, fmt.Errorf("server.delay_ms must not be negative, got %v", s.DelayMS)
		}
		switch s.End {
		case "", EndReturn, EndRaise, EndAbort:
		case EndReturnNone:
			if (c.Streaming == ModeServerStream || c.Streaming == ModeBidi) && len(deref(s.Responses))+len(deref(e.Responses)) > 0 {
				return nil, fmt.Errorf("server.end return_none sends no responses: give the %s call none", c.Streaming)
			}
		default:
			return nil, fmt.Errorf("server.end %q is not return, return_none, raise or abort", s.End)
		}
		if s.DelayAfter != nil && (*s.DelayAfter < 0 || s.DelayMS <= 0) {
			return nil, fmt.Errorf("server.delay_after %d: a count (0 or more) of responses before server.delay_ms, which must be given", *s.DelayAfter)
		}
		if s.ReadRequests != nil && *s.ReadRequests < 0 {
			return nil, fmt.Errorf("server.read_requests must not be negative, got %d", *s.ReadRequests)
		}
		if s.Compression != "" && s.Compression != "gzip" {
			return nil, fmt.Errorf("server.compression %q is not supported (gzip)", s.Compression)
		}
		if v.serverRequestsWire, err = decodeWire(s.RequestsWire, "server.requests_wire"); err != nil {
			return nil, err
		}
		if v.serverResponsesWire, err = decodeWire(s.ResponsesWire, "server.responses_wire"); err != nil {
			return nil, err
		}
		if s.ResponsesWire != nil && s.Responses != nil {
			return nil, fmt.Errorf("give server.responses or server.responses_wire, not both")
		}
		if ds := s.DetailsStatus; ds != nil {
			code, ok := CodeByName(ds.Code)
			if !ok {
				return nil, fmt.Errorf("server.details_status.code %q is not a gRPC status code name", ds.Code)
			}
			details, err := parseDetails(ds.Details)
			if err != nil {
				return nil, fmt.Errorf("server.details_status: %v", err)
			}
			v.detailsStatus = &spb.Status{Code: int32(code), Message: ds.Message, Details: details}
		}
		if _, err := mdFromCase(s.Metadata, "server.metadata"); err != nil {
			return nil, err
		}
		if s.Headers != nil {
			if v.header, err = mdFromCase(s.Headers, "server.headers"); err != nil {
				return nil, err
			}
		}
		if s.Trailers != nil {
			if v.trailer, err = mdFromCase(s.Trailers, "server.trailers"); err != nil {
				return nil, err
			}
		}
		if s.Status != "" {
			code, ok := CodeByName(s.Status)
			if !ok {
				return nil, fmt.Errorf("server.status %q is not a gRPC status code name", s.Status)
			}
			v.serverCode = code
		}
	}
	return v, nil
}

func deref[T any](p *[]T) []T {
	if p == nil {
		return nil
	}
	return *p
}

func findType(name, what string) (protoreflect.MessageType, error) {
	if name == "" {
		return nil, fmt.Errorf("%s is missing", what)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
	if err != nil {
		return nil, fmt.Errorf("%s %q: unknown message type (not in this peer's proto set)", what, name)
	}
	return mt, nil
}

// parseDetails reads expect.details: google.protobuf.Any values in protobuf JSON. The standard
// google.rpc detail types are linked in (errdetails), so their @type resolves. A detail written
// {"@type": URL, "@encoded": base64} is an Any of a type no peer knows, by its encoded value.
func parseDetails(raws []json.RawMessage) ([]*anypb.Any, error) {
	out := make([]*anypb.Any, len(raws))
	for i, raw := range raws {
		var encoded map[string]string
		if json.Unmarshal(raw, &encoded) == nil && len(encoded) == 2 && encoded["@type"] != "" {
			if v, ok := encoded["@encoded"]; ok {
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					return nil, fmt.Errorf("expect.details[%d].@encoded is not base64: %v", i, err)
				}
				out[i] = &anypb.Any{TypeUrl: encoded["@type"], Value: b}
				continue
			}
		}
		a := &anypb.Any{}
		if err := protojson.Unmarshal(raw, a); err != nil {
			return nil, fmt.Errorf("expect.details[%d]: not a google.protobuf.Any in protobuf JSON (is its @type in the proto set?): %v", i, err)
		}
		out[i] = a
	}
	return out, nil
}

// mdFromCase converts case metadata (-bin values base64) into gRPC metadata. Keys stay as the
// case writes them: metadata.MD's own helpers would lowercase them, and a case with an uppercase
// key is there to see what grpc-go does with one sent as it is (it refuses it: INTERNAL).
func mdFromCase(in map[string][]string, what string) (metadata.MD, error) {
	md := metadata.MD{}
	for key, vs := range in {
		for _, v := range vs {
			if strings.HasSuffix(strings.ToLower(key), "-bin") {
				b, err := decodeBin(v)
				if err != nil {
					return nil, fmt.Errorf("%s[%q]: %q is not base64: %v", what, key, v, err)
				}
				v = string(b)
			}
			md[key] = append(md[key], v)
		}
	}
	return md, nil
}

// decodeBin decodes a -bin metadata value written as standard base64 (padding optional).
func decodeBin(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// asciiSafe makes a metadata value out of arbitrary text: gRPC allows only printable ASCII in
// non-binary values, so '%' and every other byte are percent-encoded (e.g. "go→py" ->
// "go%E2%86%92py").
func asciiSafe(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
