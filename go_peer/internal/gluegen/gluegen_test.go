package gluegen_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/grpc-interop-harness/go_peer/internal/gluegen"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// streams.proto: all four streaming modes, a message type from another package, and a second
// service in the same file.
const streamsProto = `
name: "demo/streams.proto"
package: "demo.v1"
dependency: "google/protobuf/empty.proto"
message_type: { name: "Ping" field: { name: "n" number: 1 label: LABEL_OPTIONAL type: TYPE_INT32 json_name: "n" } }
service: {
  name: "Streams"
  method: { name: "Unary" input_type: ".demo.v1.Ping" output_type: ".demo.v1.Ping" }
  method: { name: "Server" input_type: ".demo.v1.Ping" output_type: ".demo.v1.Ping" server_streaming: true }
  method: { name: "Client" input_type: ".demo.v1.Ping" output_type: ".google.protobuf.Empty" client_streaming: true }
  method: { name: "Bidi" input_type: ".google.protobuf.Empty" output_type: ".demo.v1.Ping" client_streaming: true server_streaming: true }
}
service: { name: "other_service" method: { name: "do_it" input_type: ".demo.v1.Ping" output_type: ".demo.v1.Ping" } }
syntax: "proto3"
`

// request builds what protoc would send, with the options harness/protoset/codegen.py passes.
func request(t *testing.T, files []*descriptorpb.FileDescriptorProto, generate []string, m map[string]string) *pluginpb.CodeGeneratorRequest {
	t.Helper()
	params := []string{"module=" + gluegen.Module}
	for file, pkg := range m {
		params = append(params, "M"+file+"="+gluegen.Module+"/"+pkg+";"+filepath.Base(pkg))
	}
	return &pluginpb.CodeGeneratorRequest{
		FileToGenerate:  generate,
		Parameter:       proto.String(strings.Join(params, ",")),
		ProtoFile:       files,
		CompilerVersion: &pluginpb.Version{Major: proto.Int32(7), Minor: proto.Int32(35), Patch: proto.Int32(1)},
	}
}

func run(t *testing.T, req *pluginpb.CodeGeneratorRequest) map[string]string {
	t.Helper()
	gen, err := protogen.Options{}.New(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := gluegen.Generate(gen); err != nil {
		t.Fatal(err)
	}
	resp := gen.Response()
	if resp.Error != nil {
		t.Fatalf("generator error: %s", resp.GetError())
	}
	out := map[string]string{}
	for _, f := range resp.File {
		out[f.GetName()] = f.GetContent()
	}
	return out
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/gluegen -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the generated code (run with -update after checking):\n--- got ---\n%s", path, got)
	}
}

func TestGoldenHealth(t *testing.T) {
	fd := protodesc.ToFileDescriptorProto(healthpb.File_grpc_health_v1_health_proto)
	out := run(t, request(t, []*descriptorpb.FileDescriptorProto{fd}, []string{fd.GetName()},
		map[string]string{fd.GetName(): "gen/pb/grpc/health/v1/grpc_health_v1"}))
	const name = "gen/pb/grpc/health/v1/grpc_health_v1/health_interop.pb.go"
	if len(out) != 1 || out[name] == "" {
		t.Fatalf("generated files: %v", keys(out))
	}
	golden(t, "health_interop.pb.go.golden", out[name])
}

func TestGoldenAllStreamingModes(t *testing.T) {
	var fd descriptorpb.FileDescriptorProto
	if err := prototext.Unmarshal([]byte(streamsProto), &fd); err != nil {
		t.Fatal(err)
	}
	empty := protodesc.ToFileDescriptorProto(emptypb.File_google_protobuf_empty_proto)
	out := run(t, request(t, []*descriptorpb.FileDescriptorProto{empty, &fd}, []string{fd.GetName()},
		map[string]string{fd.GetName(): "gen/pb/demo/demo_v1"}))
	const name = "gen/pb/demo/demo_v1/streams_interop.pb.go"
	if len(out) != 1 || out[name] == "" {
		t.Fatalf("generated files: %v", keys(out))
	}
	golden(t, "streams_interop.pb.go.golden", out[name])
}

func TestNoServicesNoFile(t *testing.T) {
	empty := protodesc.ToFileDescriptorProto(emptypb.File_google_protobuf_empty_proto)
	out := run(t, request(t, []*descriptorpb.FileDescriptorProto{empty}, []string{empty.GetName()},
		map[string]string{empty.GetName(): "gen/pb/google/protobuf/protobuf"}))
	if len(out) != 0 {
		t.Errorf("a file without services must not get glue: %v", keys(out))
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A file the runtime already links (grpc-go's health package): the glue goes into a package of our
// own and refers to the runtime's types and service descriptor, which are never generated again.
func TestGoldenHealthIntoGluePackage(t *testing.T) {
	fd := protodesc.ToFileDescriptorProto(healthpb.File_grpc_health_v1_health_proto)
	req := request(t, []*descriptorpb.FileDescriptorProto{fd}, []string{fd.GetName()}, nil)
	req.Parameter = proto.String(req.GetParameter() + ",glue_package=" + gluegen.Module + "/gen/runtime/grpc/health/v1")
	gen, err := protogen.Options{}.New(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := (gluegen.Options{GluePackage: gluegen.Module + "/gen/runtime/grpc/health/v1"}).Generate(gen); err != nil {
		t.Fatal(err)
	}
	resp := gen.Response()
	if resp.Error != nil {
		t.Fatalf("generator error: %s", resp.GetError())
	}
	const name = "gen/runtime/grpc/health/v1/health_interop.pb.go"
	if len(resp.File) != 1 || resp.File[0].GetName() != name {
		t.Fatalf("generated files: %v", resp.File)
	}
	got := resp.File[0].GetContent()
	if !strings.Contains(got, `grpc_health_v1 "google.golang.org/grpc/health/grpc_health_v1"`) {
		t.Errorf("the glue must use grpc-go's health package:\n%s", got)
	}
	golden(t, "health_runtime_interop.pb.go.golden", got)
}
