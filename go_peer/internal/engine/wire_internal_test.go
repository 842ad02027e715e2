package engine

import (
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// wireMessages compares by meaning, unknown fields included: a message that lost an unknown field
// differs, the same message written in another order does not.
func TestWireMessagesSeeUnknownFieldsNotOrder(t *testing.T) {
	base, _ := proto.Marshal(timestamppb.New(timestamppb.Now().AsTime()))
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 1000, protowire.VarintType), 7)
	withUnknown := append(append([]byte{}, base...), unknown...)
	parsed := &timestamppb.Timestamp{}
	if err := proto.Unmarshal(withUnknown, parsed); err != nil {
		t.Fatal(err)
	}
	d := &differ{}
	d.wireMessages("responses_wire", [][]byte{append(append([]byte{}, unknown...), base...)}, []proto.Message{parsed})
	if len(d.diffs) != 0 {
		t.Fatalf("reordered bytes of the same message differ: %v", d.diffs)
	}
	lost := &timestamppb.Timestamp{}
	_ = proto.Unmarshal(base, lost)
	d.wireMessages("responses_wire", [][]byte{withUnknown}, []proto.Message{lost})
	if len(d.diffs) != 1 || d.diffs[0].Path != "responses_wire[0].<unknown fields>" {
		t.Fatalf("a lost unknown field: %v", d.diffs)
	}
	d = &differ{}
	d.wireMessages("responses_wire", [][]byte{base}, nil)
	if len(d.diffs) != 1 || d.diffs[0].Path != "responses_wire.count" {
		t.Fatalf("a missing message: %v", d.diffs)
	}
}

// parsedJSON parses the other side's rendering with protobuf-go and compares it with what came on
// the wire; a missing or unparsable rendering is a difference too.
func TestParsedJSON(t *testing.T) {
	wire := wrapperspb.Double(-0.5)
	for _, c := range []struct {
		md   metadata.MD
		diff string
	}{
		{metadata.Pairs(JSONKey, protojsonOf(wire)), ""},
		{metadata.Pairs(JSONKey, "-0.25"), "json.value"},
		{metadata.Pairs(JSONKey, "{"), "json"},
		{metadata.MD{}, "json"},
	} {
		d := &differ{}
		d.parsedJSON("json", c.md, wire)
		if c.diff == "" && len(d.diffs) != 0 || c.diff != "" && (len(d.diffs) != 1 || !strings.HasPrefix(d.diffs[0].Path, c.diff)) {
			t.Errorf("%v: got %v, want a diff at %q", c.md, d.diffs, c.diff)
		}
	}
}

// rawCodec sends a rawFrame as it is and marshals anything else as protobuf.
func TestRawCodec(t *testing.T) {
	b, err := rawCodec{}.Marshal(rawFrame{0xff, 0x01})
	if err != nil || string(b) != "\xff\x01" {
		t.Fatalf("rawFrame: %q %v", b, err)
	}
	m := &wrapperspb.StringValue{}
	if err := (rawCodec{}).Unmarshal([]byte("\x0a\x02ok"), m); err != nil || m.GetValue() != "ok" {
		t.Fatalf("unmarshal: %v %v", m, err)
	}
}

// On send, protobuf-go refuses invalid UTF-8 in a proto3 string (as Python's str cannot hold it):
// only a raw sender (requests_wire) puts one on the wire, which is why the wire dimension needs one.
func TestProtobufGoRefusesToSendInvalidUTF8(t *testing.T) {
	if _, err := proto.Marshal(wrapperspb.String("\xff")); err == nil || !strings.Contains(err.Error(), "invalid UTF-8") {
		t.Fatalf("marshalled invalid UTF-8: %v", err)
	}
}
