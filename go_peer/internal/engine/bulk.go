package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// repeatKey marks a compact bulk value in a case's protobuf JSON (docs/peer-contract.md, "Bulk
// values"): {"@repeat": {"count": N, "unit": <JSON of one unit>}} in place of a string or bytes
// field (unit N times over), of a repeated field (N copies of the element unit), or of one element
// of a repeated string or bytes field. The Python engine expands the same spec (python_impl/bulk.py).
const repeatKey = "@repeat"

type repeatSpec struct {
	Count *int64          `json:"count"`
	Unit  json.RawMessage `json:"unit"`
}

type bulkFill struct {
	path []any // JSON keys (string) and list indices (int) from the message to the field
	spec json.RawMessage
}

// unmarshalBulk is protojson.Unmarshal with every @repeat spec expanded. A document without the
// marker goes straight to protojson, so ordinary cases pay nothing.
func unmarshalBulk(raw []byte, m proto.Message) error {
	if !bytes.Contains(raw, []byte(`"`+repeatKey+`"`)) {
		return protojson.Unmarshal(raw, m)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // 64-bit integers and exact floats pass through unchanged
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return err
	}
	var fills []bulkFill
	rest, err := stripBulk(tree, nil, &fills)
	if err != nil {
		return err
	}
	doc, err := json.Marshal(rest)
	if err != nil {
		return err
	}
	// partial until expanded: a required field may be the one the spec fills
	if err := partial.Unmarshal(doc, m); err != nil {
		return err
	}
	for _, f := range fills {
		if err := expandBulk(m.ProtoReflect(), f); err != nil {
			return fmt.Errorf("%s: %v", renderPath(f.path), err)
		}
	}
	return proto.CheckInitialized(m) // what protojson.Unmarshal checks of a whole message
}

var partial = protojson.UnmarshalOptions{AllowPartial: true}

// stripBulk returns v without its specs, recording them in fills; an element of a list becomes ""
// until it is expanded.
func stripBulk(v any, path []any, fills *[]bulkFill) (any, error) {
	spec := func(x any) (json.RawMessage, bool, error) {
		obj, ok := x.(map[string]any)
		if !ok || len(obj) != 1 {
			return nil, false, nil
		}
		s, ok := obj[repeatKey]
		if !ok {
			return nil, false, nil
		}
		b, err := json.Marshal(s)
		return b, true, err
	}
	with := func(step any) []any { return append(append([]any{}, path...), step) }
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			if s, ok, err := spec(x); err != nil {
				return nil, err
			} else if ok {
				*fills = append(*fills, bulkFill{with(k), s})
				continue
			}
			y, err := stripBulk(x, with(k), fills)
			if err != nil {
				return nil, err
			}
			out[k] = y
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			if s, ok, err := spec(x); err != nil {
				return nil, err
			} else if ok {
				*fills = append(*fills, bulkFill{with(i), s})
				out[i] = ""
				continue
			}
			y, err := stripBulk(x, with(i), fills)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	}
	return v, nil
}

func expandBulk(m protoreflect.Message, f bulkFill) error {
	var spec repeatSpec
	dec := json.NewDecoder(bytes.NewReader(f.spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil || spec.Count == nil || spec.Unit == nil {
		return fmt.Errorf("%s takes exactly count and unit, got %s", repeatKey, f.spec)
	}
	if *spec.Count < 0 {
		return fmt.Errorf("%s.count must be a non-negative integer, got %d", repeatKey, *spec.Count)
	}
	count := int(*spec.Count)
	element, isElement := f.path[len(f.path)-1].(int)
	keyAt := len(f.path) - 1
	if isElement {
		keyAt--
	}
	// the message holding the field: keys through message fields, an index after a repeated one
	m, err := holderAt(m, f.path[:keyAt])
	if err != nil {
		return err
	}
	key, _ := f.path[keyAt].(string)
	fd := fieldByKey(m.Descriptor(), key)
	if fd == nil {
		return fmt.Errorf("%s has no field %q", m.Descriptor().FullName(), key)
	}
	text := fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind
	if fd.IsMap() {
		return fmt.Errorf("%s cannot fill a map (%s)", repeatKey, fd.FullName())
	}
	if (isElement && !(text && fd.IsList())) || (!fd.IsList() && !text) {
		return fmt.Errorf("%s fills a string, bytes or repeated field, or one element of a repeated string or "+
			"bytes field; %s is neither", repeatKey, fd.FullName())
	}
	// the unit means what protojson says it means: parse it through a message of the holder's type
	unit := []byte(spec.Unit)
	if fd.IsList() {
		unit = append(append([]byte("["), unit...), ']')
	}
	doc, err := json.Marshal(map[string]json.RawMessage{fd.JSONName(): unit})
	if err != nil {
		return err
	}
	one := m.New()
	if err := partial.Unmarshal(doc, one.Interface()); err != nil { // the holder's other required fields stay unset
		return fmt.Errorf("%s.unit: %v", repeatKey, err)
	}
	var v protoreflect.Value
	if fd.IsList() {
		v = one.Get(fd).List().Get(0)
	} else {
		v = one.Get(fd)
	}
	switch {
	case isElement:
		list := m.Mutable(fd).List()
		if element >= list.Len() {
			return fmt.Errorf("element %d of %s is past its end", element, fd.FullName())
		}
		list.Set(element, repeated(fd, v, count))
	case fd.IsList():
		list := m.Mutable(fd).List()
		for i := 0; i < count; i++ {
			if fd.Message() != nil {
				list.Append(protoreflect.ValueOfMessage(proto.Clone(v.Message().Interface()).ProtoReflect()))
			} else {
				list.Append(v)
			}
		}
	default:
		m.Set(fd, repeated(fd, v, count))
	}
	return nil
}

// repeated is a string or bytes value count times over.
func repeated(fd protoreflect.FieldDescriptor, v protoreflect.Value, count int) protoreflect.Value {
	if fd.Kind() == protoreflect.StringKind {
		return protoreflect.ValueOfString(strings.Repeat(v.String(), count))
	}
	return protoreflect.ValueOfBytes(bytes.Repeat(v.Bytes(), count))
}

// holderAt follows keys and list indices from m to the message that holds the field to fill.
func holderAt(m protoreflect.Message, path []any) (protoreflect.Message, error) {
	for i := 0; i < len(path); i++ {
		key, _ := path[i].(string)
		fd := fieldByKey(m.Descriptor(), key)
		if fd == nil {
			return nil, fmt.Errorf("%s has no field %q", m.Descriptor().FullName(), key)
		}
		if !fd.IsList() {
			m = m.Mutable(fd).Message()
			continue
		}
		if i+1 >= len(path) {
			return nil, fmt.Errorf("%s is a list: an index must follow it", fd.FullName())
		}
		index, ok := path[i+1].(int)
		list := m.Mutable(fd).List()
		if !ok || index >= list.Len() {
			return nil, fmt.Errorf("%s has no element %v", fd.FullName(), path[i+1])
		}
		m = list.Get(index).Message()
		i++
	}
	return m, nil
}

// fieldByKey finds a field by the name protojson accepts for it: its JSON name or its proto name.
func fieldByKey(md protoreflect.MessageDescriptor, key string) protoreflect.FieldDescriptor {
	if fd := md.Fields().ByJSONName(key); fd != nil {
		return fd
	}
	return md.Fields().ByName(protoreflect.Name(key))
}

func renderPath(path []any) string {
	var b strings.Builder
	for _, s := range path {
		switch t := s.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", t)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, t)
		}
	}
	return b.String()
}
