package probe_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/grpc-interop-harness/go_peer/internal/probe"
	"github.com/grpc-interop-harness/go_peer/internal/testutil"
)

// The test service, declared as a descriptor here (no generated code): probetest.Echo with one
// method per streaming mode and a few that misbehave on purpose.
func testFile() *descriptorpb.FileDescriptorProto {
	s, i := proto.String, proto.Int32
	label, msg := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
	method := func(name string, cs, ss bool) *descriptorpb.MethodDescriptorProto {
		return &descriptorpb.MethodDescriptorProto{Name: s(name), InputType: s(".probetest.Msg"), OutputType: s(".probetest.Msg"),
			ClientStreaming: proto.Bool(cs), ServerStreaming: proto.Bool(ss)}
	}
	return &descriptorpb.FileDescriptorProto{
		Name: s("probetest.proto"), Package: s("probetest"), Syntax: s("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: s("Msg"), Field: []*descriptorpb.FieldDescriptorProto{
			{Name: s("text"), JsonName: s("text"), Number: i(1), Label: label, Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()},
			{Name: s("n"), JsonName: s("n"), Number: i(2), Label: label, Type: descriptorpb.FieldDescriptorProto_TYPE_INT32.Enum()},
			{Name: s("child"), JsonName: s("child"), Number: i(3), Label: label, Type: msg, TypeName: s(".probetest.Msg")},
		}}},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: s("Echo"), Method: []*descriptorpb.MethodDescriptorProto{
			method("Unary", false, false), method("Fail", false, false), method("Slow", false, false),
			method("Drift", false, false), method("Server", false, true), method("Client", true, false),
			method("Bidi", true, true), method("Endless", false, true),
		}}},
	}
}

var msgType = func() protoreflect.MessageDescriptor {
	fd, err := protodesc.NewFile(testFile(), nil)
	if err != nil {
		panic(err)
	}
	return fd.Messages().ByName("Msg")
}()

func encode(t *testing.T, text string, n int32) []byte {
	t.Helper()
	m := dynamicpb.NewMessage(msgType)
	m.Set(msgType.Fields().ByName("text"), protoreflect.ValueOfString(text))
	m.Set(msgType.Fields().ByName("n"), protoreflect.ValueOfInt32(n))
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// server is the in-process grpc-go server: every method through one unknown-service handler that
// reads and writes raw frames, so the test sees the very bytes the probe client sent.
type server struct {
	t        *testing.T
	mu       sync.Mutex
	received [][]byte
	md       map[string]metadata.MD // by method
	endless  int                    // messages Endless sent
}

func (s *server) handle(_ any, stream grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(stream)
	md, _ := metadata.FromIncomingContext(stream.Context())
	s.mu.Lock()
	s.md[method] = md
	s.mu.Unlock()
	recv := func() ([]byte, bool) {
		f := &probe.Frame{}
		if stream.RecvMsg(f) != nil {
			return nil, false
		}
		s.mu.Lock()
		s.received = append(s.received, f.Bytes)
		s.mu.Unlock()
		return f.Bytes, true
	}
	switch method {
	case "/probetest.Echo/Unary":
		b, _ := recv()
		_ = stream.SetHeader(metadata.Pairs("h", "1"))
		stream.SetTrailer(metadata.Pairs("t-bin", "\x00\xff"))
		return stream.SendMsg(&probe.Frame{Bytes: b})
	case "/probetest.Echo/Fail":
		recv()
		st, _ := status.New(codes.InvalidArgument, "bad text").WithDetails(&errdetails.ErrorInfo{Reason: "R"})
		return st.Err()
	case "/probetest.Echo/Slow":
		recv()
		<-stream.Context().Done()
		return stream.Context().Err()
	case "/probetest.Echo/Drift": // its child carries field 99, which the descriptors do not know
		b, _ := recv()
		child := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7)
		return stream.SendMsg(&probe.Frame{Bytes: protowire.AppendBytes(protowire.AppendTag(b, 3, protowire.BytesType), child)})
	case "/probetest.Echo/Server":
		b, _ := recv()
		for range 3 {
			if err := stream.SendMsg(&probe.Frame{Bytes: b}); err != nil {
				return err
			}
		}
		return nil
	case "/probetest.Echo/Client":
		n := int32(0)
		for _, ok := recv(); ok; _, ok = recv() {
			n++
		}
		return stream.SendMsg(&probe.Frame{Bytes: encode(s.t, "count", n)})
	case "/probetest.Echo/Bidi":
		for b, ok := recv(); ok; b, ok = recv() {
			if err := stream.SendMsg(&probe.Frame{Bytes: b}); err != nil {
				return err
			}
		}
		return nil
	case "/probetest.Echo/Endless":
		b, _ := recv()
		for stream.SendMsg(&probe.Frame{Bytes: b}) == nil {
			s.mu.Lock()
			s.endless++
			s.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
		return nil
	}
	return status.Error(codes.Unimplemented, method)
}

func start(t *testing.T, opts ...grpc.ServerOption) (*server, string) {
	t.Helper()
	probe.InstallCodec() // the server reads raw frames through the same codec
	s := &server{t: t, md: map[string]metadata.MD{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(opts, grpc.UnknownServiceHandler(s.handle))...)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return s, lis.Addr().String()
}

func descriptors(t *testing.T) string {
	t.Helper()
	b, err := proto.Marshal(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{testFile()}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "set.pb")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// run feeds probe calls to the client as JSON lines and returns its outcome lines.
func run(t *testing.T, o probe.Options, calls ...map[string]any) []probe.Outcome {
	t.Helper()
	var in bytes.Buffer
	for _, c := range calls {
		b, _ := json.Marshal(c)
		in.Write(append(b, '\n'))
	}
	var out, errs bytes.Buffer
	args := []string{"--target", o.Target}
	for flag, v := range map[string]string{"--ca": o.CA, "--cert": o.Cert, "--key": o.Key, "--authority": o.Authority,
		"--token": o.Token, "--descriptors": o.Descriptors} {
		if v != "" {
			args = append(args, flag, v)
		}
	}
	if o.TLS {
		args = append(args, "--tls")
	}
	if code := probe.Run(context.Background(), args, &in, &out, &errs); code != 0 {
		t.Fatalf("probe-client exited %d: %s", code, errs.String())
	}
	var outcomes []probe.Outcome
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var o probe.Outcome
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("outcome line %q: %v", line, err)
		}
		outcomes = append(outcomes, o)
	}
	if len(outcomes) != len(calls) {
		t.Fatalf("%d calls, %d outcomes:\n%s", len(calls), len(outcomes), out.String())
	}
	return outcomes
}

func call(id, method, mode string, reqs ...[]byte) map[string]any {
	return map[string]any{"id": id, "method": "probetest.Echo/" + method, "streaming": mode, "requests": reqs,
		"metadata": map[string][]string{}, "timeout_ms": 5000, "cancel_after_responses": nil}
}

func TestEveryModeSendsTheBytesAsGivenAndDecodes(t *testing.T) {
	s, addr := start(t)
	a, b := encode(t, "a", 1), encode(t, "b", 2)
	got := run(t, probe.Options{Target: addr, Descriptors: descriptors(t)},
		call("u", "Unary", "unary", a), call("s", "Server", "server_stream", a),
		call("c", "Client", "client_stream", a, b, a), call("b", "Bidi", "bidi", a, b))
	want := []struct {
		id    string
		count int
	}{{"u", 1}, {"s", 3}, {"c", 1}, {"b", 2}}
	for i, w := range want {
		o := got[i]
		if o.ID != w.id || o.Code != 0 || len(o.Responses) != w.count || o.Error != nil {
			t.Errorf("call %s: got id %s code %d (%s), %d responses, error %v; want code 0, %d responses", w.id, o.ID, o.Code,
				o.Message, len(o.Responses), o.Error, w.count)
		}
		if len(o.Decoded) != len(o.Responses) {
			t.Errorf("call %s: %d decoded for %d responses", w.id, len(o.Decoded), len(o.Responses))
		}
	}
	if !bytes.Equal(got[0].Responses[0], a) || string(got[0].Decoded[0].JSON) != `{"text":"a","n":1}` {
		t.Errorf("unary: response %x decoded %s, want the request echoed as {\"text\":\"a\",\"n\":1}", got[0].Responses[0], got[0].Decoded[0].JSON)
	}
	if string(got[2].Decoded[0].JSON) != `{"text":"count","n":3}` {
		t.Errorf("client_stream: the server counted %s, want 3 requests", got[2].Decoded[0].JSON)
	}
	if got[0].Headers["h"][0] != "1" || got[0].Trailers["t-bin"][0] != base64.StdEncoding.EncodeToString([]byte("\x00\xff")) {
		t.Errorf("unary: headers %v trailers %v, want h=1 and t-bin as base64 of 00ff", got[0].Headers, got[0].Trailers)
	}
	want_ := [][]byte{a, a, a, b, a, a, b}
	s.mu.Lock()
	defer s.mu.Unlock()
	// a stock grpc-go client's content-type (grpc.ForceCodec would make it application/grpc+proto)
	if ct := s.md["/probetest.Echo/Unary"]["content-type"]; len(ct) != 1 || ct[0] != "application/grpc" {
		t.Errorf("content-type %q, want application/grpc", ct)
	}
	if len(s.received) != len(want_) {
		t.Fatalf("the server received %d messages, want %d", len(s.received), len(want_))
	}
	for i := range want_ {
		if !bytes.Equal(s.received[i], want_[i]) {
			t.Errorf("request %d reached the server as %x, want %x", i, s.received[i], want_[i])
		}
	}
}

// An empty response (every field at its default: zero bytes on the wire) is "" in the outcome, as the
// Python flavours write it, never null.
func TestEmptyResponseIsAnEmptyString(t *testing.T) {
	_, addr := start(t)
	b, _ := json.Marshal(call("e", "Unary", "unary", []byte{}))
	var out, errs bytes.Buffer
	if code := probe.Run(context.Background(), []string{"--target", addr}, bytes.NewReader(append(b, '\n')), &out, &errs); code != 0 {
		t.Fatalf("probe-client exited %d: %s", code, errs.String())
	}
	if !strings.Contains(out.String(), `"responses":[""]`) {
		t.Errorf("outcome %s: want \"responses\":[\"\"] for one empty response", out.String())
	}
}

func TestStatusDetailsMetadataAndUnknownFields(t *testing.T) {
	s, addr := start(t)
	fail := call("f", "Fail", "unary", encode(t, "x", 0))
	fail["metadata"] = map[string][]string{"k": {"v1", "v2"}, "k-bin": {base64.StdEncoding.EncodeToString([]byte{0, 1, 2})}}
	got := run(t, probe.Options{Target: addr, Descriptors: descriptors(t)}, fail,
		call("d", "Drift", "unary", encode(t, "y", 5)), call("u", "Unary", "unary", encode(t, "y", 5)))
	f := got[0]
	if f.Code != int(codes.InvalidArgument) || f.Message != "bad text" || f.Details == nil {
		t.Fatalf("Fail: code %d message %q details %v, want INVALID_ARGUMENT, bad text, the details", f.Code, f.Message, f.Details)
	}
	raw, _ := base64.StdEncoding.DecodeString(*f.Details)
	st := &spb.Status{}
	if err := proto.Unmarshal(raw, st); err != nil || st.Code != int32(codes.InvalidArgument) || len(st.Details) != 1 {
		t.Errorf("details %q are not the server's google.rpc.Status with its ErrorInfo (%v)", *f.Details, err)
	}
	s.mu.Lock()
	md := s.md["/probetest.Echo/Fail"]
	s.mu.Unlock()
	if strings.Join(md["k"], ",") != "v1,v2" || strings.Join(md["k-bin"], ",") != "\x00\x01\x02" {
		t.Errorf("the server saw k=%q k-bin=%q, want v1,v2 and the bytes 000102", md["k"], md["k-bin"])
	}
	if d := got[1]; d.Code != 0 || len(d.Decoded) != 1 || !d.Decoded[0].UnknownFields {
		t.Errorf("Drift: %+v; want one response decoded with unknown_fields true", d)
	}
	if u := got[2]; len(u.Decoded) != 1 || u.Decoded[0].UnknownFields {
		t.Errorf("Unary: decoded %+v; want unknown_fields false on a response the descriptors describe", u.Decoded)
	}
}

func TestDeadlineCancelAndClientErrors(t *testing.T) {
	s, addr := start(t)
	slow := call("slow", "Slow", "unary", encode(t, "x", 0))
	slow["timeout_ms"] = 200
	endless := call("cancel", "Endless", "server_stream", encode(t, "x", 0))
	endless["cancel_after_responses"] = 2
	bad := call("bad", "Unary", "unary") // a unary call with no request
	got := run(t, probe.Options{Target: addr}, slow, endless, bad, call("mode", "Unary", "sideways", encode(t, "x", 0)))
	if o := got[0]; o.Code != int(codes.DeadlineExceeded) || o.ElapsedMS < 200 || o.ElapsedMS > 2000 {
		t.Errorf("Slow with a 200 ms deadline: code %d after %.0f ms, want DEADLINE_EXCEEDED after 200..2000 ms", o.Code, o.ElapsedMS)
	}
	if o := got[1]; o.Code != int(codes.Canceled) || len(o.Responses) != 2 {
		t.Errorf("Endless cancelled after 2 responses: code %d with %d responses, want CANCELLED with 2", o.Code, len(o.Responses))
	}
	for _, o := range got[2:] {
		if o.Code != probe.NotMade || o.Error == nil || o.Decoded != nil {
			t.Errorf("call %s: code %d error %v; want a client-side error and code -1", o.ID, o.Code, o.Error)
		}
	}
	time.Sleep(50 * time.Millisecond)
	s.mu.Lock()
	n := s.endless
	s.mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endless != n {
		t.Errorf("the server kept sending after the cancel (%d, then %d messages)", n, s.endless)
	}
	if got[0].Decoded != nil {
		t.Errorf("decoded must be null without --descriptors")
	}
}

func TestCouldNotConnect(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	c := call("x", "Unary", "unary", encode(t, "x", 0))
	c["timeout_ms"] = 2000
	o := run(t, probe.Options{Target: addr}, c)[0]
	if o.Code != int(codes.Unavailable) || o.Error == nil || !strings.HasPrefix(*o.Error, "could not connect") {
		t.Errorf("a closed port: code %d error %v; want UNAVAILABLE and error \"could not connect: ...\"", o.Code, o.Error)
	}
}

func TestMutualTLSAuthorityAndToken(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteCerts(t, dir)
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	pool.AppendCertsFromPEM(pem)
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	s, addr := start(t, grpc.Creds(creds))
	o := probe.Options{Target: addr, TLS: true, CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "client.pem"),
		Key: filepath.Join(dir, "client.key"), Authority: testutil.OverrideName, Token: "sesame"}
	if got := run(t, o, call("m", "Unary", "unary", encode(t, "x", 0)))[0]; got.Code != 0 {
		t.Fatalf("mTLS call: code %d %s, error %v", got.Code, got.Message, got.Error)
	}
	s.mu.Lock()
	md := s.md["/probetest.Echo/Unary"]
	s.mu.Unlock()
	if md[":authority"][0] != testutil.OverrideName || md["authorization"][0] != "Bearer sesame" {
		t.Errorf("the server saw :authority %v and authorization %v; want %s and Bearer sesame", md[":authority"], md["authorization"], testutil.OverrideName)
	}
	o.Cert, o.Key = "", ""
	if got := run(t, o, call("n", "Unary", "unary", encode(t, "x", 0)))[0]; got.Code != int(codes.Unavailable) {
		t.Errorf("without a client certificate the mTLS server must refuse: code %d %s", got.Code, got.Message)
	}
}

func TestPlaintextToken(t *testing.T) {
	s, addr := start(t)
	run(t, probe.Options{Target: addr, Token: "open"}, call("p", "Unary", "unary", encode(t, "x", 0)))
	s.mu.Lock()
	defer s.mu.Unlock()
	if got := s.md["/probetest.Echo/Unary"]["authorization"]; len(got) != 1 || got[0] != "Bearer open" {
		t.Errorf("plaintext token: the server saw authorization %q, want Bearer open", got)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"--target", "nohost"}, {"--target", "h:1", "--ca", "x"}, {"--target", "h:1", "extra"}} {
		var out, errs bytes.Buffer
		if code := probe.Run(context.Background(), args, strings.NewReader(""), &out, &errs); code != 2 {
			t.Errorf("args %q: exit %d, want 2 (usage)", args, code)
		}
	}
}
