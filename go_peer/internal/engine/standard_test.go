package engine

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	_ "google.golang.org/protobuf/types/known/apipb" // google/protobuf/api.proto and its dependencies
)

const apiFile = "google/protobuf/api.proto"

var apiClosure = []string{apiFile, "google/protobuf/source_context.proto", "google/protobuf/type.proto",
	"google/protobuf/any.proto"}

func TestFlipHealthPushesStatusChangesDuringAWatch(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, flipHealth{health.NewServer()})
	go s.Serve(ln)
	defer s.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	want := []string{"SERVICE_UNKNOWN", "SERVING", "NOT_SERVING"}
	for run := 0; run < 3; run++ { // a fresh health server per Watch: every run sees the same changes
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: FlipService})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for len(got) < len(want) {
			m, err := stream.Recv()
			if err != nil {
				t.Fatalf("run %d: after %v: %v", run, got, err)
			}
			got = append(got, m.GetStatus().String())
		}
		cancel()
		if !slices.Equal(got, want) {
			t.Errorf("run %d: got %v, want %v", run, got, want)
		}
	}
	_, err = client.Check(context.Background(), &healthpb.HealthCheckRequest{Service: FlipService})
	if status.Code(err) != codes.NotFound {
		t.Errorf("the flip name must stay out of the server's own statuses: Check gave %v", err)
	}
}

func ownFile(t *testing.T, name string) *descriptorpb.FileDescriptorProto {
	fd, err := protoregistry.GlobalFiles.FindFileByPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return protodesc.ToFileDescriptorProto(fd)
}

func filesResponse(t *testing.T, req *reflectionpb.ServerReflectionRequest, files ...*descriptorpb.FileDescriptorProto) proto.Message {
	var raws [][]byte
	for _, f := range files {
		b, err := proto.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, b)
	}
	return &reflectionpb.ServerReflectionResponse{OriginalRequest: req,
		MessageResponse: &reflectionpb.ServerReflectionResponse_FileDescriptorResponse{
			FileDescriptorResponse: &reflectionpb.FileDescriptorResponse{FileDescriptorProto: raws}}}
}

func reflectionDiffs(reqs []proto.Message, exp []ReflectionExpect, responses ...proto.Message) []Diff {
	p := &plan{call: &Call{Expect: Expect{Reflection: &exp}}, requests: reqs}
	d := &differ{}
	d.reflection(p, &outcome{responses: responses})
	return d.diffs
}

func paths(ds []Diff) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Path+": "+d.Expected+" / "+d.Got)
	}
	return out
}

func TestReflectionFilesAreRebuiltAndComparedWithOurOwn(t *testing.T) {
	req := &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileByFilename{FileByFilename: apiFile}}
	closure := apiClosure
	exp := []ReflectionExpect{{Files: &closure}}
	var own []*descriptorpb.FileDescriptorProto
	for _, n := range apiClosure {
		own = append(own, ownFile(t, n))
	}
	if got := reflectionDiffs([]proto.Message{req}, exp, filesResponse(t, req, own...)); len(got) != 0 {
		t.Fatalf("identical files: %v", paths(got))
	}
	tampered := ownFile(t, "google/protobuf/type.proto")
	tampered.MessageType[0].Field[0].Number = proto.Int32(99)
	got := paths(reflectionDiffs([]proto.Message{req}, exp, filesResponse(t, req, own[0], own[1], tampered, own[3])))
	want := []string{`reflection[0].files["google/protobuf/type.proto"].message_type[0].field[0].number: 1 / 99`}
	if !slices.Equal(got, want) {
		t.Errorf("tampered file: got %v, want %v", got, want)
	}
	// a missing dependency is missing, and the file needing it cannot be rebuilt
	got = paths(reflectionDiffs([]proto.Message{req}, exp, filesResponse(t, req, own[:3]...)))
	if !slices.Contains(got, `reflection[0].files["google/protobuf/any.proto"]: present / <missing>`) ||
		!slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, ".rebuild: ") }) {
		t.Errorf("missing dependency: %v", got)
	}
	// a runtime's bundled file is rebuilt but its content is left to its own case
	bundled := []ReflectionExpect{{Files: &closure, RuntimeFiles: []string{"google/protobuf/type.proto"}}}
	if got := reflectionDiffs([]proto.Message{req}, bundled, filesResponse(t, req, own[0], own[1], tampered, own[3])); len(got) != 0 {
		t.Errorf("runtime file: %v", paths(got))
	}
}

// A default json_name written out or left out is the same file (protoc writes them all for Go, none
// for Python); a custom one against the default changes every JSON transcoding and is a difference.
func TestReflectionComparesAnExplicitJSONName(t *testing.T) {
	req := &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileByFilename{FileByFilename: apiFile}}
	closure := apiClosure
	exp := []ReflectionExpect{{Files: &closure}}
	var plain []*descriptorpb.FileDescriptorProto
	for _, n := range apiClosure {
		f := ownFile(t, n)
		for _, m := range f.MessageType {
			for _, fd := range m.Field {
				fd.JsonName = nil
			}
		}
		plain = append(plain, f)
	}
	if got := reflectionDiffs([]proto.Message{req}, exp, filesResponse(t, req, plain...)); len(got) != 0 {
		t.Errorf("default json_name left out: %v", paths(got))
	}
	renamed := ownFile(t, apiFile)
	renamed.MessageType[0].Field[0].JsonName = proto.String("apiName")
	got := paths(reflectionDiffs([]proto.Message{req}, exp, filesResponse(t, req, renamed, plain[1], plain[2], plain[3])))
	want := []string{`reflection[0].files["google/protobuf/api.proto"].message_type[0].field[0].json_name: "name" / "apiName"`}
	if !slices.Equal(got, want) {
		t.Errorf("custom json_name: got %v, want %v", got, want)
	}
}

func TestReflectionFilesSentEarlierOnTheStreamMayBeLeftOut(t *testing.T) {
	byName := &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileByFilename{FileByFilename: apiFile}}
	bySymbol := &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "google.protobuf.Api"}}
	closure := apiClosure
	exp := []ReflectionExpect{{Files: &closure}, {Files: &closure}}
	var own []*descriptorpb.FileDescriptorProto
	for _, n := range apiClosure {
		own = append(own, ownFile(t, n))
	}
	reqs := []proto.Message{byName, bySymbol}
	if got := reflectionDiffs(reqs, exp, filesResponse(t, byName, own...), filesResponse(t, bySymbol, own[0])); len(got) != 0 {
		t.Errorf("second answer with the requested file only: %v", paths(got))
	}
	got := paths(reflectionDiffs(reqs, exp, filesResponse(t, byName, own...), filesResponse(t, bySymbol)))
	if want := []string{`reflection[1].files["google/protobuf/api.proto"]: present / <missing>`}; !slices.Equal(got, want) {
		t.Errorf("the requested file must come again: got %v, want %v", got, want)
	}
}

func TestReflectionServicesAreASetAndErrorCodesCount(t *testing.T) {
	req := &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: "*"}}
	names := []string{"a.A", "b.B"}
	exp := []ReflectionExpect{{Services: &names}}
	listing := func(ns ...string) proto.Message {
		var svcs []*reflectionpb.ServiceResponse
		for _, n := range ns {
			svcs = append(svcs, &reflectionpb.ServiceResponse{Name: n})
		}
		return &reflectionpb.ServerReflectionResponse{OriginalRequest: req,
			MessageResponse: &reflectionpb.ServerReflectionResponse_ListServicesResponse{
				ListServicesResponse: &reflectionpb.ListServiceResponse{Service: svcs}}}
	}
	if got := reflectionDiffs([]proto.Message{req}, exp, listing("b.B", "a.A")); len(got) != 0 {
		t.Errorf("another order: %v", paths(got))
	}
	got := paths(reflectionDiffs([]proto.Message{req}, exp, listing("a.A", "c.C")))
	want := []string{`reflection[0].services["b.B"]: present / <missing>`, `reflection[0].services["c.C"]: <absent> / present`}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	code := int32(5)
	unknown := []ReflectionExpect{{ErrorCode: &code}}
	answer := &reflectionpb.ServerReflectionResponse{OriginalRequest: req,
		MessageResponse: &reflectionpb.ServerReflectionResponse_ErrorResponse{
			ErrorResponse: &reflectionpb.ErrorResponse{ErrorCode: 3, ErrorMessage: "nope"}}}
	got = paths(reflectionDiffs([]proto.Message{req}, unknown, answer))
	if want := []string{`reflection[0].error_code: 5 / 3 "nope"`}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
