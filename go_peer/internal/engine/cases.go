package engine

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Input is the client's JSON document (docs/peer-contract.md). Cases stay raw so that one bad
// case becomes an "error" verdict while the others still run.
type Input struct {
	Target    string            `json:"target"`
	Direction string            `json:"direction"`
	RunID     string            `json:"run_id"`
	Cases     []json.RawMessage `json:"cases"`
}

// Case is a list of calls made in order on one channel.
type Case struct {
	Name  string `json:"name"`
	Calls []Call `json:"calls"`
}

// Call is one RPC and what is expected of it.
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
}

// Expect lists the checks of a call; absent parts are not checked (status defaults to OK).
type Expect struct {
	Status         string              `json:"status"`
	Message        *string             `json:"message"`
	Responses      *[]json.RawMessage  `json:"responses"`
	Headers        map[string][]string `json:"headers"`
	FloatTolerance *Tolerance          `json:"float_tolerance"`
	Chunks         *Chunks             `json:"chunks"`
}

// Tolerance for float and double fields: |got-exp| <= abs + rel*|exp|.
type Tolerance struct {
	Abs float64 `json:"abs"`
	Rel float64 `json:"rel"`
}

// Chunks checks a bytes field concatenated over all responses.
type Chunks struct {
	Field     string `json:"field"`
	Size      int    `json:"size"`
	SHA256    string `json:"sha256"`
	ChunkSize int    `json:"chunk_size"`
}

// Streaming modes.
const (
	Unary        = "unary"
	ServerStream = "server_stream"
	ClientStream = "client_stream"
	Bidi         = "bidi"

	PingPong    = "ping_pong"
	HalfDuplex  = "half_duplex"
	defaultWait = 10 * time.Second
)

// plan is a call checked and converted into protobuf values, ready to run.
type plan struct {
	call         *Call
	respType     protoreflect.MessageType
	requests     []proto.Message
	expected     []proto.Message // nil: responses not checked
	md           metadata.MD     // the call's own metadata (without interop-*)
	timeout      time.Duration
	chunkField   protoreflect.FieldDescriptor
	expectStatus string
}

// prepare validates a call and parses its messages; any error makes the case an "error".
func prepare(c *Call) (*plan, error) {
	p := &plan{call: c, timeout: defaultWait, expectStatus: "OK"}
	if !strings.HasPrefix(c.Method, "/") || strings.Count(c.Method, "/") != 2 {
		return nil, fmt.Errorf("method %q is not of the form /package.Service/Method", c.Method)
	}
	switch c.Streaming {
	case Unary, ServerStream:
		if len(c.Requests) != 1 {
			return nil, fmt.Errorf("a %s call needs exactly one request, got %d", c.Streaming, len(c.Requests))
		}
	case ClientStream:
	case Bidi:
		if c.Bidi != "" && c.Bidi != PingPong && c.Bidi != HalfDuplex {
			return nil, fmt.Errorf("bidi %q is not ping_pong or half_duplex", c.Bidi)
		}
	default:
		return nil, fmt.Errorf("streaming %q is not unary, server_stream, client_stream or bidi", c.Streaming)
	}
	if c.Streaming != Bidi && c.Bidi != "" {
		return nil, fmt.Errorf("bidi %q given for a %s call", c.Bidi, c.Streaming)
	}
	if c.TimeoutMS != nil {
		if *c.TimeoutMS <= 0 {
			return nil, fmt.Errorf("timeout_ms must be positive, got %v", *c.TimeoutMS)
		}
		p.timeout = time.Duration(*c.TimeoutMS * float64(time.Millisecond))
	}
	reqType, err := findType(c.RequestType, "request_type")
	if err != nil {
		return nil, err
	}
	if p.respType, err = findType(c.ResponseType, "response_type"); err != nil {
		return nil, err
	}
	for i, raw := range c.Requests {
		m := reqType.New().Interface()
		if err := protojson.Unmarshal(raw, m); err != nil {
			return nil, fmt.Errorf("requests[%d]: not a valid %s in protobuf JSON: %v", i, c.RequestType, err)
		}
		p.requests = append(p.requests, m)
	}
	if p.md, err = outgoingMD(c.Metadata); err != nil {
		return nil, err
	}
	e := &c.Expect
	if e.Status != "" {
		p.expectStatus = e.Status
	}
	if e.Responses != nil {
		p.expected = []proto.Message{}
		for i, raw := range *e.Responses {
			m := p.respType.New().Interface()
			if err := protojson.Unmarshal(raw, m); err != nil {
				return nil, fmt.Errorf("expect.responses[%d]: not a valid %s in protobuf JSON: %v", i, c.ResponseType, err)
			}
			p.expected = append(p.expected, m)
		}
	}
	for k, vs := range e.Headers {
		if strings.HasSuffix(strings.ToLower(k), "-bin") {
			for _, v := range vs {
				if _, err := decodeBin(v); err != nil {
					return nil, fmt.Errorf("expect.headers[%q]: %q is not base64: %v", k, v, err)
				}
			}
		}
	}
	if ch := e.Chunks; ch != nil {
		fd := p.respType.Descriptor().Fields().ByName(protoreflect.Name(ch.Field))
		if fd == nil || fd.Kind() != protoreflect.BytesKind || fd.IsList() || fd.IsMap() {
			return nil, fmt.Errorf("expect.chunks.field %q is not a singular bytes field of %s", ch.Field, c.ResponseType)
		}
		if ch.ChunkSize <= 0 {
			return nil, fmt.Errorf("expect.chunks.chunk_size must be positive")
		}
		p.chunkField = fd
	}
	return p, nil
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

func outgoingMD(in map[string][]string) (metadata.MD, error) {
	md := metadata.MD{}
	for k, vs := range in {
		key := strings.ToLower(k)
		for _, v := range vs {
			if strings.HasSuffix(key, "-bin") {
				b, err := decodeBin(v)
				if err != nil {
					return nil, fmt.Errorf("metadata[%q]: %q is not base64: %v", k, v, err)
				}
				v = string(b)
			}
			md.Append(key, v)
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
