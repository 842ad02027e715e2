package engine

import (
	"encoding/base64"
	"fmt"
	"strconv"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Wire-form calls and protojson calls (docs/cases.md, "Wire bytes and protojson").
//
// requests_wire: the client sends these exact bytes as its requests (rawCodec), so the server's own
// library decides what a message the case JSON cannot carry means (invalid UTF-8 in a string,
// unknown fields, a closed enum's undeclared number, a Timestamp past 9999). server.responses_wire:
// the server parses these bytes with its library and sends the result. server.requests_wire and
// expect.responses_wire: each message the receiver parsed must be the message these bytes are to
// its own library (wireMessages).
//
// protojson: the client renders its request as protojson (JSONKey, request metadata) and the server
// parses it with its own library and compares it with the request it decoded from the wire; the
// server renders its first response the same way (JSONKey, trailer) and the client does the same.

// JSONKey carries a message's protojson rendering (request metadata, response trailer).
const JSONKey = "interop-json-bin"

// rawFrame is a request already encoded: rawCodec sends its bytes as they are.
type rawFrame []byte

// rawCodec sends rawFrames as they are and decodes everything else as protobuf (the responses of a
// call whose requests are raw bytes are still parsed by this peer's library).
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if f, ok := v.(rawFrame); ok {
		return []byte(f), nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return proto.Marshal(m)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	return proto.Unmarshal(data, m)
}

func (rawCodec) Name() string { return "proto" }

// decodeWire reads a list of base64 messages (nil list: nil).
func decodeWire(list *[]string, what string) ([][]byte, error) {
	if list == nil {
		return nil, nil
	}
	out := make([][]byte, len(*list))
	for i, s := range *list {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%s[%d] is not base64: %v", what, i, err)
		}
		out[i] = b
	}
	return out, nil
}

// wireMessages compares each message this peer parsed with the expected bytes parsed by this
// peer's library too: field by field, unknown fields included, in wire order. (Bytes are not
// compared: libraries serialize the same message in different orders, protobuf-go its extensions
// first.) The expected bytes are another library's serialization of what it parsed, so a field it
// dropped, moved or changed shows here.
func (d *differ) wireMessages(path string, exp [][]byte, got []proto.Message) {
	if len(exp) != len(got) {
		d.add(path+".count", strconv.Itoa(len(exp)), strconv.Itoa(len(got)))
	}
	for i := range min(len(exp), len(got)) {
		p := fmt.Sprintf("%s[%d]", path, i)
		want := got[i].ProtoReflect().New().Interface()
		if err := proto.Unmarshal(exp[i], want); err != nil {
			d.add(p, "bytes this peer parses: "+base64.StdEncoding.EncodeToString(exp[i]), "not parsed: "+err.Error())
			continue
		}
		d.message(p, want.ProtoReflect(), got[i].ProtoReflect())
	}
}

// protojsonOf renders m as protojson with the library's defaults (what a team logging messages
// writes); an error is the rendering's outcome, for the receiver to report.
func protojsonOf(m proto.Message) string {
	b, err := protojson.Marshal(m)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

// parsedJSON compares the other side's protojson rendering (JSONKey in md) of a message with the
// message this peer decoded from the wire: the rendering, parsed by this peer's library, must be
// the same message.
func (d *differ) parsedJSON(path string, md metadata.MD, wire proto.Message) {
	vs := md.Get(JSONKey)
	if len(vs) != 1 {
		d.add(path, "one protojson rendering in "+JSONKey, fmt.Sprintf("%d", len(vs)))
		return
	}
	m := wire.ProtoReflect().New().Interface()
	if err := protojson.Unmarshal([]byte(vs[0]), m); err != nil {
		d.add(path, "the other side's protojson parses", quote(vs[0])+": "+err.Error())
		return
	}
	d.message(path, wire.ProtoReflect(), m.ProtoReflect())
}
