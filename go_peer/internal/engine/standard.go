package engine

// The standard gRPC services, health and reflection, as the Go peer serves and checks them
// (docs/peer-contract.md, "Standard services"). Their cases reach the REAL implementations on both
// sides (grpc-go's health and reflection packages; grpcio-health-checking, grpcio-reflection),
// never the generic engine: they are not in the catalogue.

import (
	"fmt"
	"slices"
	"sort"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// FlipService is the reserved health name whose Watch sees the server push status changes: the
// Watch runs on a fresh health server of grpc-go's package (so concurrent cases and repeated runs
// stay apart, and Check and List never see the name), whose status for it goes SERVICE_UNKNOWN
// (the initial answer) -> SERVING -> NOT_SERVING. grpc-go's Watch sends only the latest status it
// holds, so each change is made once the previous status was sent.
const FlipService = "interop.health.v1.WatchFlip"

var flipSteps = []healthpb.HealthCheckResponse_ServingStatus{
	healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_NOT_SERVING}

// flipHealth is grpc-go's health server with the flip on FlipService.
type flipHealth struct {
	*health.Server
}

func (h flipHealth) Watch(in *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	if in.GetService() != FlipService {
		return h.Server.Watch(in, stream)
	}
	fresh := health.NewServer()
	return fresh.Watch(in, &flipStream{Health_WatchServer: stream, fresh: fresh, steps: flipSteps})
}

// flipStream sets the next status of the flip once a status has been sent.
type flipStream struct {
	healthpb.Health_WatchServer
	fresh *health.Server
	steps []healthpb.HealthCheckResponse_ServingStatus
}

func (s *flipStream) Send(m *healthpb.HealthCheckResponse) error {
	if err := s.Health_WatchServer.Send(m); err != nil {
		return err
	}
	if len(s.steps) > 0 { // Watch does not hold the server's lock while it sends
		s.fresh.SetServingStatus(FlipService, s.steps[0])
		s.steps = s.steps[1:]
	}
	return nil
}

// ReflectionExpect is what one reflection response must carry (expect.reflection, one per
// request, in order); exactly one key is set.
type ReflectionExpect struct {
	// Services: list_services_response, compared as a set (the protocol does not order it).
	Services *[]string `json:"services"`
	// Files: file_descriptor_response. Files[0] is the requested file and must come; every other
	// file is a transitive dependency that must come unless it was sent earlier on this stream.
	Files *[]string `json:"files"`
	// RuntimeFiles: files of Files that each runtime bundles itself (well-known types): they must
	// come and rebuild; their content is compared in their own case.
	RuntimeFiles []string `json:"runtime_files"`
	// ExtensionNumbers and BaseTypeName: all_extension_numbers_response (numbers as a set).
	ExtensionNumbers *[]int32 `json:"extension_numbers"`
	BaseTypeName     string   `json:"base_type_name"`
	// ErrorCode: error_response with this gRPC code (the message is each library's own text).
	ErrorCode *int32 `json:"error_code"`
}

func (e *ReflectionExpect) kind() string {
	switch {
	case e.Services != nil:
		return "list_services_response"
	case e.Files != nil:
		return "file_descriptor_response"
	case e.ExtensionNumbers != nil:
		return "all_extension_numbers_response"
	case e.ErrorCode != nil:
		return "error_response"
	}
	return "(nothing)"
}

// asV1 reads a reflection message of either version as v1 (the two versions have the same fields
// and numbers, so the bytes are the same).
func asV1(m proto.Message, into proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return proto.Unmarshal(b, into)
}

func responseKind(r *reflectionpb.ServerReflectionResponse) string {
	switch r.GetMessageResponse().(type) {
	case *reflectionpb.ServerReflectionResponse_ListServicesResponse:
		return "list_services_response"
	case *reflectionpb.ServerReflectionResponse_FileDescriptorResponse:
		return "file_descriptor_response"
	case *reflectionpb.ServerReflectionResponse_AllExtensionNumbersResponse:
		return "all_extension_numbers_response"
	case *reflectionpb.ServerReflectionResponse_ErrorResponse:
		return "error_response"
	}
	return "(nothing)"
}

// reflection checks a reflection stream's responses against expect.reflection.
func (d *differ) reflection(p *plan, out *outcome) {
	exp := *p.call.Expect.Reflection
	if len(exp) != len(out.responses) {
		d.add("responses.count", fmt.Sprint(len(exp)), fmt.Sprint(len(out.responses)))
	}
	received := map[string]*descriptorpb.FileDescriptorProto{}
	for i := 0; i < len(exp) && i < len(out.responses); i++ {
		path := fmt.Sprintf("reflection[%d]", i)
		resp, req := &reflectionpb.ServerReflectionResponse{}, &reflectionpb.ServerReflectionRequest{}
		if err := asV1(out.responses[i], resp); err != nil {
			d.add(path, "a ServerReflectionResponse", err.Error())
			continue
		}
		if i < len(p.requests) {
			if err := asV1(p.requests[i], req); err == nil {
				d.message(path+".original_request", req.ProtoReflect(), resp.GetOriginalRequest().ProtoReflect())
			}
		}
		e := &exp[i]
		if got := responseKind(resp); got != e.kind() {
			if er := resp.GetErrorResponse(); er != nil {
				got += fmt.Sprintf(" %d %s", er.GetErrorCode(), quote(er.GetErrorMessage()))
			}
			d.add(path+".message_response", e.kind(), got)
			continue
		}
		switch {
		case e.Services != nil:
			var got []string
			for _, s := range resp.GetListServicesResponse().GetService() {
				got = append(got, s.GetName())
			}
			setDiffs(d, path+".services", *e.Services, got, quote)
		case e.ExtensionNumbers != nil:
			r := resp.GetAllExtensionNumbersResponse()
			if r.GetBaseTypeName() != e.BaseTypeName {
				d.add(path+".base_type_name", quote(e.BaseTypeName), quote(r.GetBaseTypeName()))
			}
			setDiffs(d, path+".extension_numbers", *e.ExtensionNumbers, r.GetExtensionNumber(),
				func(n int32) string { return fmt.Sprint(n) })
		case e.ErrorCode != nil:
			if er := resp.GetErrorResponse(); er.GetErrorCode() != *e.ErrorCode {
				d.add(path+".error_code", fmt.Sprint(*e.ErrorCode),
					fmt.Sprintf("%d %s", er.GetErrorCode(), quote(er.GetErrorMessage())))
			}
		default:
			d.files(path, e, resp.GetFileDescriptorResponse().GetFileDescriptorProto(), received)
		}
	}
}

// setDiffs compares a list whose order is not part of the protocol as a set (and for duplicates).
func setDiffs[T int32 | string](d *differ, path string, exp, got []T, render func(T) string) {
	in := func(vs []T) map[T]bool {
		m := map[T]bool{}
		for _, v := range vs {
			m[v] = true
		}
		return m
	}
	e, g := in(exp), in(got)
	var missing, extra []T
	for v := range e {
		if !g[v] {
			missing = append(missing, v)
		}
	}
	for v := range g {
		if !e[v] {
			extra = append(extra, v)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	sort.Slice(extra, func(i, j int) bool { return extra[i] < extra[j] })
	for _, v := range missing {
		d.add(fmt.Sprintf("%s[%s]", path, render(v)), "present", "<missing>")
	}
	for _, v := range extra {
		d.add(fmt.Sprintf("%s[%s]", path, render(v)), "<absent>", "present")
	}
	if len(got) != len(g) {
		d.add(path+".count", fmt.Sprint(len(g)), fmt.Sprint(len(got)))
	}
}

// files checks a file_descriptor_response: the requested file (closure[0]) and each transitive
// dependency not sent earlier on this stream; each file is rebuilt from what was received and
// compared, normalised, with this peer's own compilation of it.
func (d *differ) files(path string, e *ReflectionExpect, raws [][]byte, received map[string]*descriptorpb.FileDescriptorProto) {
	closure := *e.Files
	sentBefore := map[string]bool{}
	for n := range received {
		sentBefore[n] = true
	}
	var got []string
	for j, raw := range raws {
		fdp := &descriptorpb.FileDescriptorProto{}
		if err := proto.Unmarshal(raw, fdp); err != nil {
			d.add(fmt.Sprintf("%s.file_descriptor_proto[%d]", path, j), "a FileDescriptorProto", err.Error())
			continue
		}
		got = append(got, fdp.GetName())
		received[fdp.GetName()] = fdp
	}
	inClosure, gotSet := map[string]bool{}, map[string]bool{}
	for _, n := range closure {
		inClosure[n] = true
	}
	for _, n := range got {
		gotSet[n] = true
	}
	required := map[string]bool{}
	for i, n := range closure {
		if i == 0 || !sentBefore[n] {
			required[n] = true
		}
	}
	var names []string
	for n := range required {
		if !gotSet[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		d.add(fmt.Sprintf("%s.files[%s]", path, quote(n)), "present", "<missing>")
	}
	names = names[:0]
	for n := range gotSet {
		if !inClosure[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		d.add(fmt.Sprintf("%s.files[%s]", path, quote(n)), "<absent>", "present")
	}
	if len(got) != len(gotSet) {
		d.add(path+".files.count", fmt.Sprint(len(gotSet)), fmt.Sprint(len(got)))
	}
	names = names[:0]
	for n := range gotSet {
		if inClosure[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		p := fmt.Sprintf("%s.files[%s]", path, quote(n))
		own, err := protoregistry.GlobalFiles.FindFileByPath(n)
		if err != nil {
			d.add(p, "a file this client compiled", "no such file in the client's proto set")
			continue
		}
		rebuilt, err := rebuild(received, n)
		if err != nil {
			d.add(p+".rebuild", "the received descriptors build", err.Error())
			continue
		}
		if slices.Contains(e.RuntimeFiles, n) {
			continue
		}
		d.message(p, normalise(own).ProtoReflect(), normalise(rebuilt).ProtoReflect())
	}
}

// rebuild builds a file and its dependencies from what the server sent, as a reflection client
// (grpcurl, a gateway) does; a dependency that was not received, or a bad file, is an error.
func rebuild(received map[string]*descriptorpb.FileDescriptorProto, name string) (protoreflect.FileDescriptor, error) {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(n, by string) error
	add = func(n, by string) error {
		if seen[n] {
			return nil
		}
		fdp, ok := received[n]
		if !ok {
			return fmt.Errorf("%s (needed by %s) was not received on this stream", n, by)
		}
		seen[n] = true
		for _, dep := range fdp.GetDependency() {
			if err := add(dep, n); err != nil {
				return err
			}
		}
		set.File = append(set.File, fdp)
		return nil
	}
	if err := add(name, "the request"); err != nil {
		return nil, err
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, err
	}
	return files.FindFileByPath(name)
}

// normalise drops what differs between two compilations of the same content: source info, and
// whether a default json_name is written out (protoc writes every json_name into the descriptors it
// gives protoc-gen-go, none into the ones it embeds in Python modules). Each field gets its
// effective JSON name as protobuf-go computes it (JSONName: the explicit one, else the default), so
// a custom json_name against the default is a difference. As python_impl/standard.py.
func normalise(fd protoreflect.FileDescriptor) *descriptorpb.FileDescriptorProto {
	f := protodesc.ToFileDescriptorProto(fd)
	f.SourceCodeInfo = nil
	fill := func(fields []*descriptorpb.FieldDescriptorProto, by interface {
		ByName(protoreflect.Name) protoreflect.FieldDescriptor
	}) {
		for _, field := range fields {
			field.JsonName = proto.String(by.ByName(protoreflect.Name(field.GetName())).JSONName())
		}
	}
	var walk func([]*descriptorpb.DescriptorProto, protoreflect.MessageDescriptors)
	walk = func(ms []*descriptorpb.DescriptorProto, by protoreflect.MessageDescriptors) {
		for _, m := range ms {
			d := by.ByName(protoreflect.Name(m.GetName()))
			fill(m.Field, d.Fields())
			fill(m.Extension, d.Extensions())
			walk(m.NestedType, d.Messages())
		}
	}
	walk(f.MessageType, fd.Messages())
	fill(f.Extension, fd.Extensions())
	return f
}
