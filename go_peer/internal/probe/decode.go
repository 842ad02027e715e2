package probe

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Decoded is Go's reading of one response with the given descriptors (check 3, schema drift,
// compares it with Python's): its protojson, and whether any message in it carried fields the
// descriptors do not know. Error is set instead when the bytes do not parse as the response type.
type Decoded struct {
	JSON          json.RawMessage `json:"json"`
	UnknownFields bool            `json:"unknown_fields"`
	Error         string          `json:"error,omitempty"`
}

// Descriptors resolves a method's response type from a FileDescriptorSet (--descriptors).
type Descriptors struct {
	files *protoregistry.Files
	types *dynamicpb.Types
}

// LoadDescriptors reads a binary FileDescriptorSet holding every file the methods need.
func LoadDescriptors(path string) (*Descriptors, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading --descriptors: %v", err)
	}
	set := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(b, set); err != nil {
		return nil, fmt.Errorf("--descriptors %s is not a binary FileDescriptorSet: %v", path, err)
	}
	return NewDescriptors(set)
}

// NewDescriptors builds the types of a descriptor set (its files' imports included).
func NewDescriptors(set *descriptorpb.FileDescriptorSet) (*Descriptors, error) {
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("the descriptor set does not link: %v (it must hold every imported file)", err)
	}
	return &Descriptors{files: files, types: dynamicpb.NewTypes(files)}, nil
}

// output is the response type of "pkg.Service/Method", or nil when the set does not declare it.
func (d *Descriptors) output(method string) protoreflect.MessageDescriptor {
	service, name, _ := strings.Cut(method, "/")
	desc, err := d.files.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return nil
	}
	sd, ok := desc.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil
	}
	return md.Output()
}

// decode reads each response as the method's response type; nil when the set does not know it.
func (d *Descriptors) decode(method string, responses [][]byte) []Decoded {
	if d == nil {
		return nil
	}
	typ := d.output(method)
	if typ == nil {
		return nil
	}
	out := make([]Decoded, len(responses))
	for i, b := range responses {
		m := dynamicpb.NewMessage(typ)
		if err := (proto.UnmarshalOptions{Resolver: d.types}).Unmarshal(b, m); err != nil {
			out[i] = Decoded{JSON: json.RawMessage("null"), Error: fmt.Sprintf("not a %s: %v", typ.FullName(), err)}
			continue
		}
		j, err := protojson.MarshalOptions{Resolver: d.types}.Marshal(m)
		if err != nil {
			out[i] = Decoded{JSON: json.RawMessage("null"), UnknownFields: hasUnknown(m), Error: fmt.Sprintf("protojson: %v", err)}
			continue
		}
		out[i] = Decoded{JSON: j, UnknownFields: hasUnknown(m)}
	}
	return out
}

// hasUnknown: m or any message inside it (fields, lists, map values) kept unknown fields.
func hasUnknown(m protoreflect.Message) bool {
	if len(m.GetUnknown()) > 0 {
		return true
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					found = hasUnknown(mv.Message())
					return !found
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := 0; i < v.List().Len() && !found; i++ {
					found = hasUnknown(v.List().Get(i).Message())
				}
			}
		case fd.Message() != nil:
			found = hasUnknown(v.Message())
		}
		return !found
	})
	return found
}
